"""What every benchmark here shares: step timing inside a Trainer, machine facts, one-core runs."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from multiprocessing import get_context
from typing import Any, TypeVar

from transformers import TrainerCallback

T = TypeVar("T")


class StepTimer(TrainerCallback):
    """Wall time between optimizer-step ends, and TRL's logged metrics of every step.

    Intervals between consecutive `on_step_end`s hold everything a step costs (generation, reward,
    logprob passes, backward, optimizer, logging, checkpointing, every other callback), but not the
    set-up before training nor the saving after it. The first step is reported apart: it carries
    one-time work (lazy allocations, kernel selection, vLLM's first batch).
    """

    def __init__(self) -> None:
        self.begin: float | None = None
        self.ends: list[float] = []
        self.logs: list[dict[str, float]] = []

    def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        self.begin = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        self.ends.append(time.perf_counter())

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **_: Any) -> None:
        if logs and "completions/mean_length" in logs:  # a step's metrics, not the final summary
            self.logs.append({k: float(v) for k, v in logs.items() if _is_number(v)})

    def step_seconds(self) -> list[float]:
        """Duration of every step after the first."""
        return [b - a for a, b in zip(self.ends, self.ends[1:], strict=False)]

    def summary(self, completions_per_step: int) -> dict[str, float | int | None]:
        """Steps/s and completion tokens/s over the steps after the first (needs logging_steps=1)."""
        if self.begin is None or len(self.ends) < 2:
            raise RuntimeError(f"need at least 2 optimizer steps to time one, got {len(self.ends)}")
        seconds = self.step_seconds()
        timed_logs = self.logs[1 : len(self.ends)]
        lengths = [log["completions/mean_length"] for log in timed_logs]
        tokens = sum(lengths) * completions_per_step
        return {
            "steps_timed": len(seconds),
            "seconds_timed": sum(seconds),
            "first_step_s": self.ends[0] - self.begin,
            "median_step_s": statistics.median(seconds),
            "steps_per_s": len(seconds) / sum(seconds),
            "completions_per_s": len(seconds) * completions_per_step / sum(seconds),
            "completion_tokens_per_s": tokens / sum(seconds) if len(lengths) == len(seconds) else None,
            "mean_completion_length": statistics.fmean(lengths) if lengths else None,
        }


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def machine_info() -> dict[str, Any]:
    """The facts a reader needs to compare numbers across machines; load shows shared-core contention."""
    import torch

    from grpo_rlvr.versions import package_versions

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "load_average_1m": os.getloadavg()[0],
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": package_versions(),
    }


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _pin_to_one_core() -> None:
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})


def on_one_core(fn: Callable[..., T], *args: Any) -> T:
    """fn(*args) in a fresh process pinned to one CPU: a per-core number, whatever else the machine runs."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=_pin_to_one_core) as pool:
        return pool.submit(fn, *args).result()
