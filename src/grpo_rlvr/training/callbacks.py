"""Trainer callbacks: complete checkpoints (marking, then rotation), the non-finite stop, and the
graceful stop on SIGTERM or SIGINT (what happens on SIGTERM is all here and in `grpo.run`)."""

from __future__ import annotations

import logging
import math
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from accelerate import PartialState
from transformers import TrainerCallback
from trl import GRPOConfig

from grpo_rlvr import signals
from grpo_rlvr.checkpoints import (
    TrainingInterrupted,
    check_settings,
    checkpoint_step,
    damage,
    mark_complete,
    rotate,
)
from grpo_rlvr.config.sections import ConfigError

log = logging.getLogger(__name__)


class NonFiniteError(RuntimeError):
    """Training reached a NaN or infinite value; the message names the value and the step."""


def check_checkpoint(checkpoint: str | Path, settings: dict[str, Any]) -> None:
    """A checkpoint named to resume from must be whole, unchanged and written with these weight settings."""
    problem = damage(Path(checkpoint))
    if problem:
        raise ConfigError("resume_from_checkpoint", f"{checkpoint} cannot be resumed: {problem}")
    check_settings(Path(checkpoint), settings)


class MarkCompleteCheckpoints(TrainerCallback):
    """After every process has written its part of a checkpoint, list its files (size, SHA-256) and the
    weight settings in the marker."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings

    def on_save(self, args: GRPOConfig, state: Any, control: Any, **_: Any) -> None:
        PartialState().wait_for_everyone()  # DeepSpeed writes per-rank shards
        if args.should_save:
            checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            mark_complete(checkpoint, state.global_step, self.settings)


class RotateCompleteCheckpoints(TrainerCallback):
    """`save_total_limit` applied after the new checkpoint's marker (so after MarkCompleteCheckpoints)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit

    def on_save(self, args: GRPOConfig, state: Any, control: Any, **_: Any) -> None:
        if self.limit and args.should_save:
            rotate(args.output_dir, self.limit, state.best_model_checkpoint)


class StopOnNonFinite(TrainerCallback):
    """A NaN or infinite loss or gradient norm (as logged), or trainable weight (after each optimizer
    step), fails the run at that step, before any checkpoint or model could hold it."""

    def on_log(self, args: GRPOConfig, state: Any, control: Any, logs: dict | None = None, **_: Any) -> None:
        for key, value in (logs or {}).items():
            if isinstance(value, float) and not math.isfinite(value) and key in ("loss", "grad_norm"):
                raise NonFiniteError(f"{key} is {value} at step {state.global_step}: lower learning_rate")

    def on_step_end(self, args: GRPOConfig, state: Any, control: Any, model: Any = None, **_: Any) -> None:
        # Under DeepSpeed ZeRO-3 a parameter is empty outside a gather; each process holds one partition of
        # it (`ds_tensor`). Every partition is checked where it lives, and all processes learn the verdict.
        trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        partitioned = any(hasattr(p, "ds_tensor") for _, p in trained)
        params = [(n, getattr(p, "ds_tensor", p).detach()) for n, p in trained]
        params = [(n, t) for n, t in params if t.numel()]
        found = bool(params) and not torch.stack([t.isfinite().all() for _, t in params]).all()
        if partitioned:
            found = _any_process(found)
        if found:
            where = next((n for n, t in params if not t.isfinite().all()), "a partition on another process")
            raise NonFiniteError(
                f"weight {where} holds NaN or inf after step {state.global_step}: lower learning_rate"
            )


class GracefulStop(TrainerCallback):
    """SIGTERM or SIGINT (Ctrl-C) sets a flag; at the next step end all processes save a checkpoint and
    stop together."""

    def __init__(self) -> None:
        self.requested = False
        self.signum: int = signal.SIGTERM  # which one arrived (other processes learn only that one did)

    def request(self, signum: int, _frame: Any) -> None:
        self.requested = True
        self.signum = signum

    def raise_if_requested(self, resume: str | Path | None) -> None:
        """Before training starts, a stop leaves nothing new to save: resume from where the run stood."""
        if self.requested:
            raise TrainingInterrupted(checkpoint_step(resume) if resume else 0, resume, self.signum)

    @contextmanager
    def catching(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            log.warning("not the main thread: SIGTERM and SIGINT are left to the caller")
            yield
            return
        with signals.handling(self.request):
            yield

    def on_step_end(self, args: GRPOConfig, state: Any, control: Any, **_: Any) -> Any:
        if _any_process(self.requested):
            self.requested = True
            name = signal.Signals(self.signum).name
            log.warning("%s: saving a checkpoint at step %d and stopping", name, state.global_step)
            control.should_save = True
            control.should_training_stop = True
        return control


def _any_process(flag: bool) -> bool:
    """One process's SIGTERM stops them all at the same step, so the collective save cannot hang."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([int(flag)], device=PartialState().device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
