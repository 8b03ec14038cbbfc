"""Start-up time: from process start to the end of the first training step, launcher against floors;
and the time to a config error (a mistyped key), by hand and as a job's hyperparameter.

`grpo-rlvr launch` runs as the image runs it, against a fake /opt/ml tree (SAGEMAKER_BASE_DIR) holding
the smoke recipe as a hyperparameter and a train channel of real GSM8K rows. The first step's end is
when TRL prints its first metrics line (logging_steps=1), read from the child's output as it comes;
that line carries TRL's `step_time`, so the start of the first step is known as well. Floors: a bare
TRL script with identical settings (`overhead.py bare`), `import grpo_rlvr.training.grpo` (torch,
transformers, TRL), and an empty interpreter.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from overhead import RECIPE
from prompts import GSM8K_TRAIN

BENCH = Path(__file__).resolve().parent
FLOORS = {"import_grpo_rlvr_training": "import grpo_rlvr.training.grpo; print()", "python": "print()"}
STEP_TIME = re.compile(r"'step_time': '?([0-9.eE+-]+)'?")


def write_opt_ml(base: Path, rows: int, hyperparameters: dict[str, str]) -> Path:
    """A one-host /opt/ml tree as SageMaker lays it out: config JSONs (string values) and a train channel."""
    train = base / "input" / "data" / "train"
    train.mkdir(parents=True)
    with GSM8K_TRAIN.open(encoding="utf-8") as src:
        (train / "data.jsonl").write_text("".join(next(src) for _ in range(rows)), encoding="utf-8")
    config = base / "input" / "config"
    config.mkdir(parents=True)
    files = {
        "hyperparameters.json": hyperparameters,
        "resourceconfig.json": {"current_host": "algo-1", "hosts": ["algo-1"]},
        "inputdataconfig.json": {"train": {"TrainingInputMode": "File"}},
    }
    for name, payload in files.items():
        (config / name).write_text(json.dumps(payload), encoding="utf-8")
    return base


def time_to_first_step(command: Sequence[str], env: dict[str, str]) -> dict[str, Any]:
    """Run `command`; seconds from its start to its first step's end (and start), and to its exit."""
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first_end = step_time = None
    tail: list[str] = []
    assert child.stdout is not None
    for line in child.stdout:  # text mode splits tqdm's carriage returns too
        if first_end is None and (found := STEP_TIME.search(line)):
            first_end, step_time = time.perf_counter() - start, float(found[1])
        tail = [*tail[-30:], line]
    code = child.wait()
    total = time.perf_counter() - start
    if code != 0 or first_end is None or step_time is None:
        raise RuntimeError(f"{' '.join(command)} exited {code} without a logged step:\n{''.join(tail)}")
    return {"first_step_end_s": first_end, "first_step_start_s": first_end - step_time, "exit_s": total}


def time_to_output(command: Sequence[str], env: dict[str, str]) -> float:
    """Seconds from start to the command's first line on stdout (not to its exit: tearing down torch
    and TRL at exit takes a while and is no part of a start-up)."""
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert child.stdout is not None
    line = child.stdout.readline()
    seconds = time.perf_counter() - start
    child.stdout.read()
    if child.wait() != 0 or not line:
        raise RuntimeError(f"{' '.join(command)} failed or printed nothing")
    return seconds


def time_to_exit(command: Sequence[str], env: dict[str, str], code: int) -> float:
    """Seconds from start to the command's exit, which must be `code` (a config error exits 2)."""
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != code:
        raise RuntimeError(
            f"{' '.join(command)} exited {done.returncode}, not {code}:\n{done.stderr[-2000:]}"
        )
    return seconds


def config_error_commands(workdir: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    """A mistyped key, by hand (`grpo-rlvr train`) and as a job's hyperparameter (`grpo-rlvr launch`)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    base = write_opt_ml(workdir, 8, {"recipe": RECIPE, "learning_rat": "1e-5"})
    train = [sys.executable, "-m", "grpo_rlvr.cli", "train", "--recipe", RECIPE, "learning_rat=1e-5"]
    return {
        "train": (train, env),
        "launch": (
            [sys.executable, "-m", "grpo_rlvr.cli", "launch"],
            {**env, "SAGEMAKER_BASE_DIR": str(base)},
        ),
    }


def startup_commands(workdir: Path, rows: int, steps: int) -> dict[str, tuple[list[str], dict[str, str]]]:
    """(command, environment) of the two start-ups compared: the launcher on a fresh /opt/ml tree, and
    the bare TRL script on the same channel with the same settings."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    overrides = {"max_steps": steps, "logging_steps": 1}
    hyperparameters = {"recipe": RECIPE, **{k: json.dumps(v) for k, v in overrides.items()}}
    base = write_opt_ml(workdir, rows, hyperparameters)
    channel = base / "input" / "data" / "train"
    bare = [sys.executable, str(BENCH / "overhead.py"), "bare", f"dataset_path={channel}"]
    return {
        "launcher": (
            [sys.executable, "-m", "grpo_rlvr.cli", "launch"],
            {**env, "SAGEMAKER_BASE_DIR": str(base)},
        ),
        "bare_trl": ([*bare, *(f"{k}={v}" for k, v in overrides.items())], env),
    }


def bench_startup(rows: int = 64, steps: int = 1, repeats: int = 1) -> dict[str, Any]:
    """Best of `repeats` for each command (start-up noise only ever adds time), alternating commands."""
    results: dict[str, list[dict[str, Any]]] = {"launcher": [], "bare_trl": []}
    floors: dict[str, list[float]] = {name: [] for name in FLOORS}
    errors: dict[str, list[float]] = {"train": [], "launch": []}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        for i in range(repeats):
            for name, (command, env) in startup_commands(Path(tmp) / f"opt_ml-{i}", rows, steps).items():
                results[name].append(time_to_first_step(command, env))
            for name, (command, env) in config_error_commands(Path(tmp) / f"errors-{i}").items():
                errors[name].append(time_to_exit(command, env, 2))
            for name, code in FLOORS.items():
                floors[name].append(time_to_output([sys.executable, "-c", code], os.environ.copy()))
    launcher, bare_trl = (min(results[k], key=lambda r: r["first_step_end_s"]) for k in results)
    return {
        "rows": rows,
        "repeats": repeats,
        "launcher": launcher,
        "bare_trl": bare_trl,
        **{f"{name}_s": min(times) for name, times in floors.items()},
        **{f"config_error_{name}_s": min(times) for name, times in errors.items()},
        "launcher_over_bare_first_step": launcher["first_step_end_s"] / bare_trl["first_step_end_s"],
    }


if __name__ == "__main__":
    print(json.dumps(bench_startup(), indent=2))
