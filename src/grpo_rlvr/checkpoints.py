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
import shutil
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


def checkpoint_folders(output_dir: str | Path) -> list[Path]:
    """Every `checkpoint-N` folder in `output_dir`, oldest step first."""
    found = [
        p for p in Path(output_dir).glob("checkpoint-*") if p.is_dir() and p.name.split("-", 1)[1].isdigit()
    ]
    return sorted(found, key=checkpoint_step)


def latest_complete_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest `checkpoint-N` that is complete; incomplete ones are logged and left alone."""
    for checkpoint in reversed(checkpoint_folders(output_dir)):
        if is_complete(checkpoint):
            return checkpoint
        log.warning("skipping incomplete checkpoint %s", checkpoint)
    return None


def rotate(output_dir: str | Path, limit: int, best: str | Path | None = None) -> None:
    """`save_total_limit`, counted in complete checkpoints: keep the newest `limit` (and `best`).

    Run after the newest checkpoint's marker is written, so at least one complete checkpoint always
    remains. Incomplete leftovers older than the newest complete one go too (nothing can resume from
    them). Each folder loses its marker before its files: a kill mid-delete leaves an incomplete
    folder, never one that looks complete.
    """
    found = checkpoint_folders(output_dir)
    complete = [c for c in found if is_complete(c)]
    if not complete:
        return
    keep = {*complete[-limit:], *([Path(best)] if best else [])}
    newest = checkpoint_step(complete[-1])
    for checkpoint in found:
        if checkpoint not in keep and checkpoint_step(checkpoint) < newest:
            log.info("removing %s (save_total_limit=%d)", checkpoint, limit)
            (checkpoint / CHECKPOINT_MARKER).unlink(missing_ok=True)
            shutil.rmtree(checkpoint)
