"""Completion markers and the stop that leaves a checkpoint: what the launcher and training share.

A finished model is a `model_dir` holding `SUMMARY_NAME`, written last. A checkpoint counts once every
process has finished writing it and the main process has listed its files in a marker
(`CHECKPOINT_MARKER`): each file's size and SHA-256, and the settings that shape the weights
(`WEIGHT_SETTINGS`). Standard library only: the launcher reads this without importing torch or TRL.

Two checks of different cost: `is_complete` (marker present, every listed file at its size) is cheap and
answers "did the save finish?" (rotation, the stop message); `resume_point` also hashes the files of the
one checkpoint a run resumes from, skips one whose content changed since (naming it), and refuses one
written for other weight settings (`ForeignCheckpoint`, before any model loads). transformers'
`get_last_checkpoint` would pick a folder a process killed mid-save left without its marker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from grpo_rlvr.files import write_atomic

log = logging.getLogger(__name__)

CHECKPOINT_MARKER = "grpo_rlvr_complete.json"
SUMMARY_NAME = "run_summary.json"
# ModelConfig fields that decide which weights a checkpoint holds and what they mean: resuming under other
# values fails after the model loads (other shapes or names) or, worse, trains on (another alpha).
WEIGHT_SETTINGS = (
    "model_name_or_path", "model_revision", "use_peft", "lora_r", "lora_alpha", "lora_target_modules",
    "lora_target_parameters", "lora_modules_to_save", "use_rslora", "use_dora", "load_in_4bit",
    "load_in_8bit", "bnb_4bit_quant_type", "use_bnb_nested_quant",
)  # fmt: skip


class TrainingInterrupted(RuntimeError):
    """SIGTERM or SIGINT stopped training: a checkpoint was written at `step`; no model was written."""

    def __init__(self, step: int, checkpoint: str | Path | None, signum: int = signal.SIGTERM) -> None:
        where = f"checkpoint {checkpoint}" if checkpoint else "no checkpoint (stopped before training)"
        name = signal.Signals(signum).name
        super().__init__(f"training stopped by {name} at step {step}; resume from {where}")
        self.signum = signum
        self.step = step
        self.checkpoint = Path(checkpoint) if checkpoint else None


class ForeignCheckpoint(ValueError):
    """The checkpoint to resume from was written by a run with other weight settings."""


def checkpoint_step(checkpoint: str | Path) -> int:
    """The step of a `checkpoint-N` folder."""
    return int(Path(checkpoint).name.rpartition("-")[2])


def weight_settings(model: Any) -> dict[str, Any]:
    """`WEIGHT_SETTINGS` of a ModelConfig, as JSON reads them back (module lists in sorted order)."""
    values = {name: getattr(model, name, None) for name in WEIGHT_SETTINGS}
    return {k: sorted(v) if isinstance(v, list | tuple | set) else v for k, v in values.items()}


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _files(folder: Path) -> dict[str, dict[str, Any]]:
    """Every file under `folder` but the marker: its size and SHA-256 (hashed on several threads: the
    hash releases the GIL, and a full checkpoint holds gigabytes of optimizer state)."""
    paths = [p for p in sorted(folder.rglob("*")) if p.is_file() and p.name != CHECKPOINT_MARKER]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        digests = list(pool.map(_sha256, paths))
    return {
        str(p.relative_to(folder)): {"size": p.stat().st_size, "sha256": digest}
        for p, digest in zip(paths, digests, strict=True)
    }


def mark_complete(checkpoint: Path, step: int, settings: Mapping[str, Any]) -> None:
    """List the checkpoint's files (size, SHA-256) and the weight settings in its marker, after every
    process has written its part."""
    marker = {"step": step, "settings": dict(settings), "files": _files(checkpoint)}
    write_atomic(checkpoint / CHECKPOINT_MARKER, json.dumps(marker, indent=1))


def _marker(checkpoint: Path) -> dict[str, Any] | None:
    """The marker's content, or None without one that lists files in the current form."""
    try:
        marker = json.loads((checkpoint / CHECKPOINT_MARKER).read_text())
        listed = marker["files"]
        if listed and all(isinstance(f, dict) and {"size", "sha256"} <= f.keys() for f in listed.values()):
            return marker
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def is_complete(checkpoint: Path) -> bool:
    """True when the marker exists and every file it lists is there with the size it had."""
    marker = _marker(checkpoint)
    return marker is not None and all(
        (checkpoint / name).is_file() and (checkpoint / name).stat().st_size == listed["size"]
        for name, listed in marker["files"].items()
    )


def damage(checkpoint: Path) -> str | None:
    """What makes a checkpoint unusable (no marker, a listed file missing, resized or with other content
    than its recorded SHA-256), or None for a checkpoint whose every file is as it was written."""
    if not is_complete(checkpoint):
        return "incomplete (no completeness marker, or a listed file missing or of another size)"
    for name, listed in _marker(checkpoint)["files"].items():  # type: ignore[index]
        if _sha256(checkpoint / name) != listed["sha256"]:
            return f"{name} does not hold the content its marker records (SHA-256 differs)"
    return None


def check_settings(checkpoint: Path, settings: Mapping[str, Any]) -> None:
    """ForeignCheckpoint naming every weight setting the checkpoint was written with that differs."""
    recorded = (_marker(checkpoint) or {}).get("settings", {})
    differ = [
        f"{name}: {recorded.get(name)!r} there, {settings[name]!r} here"
        for name in WEIGHT_SETTINGS
        if recorded.get(name) != settings.get(name)
    ]
    if differ:
        raise ForeignCheckpoint(
            f"checkpoint {checkpoint} was written by a run with other weight settings ({'; '.join(differ)}): "
            "resume it with its own settings, or give this run another checkpoint folder"
        )


def resume_point(output_dir: str | Path, settings: Mapping[str, Any]) -> Path | None:
    """The newest checkpoint to resume from: complete and unchanged (damaged ones are skipped, each named
    in the log); ForeignCheckpoint when it belongs to a run with other weight settings."""
    for checkpoint in reversed(checkpoint_folders(output_dir)):
        problem = damage(checkpoint)
        if problem is None:
            check_settings(checkpoint, settings)
            return checkpoint
        log.warning("skipping checkpoint %s: %s", checkpoint, problem)
    return None


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


def finished_run(model_dir: Path, config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The summary of the finished run in `model_dir` when it ran with exactly `config` (its resolved
    settings, as the summary records them) and did all it was asked (the evaluation too); else None."""
    try:
        summary = json.loads((model_dir / SUMMARY_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or summary.get("status") != "completed":
        return None
    if summary.get("config") != config:
        return None
    if config.get("run", {}).get("eval_at_end") and "evaluation" not in summary:
        return None  # the evaluation failed after the model was written: a relaunch does it again
    return summary
