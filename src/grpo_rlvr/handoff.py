"""The launcher's hand-off to its training processes: the recipe and typed overrides in a private file.

A command line is readable by every user of the host (`/proc/PID/cmdline`) and the launcher logs the one
it runs, while a recipe key may hold a credential (`hub_token`, a nested `reward_kwargs` option). So the
launcher never puts settings on a command line: it writes them as JSON to a file only its own user can
read (a fresh 0700 folder, the file 0600), hands `accelerate launch` the file's path
(`grpo-rlvr train --settings FILE`) and removes the folder once the processes have exited.

The file holds the typed values the launcher validated, not text to be parsed again, and every training
process validates them once more with the real process count (`docs/design.md`, "the launcher's
hand-off"). Standard library only.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SETTINGS_NAME = "settings.json"


@contextmanager
def settings_file(recipe: str, overrides: Mapping[str, Any]) -> Iterator[Path]:
    """A private file holding `recipe` and `overrides`, removed when the block ends."""
    folder = Path(tempfile.mkdtemp(prefix="grpo-rlvr-"))  # mode 0700: no other user lists or opens it
    try:
        path = folder / SETTINGS_NAME
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            # A value JSON has no type for (a YAML date) goes as its text, as `config` reads it anyway.
            json.dump({"recipe": recipe, "overrides": dict(overrides)}, f, default=str)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def read_settings(path: str | Path) -> tuple[str, dict[str, Any]]:
    """(recipe, typed overrides) from a file `settings_file` wrote; ValueError naming the file if not one."""
    try:
        settings = json.loads(Path(path).read_text(encoding="utf-8"))
        recipe, overrides = settings["recipe"], settings["overrides"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is no settings file written by `grpo-rlvr launch` ({err})") from err
    if not isinstance(recipe, str) or not isinstance(overrides, dict):
        raise ValueError(f"{path} is no settings file written by `grpo-rlvr launch`")
    return recipe, overrides
