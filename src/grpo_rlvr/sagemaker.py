"""The SageMaker training contract: the /opt/ml tree, its three config JSONs, channels, failure file, secrets.

SageMaker (and `docker compose`, which mounts a folder shaped the same way) hands a training container
everything through files: `input/config/hyperparameters.json` (every value a string),
`resourceconfig.json` (this host and all hosts), `inputdataconfig.json` (the channels), the channel data
under `input/data/<channel>/`, and it reads back `model/`, `output/data/`, `checkpoints/` and the
`output/failure` reason. This module reads and writes exactly that, and encodes hyperparameters as a
job request carries them, and nothing else: no TRL, no torch. Outside a container `SAGEMAKER_BASE_DIR`
points at a folder laid out like /opt/ml.

Every problem found here is a `ContractError` whose first line says what to fix.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grpo_rlvr.datafiles import DATA_SUFFIXES, DataError, data_files
from grpo_rlvr.files import unwritable, write_atomic
from grpo_rlvr.redact import Redactor

log = logging.getLogger(__name__)

BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"
DEFAULT_BASE_DIR = "/opt/ml"
DEFAULT_HOST = "algo-1"
FAILURE_LIMIT = 1024  # SageMaker shows at most this many characters of the failure reason
RESERVE_NAME = ".failure-reserve"  # beside output/failure: the room `failure_room` keeps for it
TRAIN_CHANNEL = "train"
VAL_CHANNEL = "val"
# Hyperparameters the SageMaker SDKs and automatic model tuning add for their own use; never recipe keys.
# SageMaker's own rule for channel names; a name is also a folder under input/data, so never "." or "..".
CHANNEL_NAME = re.compile(r"(?!\.+$)[A-Za-z0-9._-]{1,64}")
SAGEMAKER_OWN = re.compile(r"^(sagemaker_|_tuning_objective_metric$)")
# Python's str() of its constants, as the SDK v2 sends a bool or None.
_PYTHON_CONSTANTS = {"True": True, "False": False, "None": None}
# Recipe keys the contract owns: they come from channels and the /opt/ml tree, never from a hyperparameter.
CONTRACT_KEYS = {
    "dataset_path": f"the `{TRAIN_CHANNEL}` channel (without one, the recipe's dataset_path)",
    "val_dataset_path": f"the `{VAL_CHANNEL}` channel",
    "model_dir": "/opt/ml/model",
    "output_dir": "/opt/ml/checkpoints",
    "summary_dir": "/opt/ml/output/data",
}


class ContractError(Exception):
    """A bad or missing input in the /opt/ml tree; the first line of the message says what to fix."""


@dataclass(frozen=True)
class Paths:
    """The /opt/ml tree (or the folder `SAGEMAKER_BASE_DIR` names)."""

    base: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Paths:
        return cls(Path(env.get(BASE_DIR_ENV) or DEFAULT_BASE_DIR))

    @property
    def config_dir(self) -> Path:
        return self.base / "input" / "config"

    @property
    def data_dir(self) -> Path:
        return self.base / "input" / "data"

    @property
    def model_dir(self) -> Path:
        return self.base / "model"

    @property
    def checkpoint_dir(self) -> Path:
        return self.base / "checkpoints"

    @property
    def output_data_dir(self) -> Path:
        return self.base / "output" / "data"

    @property
    def failure_file(self) -> Path:
        return self.base / "output" / "failure"


@dataclass(frozen=True)
class Resources:
    """resourceconfig.json: which host this is among all hosts, and its network interface."""

    current_host: str = DEFAULT_HOST
    hosts: tuple[str, ...] = (DEFAULT_HOST,)
    network_interface: str | None = None
    instance_type: str | None = None

    @property
    def rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def main_host(self) -> str:
        return self.hosts[0]


def _read_json_object(path: Path) -> dict[str, Any] | None:
    """A config JSON as a dict, or None when the file is absent (docker compose without config files)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise ContractError(f"fix {path}: cannot read it ({err})") from err
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ContractError(
            f"fix {path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})"
        ) from err
    except (ValueError, RecursionError) as err:  # an integer past the digit limit; nesting too deep
        raise ContractError(f"fix {path}: it holds a value too large or too deeply nested to read") from err
    if not isinstance(value, dict):
        raise ContractError(f"fix {path}: it must hold a JSON object, not {type(value).__name__}")
    return value


def encode_hyperparameters(values: Mapping[str, Any]) -> dict[str, str]:
    """What a job sends, as the SDKs do: anything but a string as JSON; a string as it is, unless
    `decode_value` would read it as something else ("3", "true", "null"), then JSON-quoted."""
    return {
        str(k): v if isinstance(v, str) and decode_value(v) == v else json.dumps(v) for k, v in values.items()
    }


def decode_value(raw: Any) -> Any:
    """A hyperparameter's typed value: SageMaker passes every value as a string.

    The SDK v3 (ModelTrainer) json.dumps non-string values, so JSON is tried first ("3", "1e-5", "true",
    "[...]", "{...}", "null", "\\"quoted\\""). The SDK v2 (Estimator) sends Python's str() instead:
    "True"/"False"/"None", and lists and dicts as Python literals ("['a', 'b']", "{'k': \"it's\"}"),
    read by `ast.literal_eval` (never `eval`) and kept only when they hold JSON's kinds of value, so both
    SDKs deliver the same typed values. Anything else stays the string it is.
    """
    if not isinstance(raw, str):
        return raw  # a hand-written hyperparameters.json may already hold typed values
    text = raw.strip()
    if text in _PYTHON_CONSTANTS:
        return _PYTHON_CONSTANTS[text]
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or past JSON's limits
        pass
    if text[:1] in ("[", "{"):
        container = _python_literal(text)
        if container is not None:
            return container
    return raw  # the recipe parser decides


def _python_literal(text: str) -> list[Any] | dict[str, Any] | None:
    """A list or dict written as a Python literal, or None when the text is not one of JSON's shapes (a
    set, a tuple, bytes, a complex number or a non-string key would not survive the trip through JSON)."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, (list, dict)) and _json_shaped(value) else None


def _json_shaped(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_shaped(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_json_shaped(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def decode_hyperparameters(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Typed values for the recipe keys; SageMaker's own keys (`sagemaker_*`, tuning metric) are dropped."""
    return {key: decode_value(value) for key, value in raw.items() if not SAGEMAKER_OWN.match(key)}


def read_hyperparameters(paths: Paths) -> dict[str, Any]:
    return decode_hyperparameters(_read_json_object(paths.config_dir / "hyperparameters.json") or {})


def read_resources(paths: Paths) -> Resources:
    """This host's place among the hosts; one host `algo-1` when resourceconfig.json is absent."""
    path = paths.config_dir / "resourceconfig.json"
    data = _read_json_object(path)
    if data is None:
        return Resources()
    hosts, current = data.get("hosts"), data.get("current_host")
    if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) and h for h in hosts):
        raise ContractError(f"fix {path}: `hosts` must be a non-empty list of host names, got {hosts!r}")
    if len(set(hosts)) != len(hosts):
        raise ContractError(f"fix {path}: `hosts` lists a host twice: {hosts!r}")
    if current not in hosts:
        raise ContractError(f"fix {path}: `current_host` {current!r} is not one of `hosts` {hosts!r}")
    interface = data.get("network_interface_name")
    instance_type = data.get("current_instance_type")
    return Resources(
        current_host=current,
        hosts=tuple(hosts),
        network_interface=interface if isinstance(interface, str) and interface else None,
        instance_type=instance_type if isinstance(instance_type, str) and instance_type else None,
    )


def read_channels(paths: Paths) -> dict[str, Path]:
    """Every channel (declared in inputdataconfig.json or present on disk), checked.

    `train` and `val` are optional (without `train` the recipe's `dataset_path` stands, by default the
    GSM8K shipped with the package); when present both must hold data files in File or FastFile mode.
    Other channels (say `rewards` holding a reward module) need only exist.
    """
    config_path = paths.config_dir / "inputdataconfig.json"
    declared = _read_json_object(config_path) or {}
    on_disk = {p.name for p in paths.data_dir.iterdir() if p.is_dir()} if paths.data_dir.is_dir() else set()
    channels: dict[str, Path] = {}
    for name in sorted(set(declared) | on_disk):
        if not CHANNEL_NAME.fullmatch(name):
            raise ContractError(
                f"rename channel {name[:80]!r} in {config_path}: channel names are 1-64 letters, digits, "
                "'.', '-' or '_' (and not only dots)"
            )
        folder = paths.data_dir / name
        settings = declared.get(name)
        mode = settings.get("TrainingInputMode", "File") if isinstance(settings, dict) else "File"
        if name in (TRAIN_CHANNEL, VAL_CHANNEL) and mode not in ("File", "FastFile"):
            raise ContractError(
                f"set channel `{name}` to TrainingInputMode File or FastFile, not {mode}: it is read as files"
            )
        if not folder.is_dir():
            raise ContractError(f"channel `{name}` is declared in {config_path} but {folder} does not exist")
        channels[name] = folder
    for name in (TRAIN_CHANNEL, VAL_CHANNEL):
        if name in channels:
            _check_data_channel(name, channels[name])
    return channels


def _check_data_channel(name: str, folder: Path) -> None:
    if not any(folder.iterdir()):
        raise ContractError(f"channel `{name}` is empty: put {'/'.join(DATA_SUFFIXES)} files in {folder}")
    try:
        data_files(folder)
    except DataError as err:
        raise ContractError(f"channel `{name}` holds no data file: {err}") from err


def contract_overrides(paths: Paths, channels: Mapping[str, Path]) -> dict[str, str]:
    """The recipe keys the container's layout decides: data from channels, results into /opt/ml."""
    overrides = {
        "model_dir": str(paths.model_dir),
        "output_dir": str(paths.checkpoint_dir),
        "summary_dir": str(paths.output_data_dir),
    }
    for key, channel in (("dataset_path", TRAIN_CHANNEL), ("val_dataset_path", VAL_CHANNEL)):
        if channel in channels:
            overrides[key] = str(channels[channel])
    return overrides


def check_no_contract_keys(hyperparameters: Mapping[str, Any]) -> None:
    for key, source in CONTRACT_KEYS.items():
        if key in hyperparameters:
            raise ContractError(f"remove hyperparameter `{key}`: in this container it comes from {source}")


# --- failure file ----------------------------------------------------------------------------------


def write_failure(paths: Paths, reason: str, redactor: Redactor) -> str:
    """Write SageMaker's failure reason (redacted, at most FAILURE_LIMIT characters); returns the text.

    On a full disk the reason goes into the room `failure_room` kept; where even that fails (the disk was
    full before the launch began) the reason is logged and the exit code still says the run failed."""
    text = redactor.text(reason).strip() or "training failed for an unknown reason"
    limit = FAILURE_LIMIT - 1  # and the newline
    if len(text) > limit:
        text = text[: limit - 3].rstrip() + "..."
    try:
        write_atomic(paths.failure_file, text + "\n")
    except OSError:
        try:
            _write_into_reserve(paths, text + "\n")
        except OSError as err:
            log.error("cannot write %s (%s); the reason: %s", paths.failure_file, err, text)
    return text


def _reserve(paths: Paths) -> Path:
    return paths.failure_file.with_name(RESERVE_NAME)


def _write_into_reserve(paths: Paths, text: str) -> None:
    """Overwrite the reserve's own blocks (no new ones needed), cut it to length, rename it into place."""
    with _reserve(paths).open("r+b") as f:  # FileNotFoundError without a reserve: nothing to write into
        f.write(text.encode("utf-8"))
        f.truncate()
    os.replace(_reserve(paths), paths.failure_file)


@contextmanager
def failure_room(paths: Paths) -> Iterator[None]:
    """Keep room for the failure reason on the disk while the block runs: a reserve file as large as the
    longest reason can be (UTF-8: up to 4 bytes a character), next to the failure file, removed after.

    A disk that fills mid-run would otherwise take the reason with it: writing the failure file needs a
    free block, and SageMaker would show no reason at all."""
    reserve = _reserve(paths)
    try:
        reserve.parent.mkdir(parents=True, exist_ok=True)
        reserve.write_bytes(b"\0" * (4 * FAILURE_LIMIT))  # written, not sparse: the blocks are ours
    except OSError as err:
        reserve.unlink(missing_ok=True)
        log.warning("no room kept for the failure reason (%s): on a full disk it may go unwritten", err)
    try:
        yield
    finally:
        reserve.unlink(missing_ok=True)


def clear_stale_results(paths: Paths, summary_name: str) -> None:
    """A new attempt starts with no failure reason and no finished-model marker from an earlier one.

    The folders the run writes are probed by writing first: one that cannot be written is an input to
    fix (a file in its place, a read-only mount), said before anything starts."""
    for folder in (paths.model_dir, paths.checkpoint_dir, paths.output_data_dir):
        if reason := unwritable(folder):
            raise ContractError(f"{reason}: the run writes its results there")
    for stale in (paths.failure_file, paths.model_dir / summary_name):
        stale.unlink(missing_ok=True)
