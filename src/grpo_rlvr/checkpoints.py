"""Completion markers and the stop that leaves a checkpoint: what the launcher and training share.

A finished model is a `model_dir` holding `SUMMARY_NAME`, written last. A checkpoint counts once every
process has finished writing it and the main process has listed its files and sizes in a marker
(`CHECKPOINT_MARKER`). Standard library only: the launcher reads this
without importing torch or TRL, and a process killed mid-save leaves a folder without the marker,
which resuming skips (transformers' `get_last_checkpoint` would pick it).
"""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path

from grpo_rlvr.files import write_atomic

log = logging.getLogger(__name__)

CHECKPOINT_MARKER = "grpo_rlvr_complete.json"
SUMMARY_NAME = "run_summary.json"


class TrainingInterrupted(RuntimeError):
    """SIGTERM or SIGINT stopped training: a checkpoint was written at `step`; no model was written."""

    def __init__(self, step: int, checkpoint: str | Path | None, signum: int = signal.SIGTERM) -> None:
        where = f"checkpoint {checkpoint}" if checkpoint else "no checkpoint (stopped before training)"
        name = signal.Signals(signum).name
        super().__init__(f"training stopped by {name} at step {step}; resume from {where}")
        self.signum = signum
        self.step = step
        self.checkpoint = Path(checkpoint) if checkpoint else None


def checkpoint_step(checkpoint: str | Path) -> int:
    """The step of a `checkpoint-N` folder."""
    return int(Path(checkpoint).name.rpartition("-")[2])


def _files(folder: Path) -> dict[str, int]:
    return {
        str(p.relative_to(folder)): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != CHECKPOINT_MARKER
    }


def mark_complete(checkpoint: Path, step: int) -> None:
    """List the checkpoint's files and sizes in its marker (after every process has written its part)."""
    write_atomic(checkpoint / CHECKPOINT_MARKER, json.dumps({"step": step, "files": _files(checkpoint)}))


def is_complete(checkpoint: Path) -> bool:
    """True when the marker exists and every file it lists is there with the size it had."""
    try:
        listed = json.loads((checkpoint / CHECKPOINT_MARKER).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return bool(listed) and all(
        (checkpoint / name).is_file() and (checkpoint / name).stat().st_size == size
        for name, size in listed.items()
    )


def latest_complete_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest `checkpoint-N` that is complete; incomplete ones are logged and left alone."""
    folder = Path(output_dir)
    found = [p for p in folder.glob("checkpoint-*") if p.is_dir() and p.name.split("-", 1)[1].isdigit()]
    for checkpoint in sorted(found, key=checkpoint_step, reverse=True):
        if is_complete(checkpoint):
            return checkpoint
        log.warning("skipping incomplete checkpoint %s", checkpoint)
    return None
