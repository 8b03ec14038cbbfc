"""As root, each run gets a dedicated unprivileged uid pair: `uid` runs the program, `uid + UID_POOL`
the judge. Leases are exclusive across processes (flock); a run that did not end cleanly has every
process of its uid SIGKILLed by a scan of /proc."""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
import signal
import tempfile
import time
from collections.abc import Iterator

log = logging.getLogger(__name__)

# uids SANDBOX_UID_BASE .. +UID_POOL-1 run the programs, the next UID_POOL the judges
SANDBOX_UID_BASE = 64000
UID_POOL = 256


def _lock_dir() -> str:
    """Root-owned directory of uid lease files; refuses one another user could have planted."""
    path = os.path.join(tempfile.gettempdir(), f"grpo-rlvr-sandbox-{os.geteuid()}")
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    st = os.lstat(path)
    if st.st_uid != os.geteuid() or st.st_mode & 0o077 or not os.path.isdir(path):
        raise RuntimeError(f"code_exec: {path} is not a private directory of uid {os.geteuid()}")
    return path


def sandbox_processes() -> dict[int, list[tuple[int, bool]]]:
    """Processes running as a leased uid or its judge uid (+UID_POOL): leased uid -> [(pid, is_zombie)]."""
    found: dict[int, list[tuple[int, bool]]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        uid = int(status["Uid"].split()[0])
        if SANDBOX_UID_BASE <= uid < SANDBOX_UID_BASE + 2 * UID_POOL:  # programs' and judges' uids
            lease = SANDBOX_UID_BASE + (uid - SANDBOX_UID_BASE) % UID_POOL
            found.setdefault(lease, []).append((int(entry), status["State"].strip().startswith("Z")))
    return found


def sweep(uid: int) -> None:
    """SIGKILL every live process of a leased uid (program and judge) until none is left (fork bombs
    race the first pass): a scan of all of /proc, for the runs that did not end cleanly. Zombies stay
    until init reaps them; they still count against RLIMIT_NPROC."""
    for _ in range(200):
        live = [pid for pid, zombie in sandbox_processes().get(uid, []) if not zombie]
        if not live:
            return
        for pid in live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.005)
    log.warning("code_exec: processes of sandbox uid %d survived the sweep", uid)


_next = itertools.count()  # where the next lease starts looking: leftovers spread over the pool


@contextlib.contextmanager
def lease_uid() -> Iterator[int | None]:
    """As root, an exclusive sandbox uid (flock, so concurrent trainers on one host never share one);
    otherwise None: the child keeps our uid. The lease file says whether its last holder finished
    (`clean`: every process of the uid was killed); any other holder's leftovers are swept first."""
    if os.geteuid() != 0:
        yield None
        return
    directory = _lock_dir()
    while True:
        start = next(_next)
        for i in range(UID_POOL):
            uid = SANDBOX_UID_BASE + (start + i) % UID_POOL
            fd = os.open(os.path.join(directory, str(uid)), os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                if os.pread(fd, 5, 0) != b"clean":
                    sweep(uid)  # a crashed earlier holder may have left processes behind
                os.pwrite(fd, b"dirty", 0)
                yield uid
                os.pwrite(fd, b"clean", 0)  # only when the caller's cleanup ran to its end
            finally:
                os.close(fd)
            return
        time.sleep(0.05)
