"""One run per /opt/ml: a launch holds an exclusive lock on its checkpoint folder for as long as it runs.

Two launches on one tree (two `docker compose up` on the same folder, a retry started by hand while the
first still runs) would otherwise both train into the same checkpoints and model and both exit 0. The
lock is `flock` on `LOCK_NAME` inside the checkpoint folder: the kernel drops it when the last process
holding it ends, however it ends (SIGKILL included), so a lock left by a dead run never blocks the next
one, and there is no stale-lock file to clean up (the empty file stays; only the lock matters). The
training processes started by `accelerate launch` inherit it, so a launcher killed on its own leaves the
tree locked until they have exited too. A file, not the folder itself: `flock` on NFS-like mounts needs
a file opened for writing. Standard library only.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

LOCK_NAME = ".grpo-rlvr-run.lock"


class AlreadyRunning(RuntimeError):
    """Another live process holds the run lock on this checkpoint folder."""

    def __init__(self, folder: Path) -> None:
        super().__init__(
            f"another run is already training into {folder} (it holds {folder / LOCK_NAME}): this launch "
            "stops here and changes nothing; wait for that run to end, or give this one its own folder"
        )
        self.folder = folder


class RunLock:
    """`with RunLock(folder) as lock:` holds the lock inside the block (`lock.fd` for child processes)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.fd = -1

    def __enter__(self) -> RunLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(self.fd)
            if isinstance(err, BlockingIOError):
                raise AlreadyRunning(self.folder) from err
            raise
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        os.close(self.fd)
