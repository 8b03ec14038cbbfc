"""Local files: writes a reader never sees half-done, and telling a local path from a hub id.

Standard library only. Every marker this package writes (`run_summary.json`, a checkpoint's
completeness marker, SageMaker's failure reason) goes through `write_atomic`, and every setting that
takes "a hub id or a path" asks `is_local_path`, so `~/d.jsonl` is a local file everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

LOCAL_PREFIXES = (".", "/", "~")  # how a path that does not exist yet still says it is one
DATA_SUFFIXES = (".jsonl", ".json", ".parquet")  # the data files this package reads


def local_path(source: str | Path) -> Path:
    """The path `source` names, with `~` expanded."""
    return Path(source).expanduser()


def is_local_path(source: str | Path) -> bool:
    """Whether `source` means a local path, never a hub id to download, whether or not it exists.

    It does when it exists, is written as a path (`./`, `/`, `~`), names a data file (`train.jsonl`,
    `data/Train.JSONL`), or sits in a folder that exists here (`opt_ml/model` while `opt_ml/` exists):
    a hub id (`org/name`) is none of these, so a missing local path is reported missing at once.
    """
    text, path = str(source), local_path(source)
    if text.startswith(LOCAL_PREFIXES) or path.suffix.lower() in DATA_SUFFIXES:
        return True
    try:
        return path.exists() or (len(path.parts) > 1 and path.parent.is_dir())
    except (OSError, ValueError):  # a name too long, or with a NUL byte: no hub id either
        return True


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a hidden temporary file in the same folder, then rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
