"""The launcher's output: file descriptors 1 and 2 and the log records pass through the Redactor, and the
error line a failed training process printed is picked out for the failure file."""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from grpo_rlvr.redact import Redactor


class RedactedOutput:
    """Routes file descriptors 1 and 2 of this process, and so of every child, through the Redactor.

    Masking at the descriptor, not in a logging handler, also covers prints, C libraries and the
    training processes, so no secret from the environment reaches the container log. The tail of
    stderr is kept: it holds the error of a training process that failed.
    """

    TAIL_BYTES = 16384

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._pumps: list[tuple[int, int, threading.Thread]] = []
        self._tail = bytearray()

    def __enter__(self) -> RedactedOutput:
        for fd, stream in ((1, sys.stdout), (2, sys.stderr)):
            stream.flush()
            saved = os.dup(fd)
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)
            os.close(write_end)
            pump = threading.Thread(target=self._pump, args=(read_end, saved, fd == 2), daemon=True)
            pump.start()
            self._pumps.append((fd, saved, pump))
        return self

    def __exit__(self, *_exc: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        for fd, saved, _pump in self._pumps:
            os.dup2(saved, fd)  # closes our write end: the pump reads to the end and stops
        for _fd, saved, pump in self._pumps:
            pump.join(timeout=5)  # a lingering grandchild may hold the pipe open; don't wait for it
            os.close(saved)

    def _pump(self, read_end: int, out: int, keep_tail: bool) -> None:
        held = b""
        try:
            while chunk := os.read(read_end, 65536):
                ready, held = self._redactor.split_safe(held + chunk)
                self._emit(out, ready, keep_tail)
            self._emit(out, self._redactor.bytes(held), keep_tail)
        except OSError:
            pass  # the saved descriptor was closed after a timed-out join
        finally:
            os.close(read_end)

    def _emit(self, out: int, data: bytes, keep_tail: bool) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(out, view) :]
        if keep_tail:
            self._tail += data
            del self._tail[: -self.TAIL_BYTES]

    def stderr_tail(self) -> str:
        return self._tail.decode("utf-8", errors="replace")


_TRAIN_ERROR = re.compile(r"grpo-rlvr train: error: (.+)")
_EXCEPTION = re.compile(r"\b([A-Za-z_][\w.]*(?:Error|Exception|Interrupted)): (\S.*)")
_WRAPPER_ERRORS = ("ChildFailedError", "CalledProcessError")  # torchrun's and accelerate's, not the cause


def error_from_output(text: str) -> str | None:
    """The most telling error line a failed training process printed: the CLI's own error line, else
    the last exception line that is not the launcher tools' wrapper around it."""
    lines = text.splitlines()
    for line in reversed(lines):
        if match := _TRAIN_ERROR.search(line):
            return match.group(1).strip()
    for line in reversed(lines):
        match = _EXCEPTION.search(line)
        if match and not match.group(1).endswith(_WRAPPER_ERRORS):
            return f"{match.group(1)}: {match.group(2).strip()}"
    return None


class RedactingFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__("%(asctime)s grpo-rlvr launch %(levelname)s %(message)s")
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self._redactor.text(super().format(record))


@contextmanager
def redacted_logging(redactor: Redactor) -> Iterator[None]:
    """INFO logs (the launcher's and, in-process, training's) on stderr, redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(redactor))
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
