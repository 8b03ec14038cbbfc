"""Data files: which files a path holds, every row in each read exactly once, and writing rows back.

The rules a folder (a SageMaker channel, a `prepare` output) is read by:
- Every `.jsonl`, `.json` and `.parquet` file in it and in its subfolders, suffixes in any case
  (`part-1.JSONL` too), sorted by path.
- Symbolic links are followed, to files and folders alike; a file reached twice (through a link and
  directly, or through two links) is read once. A link that leads back into a folder it is inside is
  a loop and an error, as is a link to a data file that does not exist.
- Hidden entries (names starting with `.`: `.ipynb_checkpoints/`, an editor's `.swp`, a temporary
  file being written) are skipped and counted.
- A JSON row with a key twice, or text holding a lone surrogate (`"\\ud800"`, no valid Unicode), is
  unusable: in a JSON Lines file that row is dropped by file:line, in a JSON array file the file is.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grpo_rlvr.files import DATA_SUFFIXES, write_atomic

SHOWN_ISSUES = 10  # bad rows named one by one in errors, logs and summaries; the rest are counted
BOM = "\ufeff"  # a UTF-8 byte-order mark, which some editors write at the start of a file
# A JSON escape that can spell half of a surrogate pair: only then can a parsed string hold a lone one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class DataError(ValueError):
    """Data that cannot be used; the message says what to fix."""


@dataclass
class DroppedRows:
    """Rows left out, each `place: reason`: all counted, the first SHOWN_ISSUES named (file:line), in the
    log, in run_summary.json and in an error alike."""

    problems: list[str] = field(default_factory=list)

    def issues(self, limit: int = SHOWN_ISSUES) -> dict[str, Any]:
        """Every dropped row counted, the first `limit` named: for run_summary.json."""
        return {"count": len(self.problems), "first": self.problems[:limit]}

    def listing(self) -> str:
        """The first rows, one per line, then how many more."""
        more = len(self.problems) - SHOWN_ISSUES
        return "\n  ".join(self.problems[:SHOWN_ISSUES]) + (f"\n  ... and {more} more" if more > 0 else "")

    def log(self, logger: logging.Logger) -> None:
        for problem in self.problems[:SHOWN_ISSUES]:
            logger.warning("dropped %s", problem)
        if len(self.problems) > SHOWN_ISSUES:
            logger.warning("... and %d more dropped rows", len(self.problems) - SHOWN_ISSUES)


@dataclass
class Found:
    """The data files under a path, and what was passed over on the way."""

    files: list[Path]
    hidden: list[Path] = field(default_factory=list)  # hidden entries skipped (a folder counts once)
    repeated: list[Path] = field(default_factory=list)  # paths of a file already found by another path

    def skipped(self) -> str:
        """What was skipped, for the load summary ("" when nothing was)."""
        parts = []
        if self.hidden:
            names = ", ".join(p.name for p in self.hidden[:3])
            entries = "entry" if len(self.hidden) == 1 else "entries"
            parts.append(f"{len(self.hidden)} hidden {entries} skipped ({names})")
        if self.repeated:
            parts.append(f"{len(self.repeated)} file(s) reached twice read once ({self.repeated[0]})")
        return "; ".join(parts)


def is_data_file(path: Path) -> bool:
    """A name with a data suffix, in any case."""
    return path.suffix.lower() in DATA_SUFFIXES


def data_files(path: Path) -> Found:
    """A data file, or every data file in a folder such as a SageMaker channel, by the module's rules."""
    if path.is_file():
        return Found([path])
    if not path.is_dir():
        raise DataError(f"data path does not exist: {path}")
    found = Found([])
    real_files: set[Path] = set()
    for file in _walk(path, found, (path.resolve(),)):
        real = file.resolve()
        if real in real_files:
            found.repeated.append(file)
        else:
            real_files.add(real)
            found.files.append(file)
    if not found.files:
        skipped = f" ({found.skipped()})" if found.skipped() else ""
        raise DataError(f"no {'/'.join(DATA_SUFFIXES)} files in {path}{skipped}")
    return found


def _walk(folder: Path, found: Found, inside: tuple[Path, ...]) -> Iterator[Path]:
    """Data files under `folder` in path order; `inside` holds the real folders being walked (loops)."""
    try:
        entries = sorted(folder.iterdir())
    except OSError as err:
        raise DataError(f"{folder}: cannot list it ({err.strerror})") from err
    for entry in entries:
        if entry.name.startswith("."):
            found.hidden.append(entry)
        elif entry.is_dir():
            real = entry.resolve()
            if real in inside:
                raise DataError(f"{entry} links to {real}, a folder it is inside: remove the loop")
            yield from _walk(entry, found, (*inside, real))
        elif is_data_file(entry):
            if entry.is_symlink() and not entry.exists():  # data that was meant to be there
                raise DataError(f"{entry} is a symbolic link to {entry.readlink()}, which does not exist")
            if entry.is_file():
                yield entry


class DuplicateKeyError(ValueError):
    """A JSON object names one key twice."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object hook: an object, unless a key is in it twice (json.loads would keep the last)."""
    row: dict[str, Any] = {}
    for key, value in pairs:
        if key in row:
            raise DuplicateKeyError(f"key {key!r} appears twice in one object: keep one")
        row[key] = value
    return row


def parse_json(text: str | bytes) -> Any:
    """One JSON text; every way it can be unusable is a ValueError saying why, never a crash.

    Bytes must be UTF-8 (never silently replaced); a leading byte-order mark is allowed. A key twice in
    one object and a lone surrogate are refused (one value would be lost silently; the other cannot be
    written as UTF-8 by anything downstream). Nesting past the interpreter's recursion limit and integers
    past its digit limit are refused here, row by row.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(
                f"invalid UTF-8: byte 0x{text[err.start]:02x} at column {err.start + 1}"
            ) from err
    try:
        value = json.loads(text.removeprefix(BOM), object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as err:
        raise ValueError(f"malformed JSON line: {err.msg}") from err
    except RecursionError as err:
        raise ValueError("JSON nested too deeply") from err
    except DuplicateKeyError:
        raise
    except ValueError as err:  # the integer digit limit (sys.get_int_max_str_digits)
        raise ValueError(f"JSON number too long: {str(err).partition(';')[0]}") from err
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as err:
            lone = err.object[err.start]
            raise ValueError(f"text holds a lone surrogate {lone!r}, which is not valid Unicode") from None
    return value


def json_lines(path: Path) -> Iterator[tuple[str, Any]]:
    """(file:line, row) for every non-blank line of a JSON Lines file; a row that cannot be read is a
    ValueError in place of the row, so one bad line costs that line only."""
    try:
        content = path.read_bytes()
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, not a JSON Lines file") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read it ({err.strerror})") from err
    # Split on "\n" only: str.splitlines() also breaks at U+2028 and friends, which JSON strings may hold.
    for lineno, line in enumerate(content.split(b"\n"), 1):
        if line.strip():
            try:
                yield f"{path}:{lineno}", parse_json(line)
            except ValueError as err:
                yield f"{path}:{lineno}", err


def raw_rows(path: Path) -> Iterator[tuple[str, Any]]:
    """(place, row) pairs from one file; a line that cannot be read comes as its ValueError."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as err:  # pyarrow raises several types for a broken file
            raise DataError(f"{path}: not a readable Parquet file ({err})") from err
        yield from ((f"{path}:row {i + 1}", row) for i, row in enumerate(table.to_pylist()))
        return
    content = path.read_bytes() if suffix == ".json" else b""
    if content.lstrip(BOM.encode() + b" \t\r\n").startswith(b"["):
        try:
            rows = parse_json(content)
        except ValueError as err:
            raise DataError(f"{path}:{_error_line(content, err)}: not usable JSON ({err})") from err
        yield from ((f"{path}:item {i + 1}", row) for i, row in enumerate(rows))
        return
    yield from json_lines(path)


def _error_line(content: bytes, err: ValueError) -> int:
    """The line a whole-file JSON error is on: JSON's own line, else the line of the first bad byte."""
    cause = err.__cause__
    if isinstance(cause, json.JSONDecodeError):
        return cause.lineno
    if isinstance(cause, UnicodeDecodeError):
        return content.count(b"\n", 0, cause.start) + 1
    return 1


def jsonl_text(rows: Sequence[dict[str, Any]], places: Sequence[str] | None = None) -> str:
    """Rows as JSON Lines text; DataError naming (by `places`, else position) every row JSON cannot hold."""
    lines, bad = [], []
    for i, row in enumerate(rows):
        try:
            line = json.dumps(row, ensure_ascii=False)
            line.encode("utf-8")
            lines.append(line + "\n")
        except (TypeError, ValueError) as err:  # UnicodeEncodeError is a ValueError
            bad.append(f"{places[i] if places else f'row {i + 1}'}: cannot be written as JSON ({err})")
    if bad:
        raise DataError(f"{len(bad)} row(s) cannot be written:\n  {DroppedRows(bad).listing()}")
    return "".join(lines)


def write_jsonl(rows: Sequence[dict[str, Any]], path: Path, places: Sequence[str] | None = None) -> None:
    """Write rows as JSON lines, creating the folder (a channel ready to upload). The file is replaced
    only by a complete new one: a row that cannot be written fails before anything is touched."""
    write_atomic(path, jsonl_text(rows, places))
