"""`grpo-rlvr launch`: from the /opt/ml contract to one training process, or to `accelerate launch`.

The image's `train` (SageMaker's `docker run IMAGE train`, `docker compose up train`, SDK local mode
with no command) ends here. The launcher owns what no training process can: the process topology
(GPUs x hosts), SIGTERM forwarding, the failure file and the exit code. One process in total runs
training in this very process; more start `accelerate launch` with a config from `recipes/accelerate/`,
each process running `grpo-rlvr train --settings FILE`: the validated settings travel in a private file
(`handoff.py`), never on a command line, where any user of the host could read a credential.

Importing this module loads neither torch nor TRL (it reads checkpoints through `checkpoints.py`):
validating a recipe loads TRL's config classes, and only a single-process run imports `train`.

Exit codes: 0 success; 1 training failed; 2 an input needs fixing (hyperparameter, channel, config
JSON, recipe, data); 143 (130) stopped by SIGTERM (SIGINT) after saving what could be saved.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagemaker_training import SM_EFA_RDMA_INSTANCES

from grpo_rlvr import config, handoff, sagemaker, signals, tiny
from grpo_rlvr.checkpoints import (
    SUMMARY_NAME,
    ForeignCheckpoint,
    TrainingInterrupted,
    check_settings,
    checkpoint_step,
    finished_run,
    is_complete,
    latest_complete_checkpoint,
    weight_settings,
)
from grpo_rlvr.datafiles import DataError
from grpo_rlvr.hub import HubUnavailable
from grpo_rlvr.overrides import NotKeyValue, parse_overrides
from grpo_rlvr.redact import Redactor
from grpo_rlvr.runlock import AlreadyRunning, RunLock
from grpo_rlvr.sagemaker import ContractError, Paths, Resources

log = logging.getLogger("grpo_rlvr.launch")

RECIPE_ENV = "GRPO_RLVR_RECIPE"
DEFAULT_RECIPE = "qwen2.5-0.5b-gsm8k"
# "algo-1=10.0.0.5,algo-2=10.0.0.6": addresses for host names that DNS does not know (tests on loopback,
# clusters without SageMaker's DNS). Names absent here are resolved by DNS, waiting as SageMaker's own
# PyTorch container does, since the other hosts' names may appear a little after this one starts.
HOST_ADDRS_ENV = "GRPO_RLVR_HOST_ADDRS"
PORT_ENV = "GRPO_RLVR_MAIN_PROCESS_PORT"
DEFAULT_PORT = 29500
DNS_TIMEOUT_S = 900.0
# SageMaker (spot or StopTrainingJob) and our compose file allow 120 s from SIGTERM to SIGKILL; keep
# a few seconds of them for the failure file and the exit.
STOP_GRACE_S = 110
DEFAULT_ACCELERATE_CONFIG = "ddp"
# Hyperparameters for the launcher itself, not recipe keys.
RECIPE_KEY = "recipe"
ACCELERATE_CONFIG_KEY = "accelerate_config"
CPU_PROCESSES_KEY = "cpu_processes"  # processes per host where there is no GPU (default 1)
# Where the AWS OFI NCCL plugin (libnccl-net.so, NCCL over EFA) is installed on AWS images; the image
# ships none, so multi-node traffic goes over TCP sockets unless one is built on top (docs/image.md).
NCCL_NET_PLUGIN_DIRS = ("/opt/amazon/ofi-nccl/lib", "/opt/aws-ofi-nccl/lib", "/usr/local/lib")

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
# "Fix an input", not a crash.
BAD_INPUT_ERRORS = (ContractError, config.ConfigError, DataError, HubUnavailable, ForeignCheckpoint)
DISK_FULL_BYTES = 64 * 2**20  # less free space than this after a failure: the disk is the likely cause


class Stopped(BaseException):
    """SIGTERM/SIGINT arrived while the launcher itself (not a training loop) was running.

    A BaseException, like KeyboardInterrupt, so that no library's `except Exception` swallows it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass(frozen=True)
class Plan:
    """Everything the launch decided, before anything runs."""

    recipe: str
    overrides: dict[str, Any]
    resources: Resources
    gpus: int
    accelerate_config: str | None
    cpu_processes: int = 1  # per host, where there is no GPU

    @property
    def processes(self) -> int:
        return (self.gpus or self.cpu_processes) * len(self.resources.hosts)


def make_plan(
    paths: Paths, cli_overrides: Sequence[str], redactor: Redactor
) -> tuple[Plan, config.RunConfig]:
    """Read the contract, then validate recipe + overrides (before any model loads).

    Hyperparameters arrive as SageMaker's strings (`sagemaker.decode_value`); launch arguments are
    `key=value` text in the grammar `grpo-rlvr train` reads (`overrides.parse_overrides`).
    """
    hyperparameters = sagemaker.read_hyperparameters(paths)
    try:
        hyperparameters |= parse_overrides(cli_overrides)
    except NotKeyValue as err:
        raise ContractError(f"write launch arguments as key=value, not {err.item!r}") from err
    log.info("hyperparameters: %s", json.dumps(redactor.value(hyperparameters)))
    sagemaker.check_no_contract_keys(hyperparameters)
    resources = sagemaker.read_resources(paths)
    channels = sagemaker.read_channels(paths)
    recipe = str(hyperparameters.pop(RECIPE_KEY, None) or os.environ.get(RECIPE_ENV) or DEFAULT_RECIPE)
    accelerate_config = hyperparameters.pop(ACCELERATE_CONFIG_KEY, None)
    cpu_processes = _cpu_processes(hyperparameters.pop(CPU_PROCESSES_KEY, None))
    overrides = {**hyperparameters, **sagemaker.contract_overrides(paths, channels)}
    if len(resources.hosts) > 1:
        # Every host has its own /opt/ml/checkpoints: each needs a whole checkpoint to resume from.
        overrides.setdefault("save_on_each_node", True)
    accelerate_name = None if accelerate_config is None else str(accelerate_config)
    plan = Plan(recipe, overrides, resources, gpu_count(), accelerate_name, cpu_processes)
    if plan.gpus and cpu_processes != 1:
        raise ContractError(
            f"fix hyperparameter `{CPU_PROCESSES_KEY}`: this host has {plan.gpus} GPU(s), one process each; "
            f"{CPU_PROCESSES_KEY} is for hosts without a GPU"
        )
    if plan.processes > 1 or accelerate_name is not None:
        accelerate_config_path(plan.accelerate_config)  # a wrong name fails now, not after the model loads
    return plan, config.load_config(plan.recipe, overrides, num_processes=plan.processes)


def _cpu_processes(value: Any) -> int:
    """The `cpu_processes` launch setting: a whole number of processes, at least 1."""
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ContractError(
            f"fix hyperparameter `{CPU_PROCESSES_KEY}`: a whole number of at least 1, not {value!r}"
        )
    return value


def gpu_count() -> int:
    """GPUs on this host, as training will see them."""
    import torch

    return torch.cuda.device_count()


# --- distribution ------------------------------------------------------------------------------------


def distributed_env(
    resources: Resources,
    gpus: int,
    *,
    net_dir: Path = Path("/sys/class/net"),
    efa_dir: Path = Path("/dev/infiniband"),
    plugin_dirs: Sequence[str] = NCCL_NET_PLUGIN_DIRS,
) -> dict[str, str]:
    """Communication variables, chosen as SageMaker's PyTorch images do (sagemaker_training's
    torch_distributed runner and the PyTorch container's NCCL setup), for a multi-process run.

    The interface from resourceconfig.json is used only when it exists here: SDK local mode writes
    `ethwe`, which no local container has. On CPU, DeepSpeed uses its CPU accelerator (gloo). EFA
    variables only for several hosts, with EFA devices and an OFI NCCL plugin to use them (without one
    NCCL talks TCP and the variables do nothing); device RDMA only on the instance types the toolkit
    lists for it. No NCCL_PROTO: `simple` slows NVLink inside a host, and current plugins need none.
    """
    found: dict[str, str] = {"TORCH_ELASTIC_SHUTDOWN_TIMEOUT": str(STOP_GRACE_S)}
    interface = resources.network_interface
    has_interface = interface is not None and (net_dir / interface).exists()
    several_hosts = len(resources.hosts) > 1
    if gpus == 0:
        found["DS_ACCELERATOR"] = "cpu"
        if has_interface and several_hosts:
            found["GLOO_SOCKET_IFNAME"] = interface
        return found
    found["NCCL_DEBUG"] = "WARN"
    if has_interface:
        found["NCCL_SOCKET_IFNAME"] = interface
    if several_hosts and any(efa_dir.glob("uverbs*")):
        plugin = nccl_net_plugin([*os.environ.get("LD_LIBRARY_PATH", "").split(":"), *plugin_dirs])
        if plugin is None:
            log.warning(
                "EFA devices found but no OFI NCCL plugin (libnccl-net.so): NCCL between hosts uses TCP "
                "sockets, several times slower than EFA; see docs/image.md (multi-node over EFA)"
            )
            return found
        found |= {"FI_PROVIDER": "efa", "RDMAV_FORK_SAFE": "1"}
        if resources.instance_type in SM_EFA_RDMA_INSTANCES:
            found["FI_EFA_USE_DEVICE_RDMA"] = "1"
    return found


def nccl_net_plugin(folders: Sequence[str]) -> Path | None:
    """The first NCCL network plugin library (libnccl-net*.so) in `folders`, else None."""
    for folder in filter(None, folders):
        found = sorted(Path(folder).glob("libnccl-net*.so*"))
        if found:
            return found[0]
    return None


def host_address(host: str, env: Mapping[str, str], timeout_s: float = DNS_TIMEOUT_S) -> str:
    """The address of `host`: from GRPO_RLVR_HOST_ADDRS if listed there, else DNS (retried until timeout)."""
    mapping: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in env.get(HOST_ADDRS_ENV, "").split(","))):
        name, sep, address = item.partition("=")
        if not sep or not name or not address:
            raise ContractError(
                f"fix {HOST_ADDRS_ENV}: write host=address pairs separated by commas, not {item!r}"
            )
        mapping[name.strip()] = address.strip()
    if host in mapping:
        return mapping[host]
    deadline, wait = time.monotonic() + timeout_s, 0.1
    while True:
        try:
            return socket.gethostbyname(host)
        except OSError as err:
            if time.monotonic() > deadline:
                raise ContractError(f"host {host} from resourceconfig.json does not resolve ({err})") from err
            time.sleep(wait)
            wait = min(wait * 2, 10.0)


def accelerate_config_path(name: str | None) -> Path:
    """A config from `recipes/accelerate/` (baked or the repo's) by name, or a path; by default DDP."""
    chosen = name or DEFAULT_ACCELERATE_CONFIG
    if Path(chosen).suffix in (".yaml", ".yml"):
        candidates = [Path(chosen)]
    else:
        candidates = [root / "accelerate" / f"{chosen}.yaml" for root in config.recipe_folders()]
    for path in candidates:
        if path.is_file():
            return path
    known = sorted({p.stem for c in candidates for p in c.parent.glob("*.yaml")})
    raise ContractError(
        f"fix hyperparameter `{ACCELERATE_CONFIG_KEY}`: no accelerate config {chosen!r}; "
        f"known: {', '.join(known) or 'none'}"
    )


def uses_deepspeed(config_file: Path) -> bool:
    """Whether an accelerate config runs DeepSpeed (its `distributed_type`)."""
    import yaml

    return (yaml.safe_load(config_file.read_text()) or {}).get("distributed_type") == "DEEPSPEED"


def accelerate_command(
    plan: Plan, config_file: Path, main_address: str, port: int, settings: Path
) -> list[str]:
    """`accelerate launch` of `grpo-rlvr train` on every process; the settings go in a file (`handoff`)."""
    # On CPU DDP needs `--multi_gpu` (gloo; `--cpu` would start ONE process). Not with DeepSpeed: accelerate
    # reads the config's distributed_type only when no such flag is given, and would run plain DDP.
    multi_gpu = plan.gpus == 0 and not uses_deepspeed(config_file)
    return [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(config_file),
        *(["--multi_gpu"] if multi_gpu else []),
        "--num_processes", str(plan.processes),
        "--num_machines", str(len(plan.resources.hosts)),
        "--machine_rank", str(plan.resources.rank),
        "--main_process_ip", main_address,
        "--main_process_port", str(port),
        "-m", "grpo_rlvr.cli", "train", "--settings", str(settings),
    ]  # fmt: skip


# --- running ---------------------------------------------------------------------------------------


def run_children(
    command: list[str], env: Mapping[str, str], pass_fds: Sequence[int] = ()
) -> tuple[int, int | None]:
    """Run `command` in its own process group; SIGTERM/SIGINT to the launcher go to the whole group,
    which gets STOP_GRACE_S to checkpoint before SIGKILL. Returns (exit code, signal forwarded or None).
    `pass_fds` stay open in the child (the run lock: held until the training processes have ended)."""
    child: subprocess.Popen[bytes] | None = None
    received: list[tuple[int, float]] = []  # (signal, when)

    def forward(signum: int, _frame: object) -> None:
        received.append((signum, time.monotonic()))
        if child is not None:
            with suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)

    # The handler goes in first: a signal between the start and the handler would orphan the group.
    with signals.handling(forward):
        try:
            child = subprocess.Popen(command, env=dict(env), start_new_session=True, pass_fds=tuple(pass_fds))
            if received:
                os.killpg(child.pid, signal.SIGTERM)
            while True:
                try:
                    code = child.wait(timeout=1.0)
                    break
                except subprocess.TimeoutExpired:
                    if received and time.monotonic() - received[0][1] > STOP_GRACE_S:
                        log.error("processes still running %d s after SIGTERM: killing them", STOP_GRACE_S)
                        os.killpg(child.pid, signal.SIGKILL)
        finally:
            if child is not None:
                with suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)  # stragglers of the group
    return code, received[0][0] if received else None


class RedactedOutput:
    """Routes file descriptors 1 and 2 of this process, and so of every child, through the Redactor.

    Masking at the descriptor, not in a logging handler, also covers prints, C libraries and the
    training processes, so no secret from the environment reaches the container log. The tail of
    stderr is kept: it holds the error of a training process that failed.
    """

    TAIL_BYTES = 16384

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._pumps: list[tuple[int, int, threading.Thread]] = []
        self._tail = bytearray()

    def __enter__(self) -> RedactedOutput:
        for fd, stream in ((1, sys.stdout), (2, sys.stderr)):
            stream.flush()
            saved = os.dup(fd)
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)
            os.close(write_end)
            pump = threading.Thread(target=self._pump, args=(read_end, saved, fd == 2), daemon=True)
            pump.start()
            self._pumps.append((fd, saved, pump))
        return self

    def __exit__(self, *_exc: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        for fd, saved, _pump in self._pumps:
            os.dup2(saved, fd)  # closes our write end: the pump reads to the end and stops
        for _fd, saved, pump in self._pumps:
            pump.join(timeout=5)  # a lingering grandchild may hold the pipe open; don't wait for it
            os.close(saved)

    def _pump(self, read_end: int, out: int, keep_tail: bool) -> None:
        held = b""
        try:
            while chunk := os.read(read_end, 65536):
                ready, held = self._redactor.split_safe(held + chunk)
                self._emit(out, ready, keep_tail)
            self._emit(out, self._redactor.bytes(held), keep_tail)
        except OSError:
            pass  # the saved descriptor was closed after a timed-out join
        finally:
            os.close(read_end)

    def _emit(self, out: int, data: bytes, keep_tail: bool) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(out, view) :]
        if keep_tail:
            self._tail += data
            del self._tail[: -self.TAIL_BYTES]

    def stderr_tail(self) -> str:
        return self._tail.decode("utf-8", errors="replace")


_TRAIN_ERROR = re.compile(r"grpo-rlvr train: error: (.+)")
_EXCEPTION = re.compile(r"\b([A-Za-z_][\w.]*(?:Error|Exception|Interrupted)): (\S.*)")
_WRAPPER_ERRORS = ("ChildFailedError", "CalledProcessError")  # torchrun's and accelerate's, not the cause


def error_from_output(text: str) -> str | None:
    """The most telling error line a failed training process printed: the CLI's own error line, else
    the last exception line that is not the launcher tools' wrapper around it."""
    lines = text.splitlines()
    for line in reversed(lines):
        if match := _TRAIN_ERROR.search(line):
            return match.group(1).strip()
    for line in reversed(lines):
        match = _EXCEPTION.search(line)
        if match and not match.group(1).endswith(_WRAPPER_ERRORS):
            return f"{match.group(1)}: {match.group(2).strip()}"
    return None


def interrupted_reason(signum: int, checkpoint_dir: Path) -> str:
    """The failure reason of a stopped run: what a restart resumes from."""
    name = signal.Signals(signum).name
    checkpoint = latest_complete_checkpoint(checkpoint_dir)
    if checkpoint is None:
        return (
            f"stopped by {name} before any checkpoint was complete: a new start trains from step 0\n"
            f"(no complete checkpoint in {checkpoint_dir})"
        )
    step = checkpoint_step(checkpoint)
    return (
        f"stopped by {name}: start again with the same checkpoint location to resume from step {step}\n"
        f"checkpoint: {checkpoint}"
    )


class RedactingFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__("%(asctime)s grpo-rlvr launch %(levelname)s %(message)s")
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self._redactor.text(super().format(record))


@contextmanager
def _logging(redactor: Redactor) -> Iterator[None]:
    """INFO logs (the launcher's and, in-process, training's) on stderr, redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(redactor))
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Before training's own handler (or the forwarding one) takes over, SIGTERM/SIGINT stop the launcher
    cleanly: a failure file and an exit code, never a silent death."""

    def stop(signum: int, _frame: object) -> None:
        raise Stopped(signum)

    with signals.handling(stop):
        yield


def _run_distributed(plan: Plan, run_config: config.RunConfig, lock: RunLock) -> tuple[int, int | None]:
    """`accelerate launch` on this host; returns (exit code, signal forwarded or None).

    A built-in model is built here, once per host, before any process group exists: inside one,
    transformers writes files on global rank 0 only, which left every other host a folder without a config.
    """
    tiny.resolve_model_path(run_config.model.model_name_or_path)
    config_file = accelerate_config_path(plan.accelerate_config)
    main_address = host_address(plan.resources.main_host, os.environ)
    port = int(os.environ.get(PORT_ENV, DEFAULT_PORT))
    extra_env = {k: v for k, v in distributed_env(plan.resources, plan.gpus).items() if k not in os.environ}
    log.info("environment added for the training processes: %s", json.dumps(extra_env, sort_keys=True))
    with handoff.settings_file(plan.recipe, plan.overrides) as settings:
        command = accelerate_command(plan, config_file, main_address, port, settings)
        log.info("running: %s", " ".join(command))
        return run_children(command, {**os.environ, **extra_env}, pass_fds=(lock.fd,))


def _fail(paths: Paths, redactor: Redactor, code: int, reason: str) -> int:
    """Leave the failure file (its room kept by `sagemaker.failure_room`) and return `code`."""
    text = sagemaker.write_failure(paths, reason, redactor)
    log.log(logging.WARNING if code > EXIT_BAD_INPUT else logging.ERROR, "failure: %s", text)
    return code


def _disk_full(paths: Paths) -> str:
    """A note for a failure reason when the volume of /opt/ml has (next to) no room left, else ""."""
    try:
        free = shutil.disk_usage(paths.checkpoint_dir).free
    except OSError:
        return ""
    if free >= DISK_FULL_BYTES:
        return ""
    return (
        f"the disk is full ({free // 2**20} MiB free on the volume of {paths.checkpoint_dir}): give the job "
        "a larger volume (VolumeSizeInGB) or keep fewer checkpoints (save_total_limit); "
    )


def _already_finished(paths: Paths, plan: Plan, run_config: config.RunConfig) -> bool:
    """A single-host run whose model and summary are complete with these very settings (a SageMaker
    retry, a reused folder) has nothing left to do. With several hosts only the main one holds the
    summary, so they all resume instead: from the final checkpoint, to the same end."""
    if len(plan.resources.hosts) > 1:
        return False
    summary = finished_run(paths.model_dir, run_config.resolved())
    if summary is None:
        return False
    log.info(
        "this run already finished (step %s) with the same settings: %s is complete, nothing to do",
        summary.get("global_step"), paths.model_dir,
    )  # fmt: skip
    return True


def _check_resumable(run_config: config.RunConfig, checkpoint_dir: Path) -> None:
    """The checkpoint training would resume from is ours (same weight settings), before any process
    starts or model loads; whether its content is unchanged, training checks as it resumes."""
    named = run_config.training.resume_from_checkpoint
    candidate = Path(named) if named else latest_complete_checkpoint(checkpoint_dir)
    if candidate is not None and is_complete(candidate):
        check_settings(candidate, weight_settings(run_config.model))


def _attempt(
    paths: Paths, cli_overrides: Sequence[str], redactor: Redactor, output: RedactedOutput, lock: RunLock
) -> int:
    """One attempt, holding the run lock: returns the exit code, leaving a failure file for every
    non-zero one."""
    try:
        plan, run_config = make_plan(paths, cli_overrides, redactor)
        if _already_finished(paths, plan, run_config):
            paths.failure_file.unlink(missing_ok=True)
            return EXIT_OK
        sagemaker.clear_stale_results(paths, SUMMARY_NAME)
        _check_resumable(run_config, paths.checkpoint_dir)
        r = plan.resources
        log.info(
            "recipe %s: %d process(es) = %d GPU(s) x %d host(s); this host %s has machine rank %d",
            plan.recipe, plan.processes, plan.gpus, len(r.hosts), r.current_host, r.rank,
        )  # fmt: skip
        config.check_device(run_config)  # before N processes start, each to refuse the same way
        if plan.processes == 1:
            from grpo_rlvr.training import grpo  # torch, transformers and TRL: only where this process trains

            grpo.run(run_config)  # training's own SIGTERM handler checkpoints and raises
            return EXIT_OK
        code, forwarded = _run_distributed(plan, run_config, lock)
    except (Stopped, TrainingInterrupted) as stop:
        return _fail(
            paths, redactor, 128 + stop.signum, interrupted_reason(stop.signum, paths.checkpoint_dir)
        )
    except BAD_INPUT_ERRORS as err:
        return _fail(paths, redactor, EXIT_BAD_INPUT, str(err))
    except Exception as err:
        log.error("training failed:\n%s", traceback.format_exc())
        reason = f"{_disk_full(paths)}training failed: {type(err).__name__}: {err}"
        return _fail(paths, redactor, EXIT_FAILED, reason)
    if forwarded is not None:
        return _fail(paths, redactor, 128 + forwarded, interrupted_reason(forwarded, paths.checkpoint_dir))
    if code != 0:
        error = error_from_output(output.stderr_tail())
        reason = f"{_disk_full(paths)}training failed: a training process exited with code {code}"
        return _fail(paths, redactor, EXIT_FAILED, f"{reason}: {error}" if error else reason)
    if r.rank == 0 and not (paths.model_dir / SUMMARY_NAME).is_file():
        return _fail(
            paths, redactor, EXIT_FAILED, f"training failed: it exited 0 but wrote no {SUMMARY_NAME}"
        )
    return EXIT_OK


def _launch(paths: Paths, cli_overrides: Sequence[str], redactor: Redactor, output: RedactedOutput) -> int:
    """The attempt under the run lock and with room kept for its failure reason. A launch refused
    because another run holds the tree leaves no failure file: the tree's results are the other run's."""
    with ExitStack() as held:
        try:
            lock = held.enter_context(RunLock(paths.checkpoint_dir))
        except AlreadyRunning as err:
            log.error("%s", err)
            return EXIT_BAD_INPUT
        except OSError as err:  # the checkpoint folder cannot be made, or the lock file opened
            reason = (
                f"fix {paths.checkpoint_dir}: it cannot hold this run's checkpoints ({err.strerror or err})"
            )
            return _fail(paths, redactor, EXIT_BAD_INPUT, reason)
        held.enter_context(sagemaker.failure_room(paths))
        return _attempt(paths, cli_overrides, redactor, output, lock)


def main(cli_overrides: Sequence[str] = ()) -> int:
    """`grpo-rlvr launch [key=value ...]`: everything else comes from the /opt/ml tree and the environment."""
    paths = Paths.from_env(os.environ)
    redactor = Redactor.from_env(os.environ)
    with RedactedOutput(redactor) as output, _logging(redactor), _stop_on_signals():
        return _launch(paths, cli_overrides, redactor, output)
