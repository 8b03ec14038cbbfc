"""Local files: writes a reader never sees half-done, and telling a local path from a hub id.

Standard library only. Every marker this package writes (`run_summary.json`, a checkpoint's
completeness marker, SageMaker's failure reason) goes through `write_atomic`, and every setting that
takes "a hub id or a path" asks `is_local_path`, so `~/d.jsonl` is a local file everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

LOCAL_PREFIXES = (".", "/", "~")  # how a path that does not exist yet still says it is one


def local_path(source: str | Path) -> Path:
    """The path `source` names, with `~` expanded."""
    return Path(source).expanduser()


def is_local_path(source: str | Path) -> bool:
    """A path that exists, or text written as a path (`./`, `/`, `~`): never a hub id to download."""
    return local_path(source).exists() or str(source).startswith(LOCAL_PREFIXES)


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a hidden temporary file in the same folder, then rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # on a full disk, give back what the partial write took
        raise
