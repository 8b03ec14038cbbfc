"""Program-wide limits the kernel does not give without cgroups: the host samples a run while it runs
and ends it once all of its processes together hold more than `memory_mb` resident, or its files
(in the work dir on the host disk, where there is no private tmpfs) more than `disk_mb` or `MAX_FILES`.

Per-process rlimits (RLIMIT_AS = memory_mb, RLIMIT_NPROC, RLIMIT_FSIZE) bound what a run can take
between two samples; the sampling bounds the whole. The run's processes are found from its first
process down through `/proc/<pid>/task/<tid>/children`, which any uid may read; the judge is a child
subreaper, so a daemonised grandchild stays in that tree.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

SAMPLE_S = 0.01  # between two samples
MAX_FILES = 8192  # files and dirs of a run (the private tmpfs's nr_inodes too)
PAGE = os.sysconf("SC_PAGE_SIZE")
KILL_WAIT_S = 5.0  # for a killed run's processes to be gone (a loaded machine delays SIGKILL)


def run_processes(first: int) -> list[int]:
    """`first` and every process below it (a process that exits mid-walk is skipped)."""
    found, todo = [], [first]
    while todo and len(found) < 4096:
        pid = todo.pop()
        found.append(pid)
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            with contextlib.suppress(OSError):
                todo += map(int, Path(f"/proc/{pid}/task/{tid}/children").read_bytes().split())
    return found


def alive(pid: int) -> bool:
    """Running (not a zombie, not gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def kill_run(first: int) -> bool:
    """SIGKILL every process below `first` (the judge, a child subreaper: an orphan is re-parented to
    it, so none can leave the tree while it lives) until none is left alive, then `first` and its
    process group, and wait for `first` to be gone. True when the judge was still alive, so nothing
    can have left the tree."""
    whole, deadline = alive(first), time.monotonic() + KILL_WAIT_S
    while live := [pid for pid in run_processes(first)[1:] if alive(pid)]:
        if time.monotonic() > deadline:
            whole = False
            break
        for pid in live:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.001)  # SIGKILL takes effect when the process next runs
    for kill in (os.kill, os.killpg):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(first, signal.SIGKILL)
    while alive(first) and time.monotonic() < deadline:
        time.sleep(0.001)
    return whole


def resident_mb(pids: list[int]) -> float:
    """Resident memory of `pids` together; a page shared between processes counts in each of them."""
    pages = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            pages += int(Path(f"/proc/{pid}/statm").read_bytes().split()[1])
    return pages * PAGE / (1 << 20)


def disk_use(root: str) -> tuple[float, int]:
    """(MB allocated, entries) beneath `root`, counting stops past MAX_FILES entries."""
    blocks, entries, todo = 0, 0, [root]
    while todo and entries <= MAX_FILES:
        try:
            with os.scandir(todo.pop()) as it:
                for entry in it:
                    entries += 1
                    st = entry.stat(follow_symlinks=False)
                    blocks += st.st_blocks
                    if entry.is_dir(follow_symlinks=False):
                        todo.append(entry.path)
        except OSError:
            pass
    return blocks * 512 / (1 << 20), entries


class Meter:
    """Samples one run: `over()` says which program-wide limit it exceeds, if any."""

    def __init__(self, first_pid: int, workdir: str, memory_mb: int, disk_mb: int) -> None:
        self.first_pid, self.workdir = first_pid, workdir
        self.memory_mb, self.disk_mb = memory_mb, disk_mb

    def over(self) -> str | None:
        pids = run_processes(self.first_pid)
        memory = resident_mb(pids)
        if memory > self.memory_mb:
            return f"{memory:.0f} MB resident in {len(pids)} processes, over memory_mb {self.memory_mb}"
        return self.disk_over()

    def disk_over(self) -> str | None:
        """Also checked once the run has ended: its files stay until the work dir is removed."""
        disk, entries = disk_use(self.workdir)
        if disk > self.disk_mb:
            return f"{disk:.0f} MB of files, over disk_mb {self.disk_mb}"
        if entries > MAX_FILES:
            return f"more than {MAX_FILES} files and folders"
        return None
