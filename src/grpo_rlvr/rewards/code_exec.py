"""`code_exec`: run the completion's Python against the row's tests in a locked-down child process.

Scores: 0.0 for no code, a syntax error, a program that raises or exits, a timeout, a crash or any
tampering; `partial` (0.2) when the program runs but a test unit fails; 1.0 when every unit passes.

Tests format (the `tests` column): a string of Python. Every top-level statement is one test unit,
run in order by the judge after the program ran. A top-level `assert` passes when its condition is
truthy (the judge evaluates the condition itself, so `AssertionError` plays no part);
any other statement (imports, helpers, loops) passes when it runs without raising. At least one
top-level `assert` is required. `if __name__ == "__main__":` blocks in the program do not run.

Two processes per run (see docs/rewards.md for what is isolated where). The *program's process*
runs the completion and answers requests; the *judge* runs the tests and never runs program code.
Every name the tests read that the program defines (builtins excepted) is fetched from the program's
process: plain data (None, bool, int, float, complex, str, bytes, bytearray, tuple, list, set,
frozenset, dict, range; subclasses read through their base type) crosses as tagged JSON and is
rebuilt as fresh builtin objects; anything else (functions, classes, instances, generators) becomes
a handle whose calls, attributes, items and iteration are forwarded, and which cannot be compared,
hashed or truth-tested. So comparisons, `len`, `sorted`, `math` and `AssertionError` are the
judge's own, and an object with a lying `__eq__` or `__bool__` fails. The tests and the per-run
nonce reach the judge only after the fork, so the program never has them in memory; the verdict
leaves on a pipe the program's process does not hold, from a judge it cannot ptrace (another uid as
root; not dumpable). Builtins changed, a trace hook or a Python thread left running in the program's
process still score 0: checked by that process itself, this can only lower a score.

Kernel layers, each where permitted: scrubbed environment, `python -I -S -B -u`, new session,
rlimits (CPU, address space, file size, processes, open files, core dumps), no_new_privs; a seccomp
filter (no new sockets, no ptrace, io_uring, mount or namespace calls); as root a dedicated
unprivileged uid pair per concurrent run (leased with flock, swept with SIGKILL afterwards); new
mount, network and pid namespaces with private tmpfs over the writable dirs, the interpreter's dirs
bound back read-only, no network interface up and a /proc showing only the run's processes; without
that private filesystem, Landlock: reads only beneath the interpreter's and system dirs, writes only
in the run's work dir, no /proc, no signal or abstract socket outside the run.
Output is read up to `max_output_bytes`, the rest drained and dropped.
"""

from __future__ import annotations

import ast
import builtins
import concurrent.futures
import contextlib
import fcntl
import functools
import inspect
import json
import logging
import os
import re
import secrets
import selectors
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass

from grpo_rlvr.rewards import completion_text, register

log = logging.getLogger(__name__)

PARTIAL_REWARD = 0.2
SANDBOX_UID_BASE = 64000  # root only: uids SANDBOX_UID_BASE .. +UID_POOL-1 run the programs,
# the next UID_POOL the judges (uid + UID_POOL)
UID_POOL = 256
HIDDEN_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/root", "/home", "/run", "/opt/ml")
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}

# Where a completed function body ends, as the Codex paper (and bigcode's harness) cut HumanEval
# completions: a new top-level definition, statement or comment (`\nif` covers `if __name__ == ...`).
BODY_END = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
_FENCE = re.compile(r"```([^\n`]*)\n(.*?)```", re.DOTALL)
_PYTHON_TAGS = {"", "python", "py", "python3"}


@dataclass(frozen=True)
class Limits:
    """Per-run resource limits; every field is a `reward_kwargs` option of `code_exec`."""

    timeout: float = 5.0  # wall clock for program + tests, seconds
    memory_mb: int = 1024  # RLIMIT_AS
    max_processes: int = 16  # RLIMIT_NPROC (per sandbox uid as root)
    max_file_mb: int = 16  # RLIMIT_FSIZE, and the size of each private tmpfs
    max_output_bytes: int = 64 * 1024  # stdout+stderr kept for debugging


@dataclass(frozen=True)
class Verdict:
    """What one run produced. `status` is passed | failed | no_code | syntax_error | error | timeout |
    tampered | crashed; only `passed` and `failed` mean every test unit was actually evaluated."""

    status: str
    passed: int = 0
    total: int = 0
    output: bytes = b""
    isolation: tuple[str, ...] = ()

    def score(self, partial: float = PARTIAL_REWARD) -> float:
        return {"passed": 1.0, "failed": partial}.get(self.status, 0.0)


def extract_code(text: str, whole_completion: bool = False) -> str | None:
    """The first closed fence tagged python/py/python3 or untagged; the whole text by option."""
    if whole_completion:
        code = text
    else:
        code = next((m[2] for m in _FENCE.finditer(text) if m[1].strip().lower() in _PYTHON_TAGS), "")
    return code if code.strip() else None


def completed_function(prompt: str, completion: str) -> str:
    """The program of a completion that continues its prompt's code (HumanEval's style): prompt plus
    completion, cut where the body ends (`BODY_END`), as generation's stop strings cut it."""
    cuts = [i for i in (completion.find(s) for s in BODY_END) if i >= 0]
    return prompt + (completion[: min(cuts)] if cuts else completion)


@functools.lru_cache(maxsize=1024)
def parse_tests(tests: str) -> tuple[tuple[str, str], ...]:
    """Test string -> units `(kind, source)`; kind `assert` carries the condition to evaluate.
    Cached: a row's tests are shared by all of its generations."""
    try:
        body = ast.parse(tests).body
    except SyntaxError as e:
        raise ValueError(f"code_exec: tests are not valid Python: {e}") from e
    units = tuple(
        ("assert", ast.unparse(s.test)) if isinstance(s, ast.Assert) else ("exec", ast.unparse(s))
        for s in body
    )
    if not any(kind == "assert" for kind, _ in units):
        raise ValueError(f"code_exec: tests need at least one top-level assert, got {tests[:200]!r}")
    return units


@functools.lru_cache(maxsize=1024)
def _test_names(tests: str) -> tuple[list[str], list[str]]:
    """(names the tests read that the program may define, modules they import). Builtins are not
    looked up in the program: a program cannot shadow `len` or `sorted` for the tests."""
    tree = ast.parse(tests)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - set(dir(builtins))
    imports = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imports |= {
        n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and not n.level
    }
    return sorted(names), sorted(imports)


def _compiles(code: str) -> bool:
    try:
        compile(code, "<solution>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


# ---------------------------------------------------------------------------------------------
# The child. `_sandbox_main` is shipped by source (`python -I -S -B -u -c`), so it is self-contained:
# it imports nothing from this package and reads everything from stdin, in two parts: the program
# and limits first, the tests and the nonce only after the program's process has been forked off, so
# they are never in its memory.


def _sandbox_main() -> None:  # pragma: no cover - runs in the sandboxed child
    import _thread
    import builtins
    import contextlib
    import ctypes
    import json
    import os
    import resource
    import socket
    import stat
    import struct
    import sys
    import traceback

    libc = ctypes.CDLL(None, use_errno=True)
    ulong = ctypes.c_ulong

    def read_exact(fd: int, n: int) -> bytes:
        chunks = []
        while n:
            chunk = os.read(fd, min(n, 1 << 20))
            if not chunk:
                os._exit(4)
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def read_part() -> dict:
        return json.loads(read_exact(0, int(read_exact(0, 10))))

    cfg = read_part()
    root, real_uid, real_gid = os.geteuid() == 0, os.getuid(), os.getgid()
    isolation = []

    def mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
        enc = [None if s is None else s.encode() for s in (src, target, fstype, data)]
        if libc.mount(enc[0], enc[1], enc[2], ulong(flags), enc[3]) != 0:
            raise OSError(ctypes.get_errno(), f"mount {target}")

    def private_filesystem() -> None:
        """Empty tmpfs over the writable/secret dirs; the interpreter's own dirs bound back in, and
        every one of them read-only, so a program cannot change the stdlib that later runs import."""
        ms_rdonly, ms_remount, ms_bind, ms_rec, ms_private = 0x1, 0x20, 0x1000, 0x4000, 0x40000
        mount(None, "/", None, ms_rec | ms_private, None)
        keep = {os.path.realpath(p) for p in (sys.base_prefix, sys.base_exec_prefix)}
        keep.add(os.path.dirname(os.path.realpath(sys.executable)))
        keep = {p for p in keep if p != "/" and not any(p.startswith(q.rstrip("/") + "/") for q in keep)}
        fds = {p: os.open(p, os.O_PATH) for p in keep if any(p.startswith(h + "/") for h in cfg["hidden"])}
        for hidden in cfg["hidden"]:
            if os.path.isdir(hidden) and not os.path.islink(hidden):
                mount("tmpfs", hidden, "tmpfs", 0, f"size={cfg['max_file_mb']}m,mode=1777")
        for path, fd in fds.items():
            os.makedirs(path, exist_ok=True)
            mount(f"/proc/self/fd/{fd}", path, None, ms_bind | ms_rec, None)
            os.close(fd)
        for path in keep:
            if path not in fds:
                mount(path, path, None, ms_bind | ms_rec, None)
            mount(None, path, None, ms_remount | ms_bind | ms_rdonly, None)
        os.makedirs("/tmp/work", mode=0o777)
        os.chmod("/tmp/work", 0o777)
        os.chdir("/tmp/work")

    def shed_userns() -> None:
        """Not root: a nested user namespace, so no capability over the mounts made above remains."""
        if not root and "net" in isolation and libc.unshare(clone_newuser) != 0:
            os._exit(3)

    def seccomp() -> bool:
        """A BPF filter: no new sockets (no network, no Unix socket of the host, abstract or path),
        socketpair only as SOCK_STREAM (asyncio's self-pipe), no ptrace/process_vm_*, io_uring,
        mount/unshare/setns, keyrings, bpf, perf, userfaultfd; other architectures' calls kill."""
        table = {  # machine: (AUDIT_ARCH, socketpair, denied syscall numbers)
            "x86_64": (0xC000003E, 53, (41, 101, 310, 311, 425, 426, 427, 165, 166, 155, 272, 308,
                                        248, 249, 250, 321, 298, 323, 304)),
            "aarch64": (0xC00000B7, 199, (198, 117, 270, 271, 425, 426, 427, 40, 39, 41, 97, 268,
                                          217, 218, 219, 280, 241, 282, 265)),
        }  # fmt: skip
        if os.uname().machine not in table:
            return False
        arch, socketpair, denied = table[os.uname().machine]
        ld, jeq, jge, and_, ret = 0x20, 0x15, 0x35, 0x54, 0x06
        allow, deny, kill = 0x7FFF0000, 0x00050000 | 1, 0x80000000  # deny = ERRNO(EPERM)
        a = 5 + len(denied)  # index of the socketpair check; allow at a+4, deny at a+5
        prog = [(ld, 0, 0, 4), (jeq, 1, 0, arch), (ret, 0, 0, kill), (ld, 0, 0, 0),
                (jge, a + 5 - 5, 0, 0x40000000)]  # fmt: skip
        prog += [(jeq, a + 5 - (6 + i), 0, nr) for i, nr in enumerate(denied)]
        prog += [(jeq, 0, 3, socketpair), (ld, 0, 0, 24), (and_, 0, 0, 0xF), (jeq, 0, 1, 1),
                 (ret, 0, 0, allow), (ret, 0, 0, deny)]  # fmt: skip
        buf = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *ins) for ins in prog))

        class Fprog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

        fprog = Fprog(len(prog), ctypes.addressof(buf))
        return libc.prctl(ulong(22), ulong(2), ctypes.byref(fprog), ulong(0), ulong(0)) == 0

    def landlock() -> bool:
        """Without a private filesystem, Landlock (unprivileged, inherited by children): read only
        beneath the interpreter's and system library dirs and a few /dev nodes, read/write only in the
        work dir, so host dirs (/tmp, /opt/ml, /root, ...) and /proc (other processes' command lines)
        are out of reach; from ABI 6 no signal or abstract Unix socket outside the run, from ABI 4 no
        TCP. False where the kernel or the container's seccomp profile does not offer it."""

        def call(nr: int, *args: object) -> int:  # landlock_* numbers are the same on x86_64 and aarch64
            return libc.syscall(ctypes.c_long(nr), *(ulong(a) if type(a) is int else a for a in args))

        abi = call(444, None, 0, 1)  # landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
        if abi < 1:  # ENOSYS, EOPNOTSUPP (not enabled), EPERM (a seccomp profile)
            return False
        # every filesystem right this ABI knows: v1's 13, REFER (v2), TRUNCATE (v3), IOCTL_DEV (v5)
        handled = (1 << 13) - 1 | (abi >= 2) << 13 | (abi >= 3) << 14 | (abi >= 5) << 15
        execute, write, read, read_dir, truncate = 1, 2, 4, 8, 1 << 14
        on_files = execute | write | read | truncate | 1 << 15  # the rights a rule on a file may hold
        hidden = [h.rstrip("/") + "/" for h in cfg["hidden"]]
        interpreter = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *sys.path,
                       os.path.dirname(os.path.realpath(sys.executable)), "/bin", "/etc", "/lib",
                       "/lib64", "/usr"}  # fmt: skip
        # read-only dirs, never one holding a hidden dir (/, or /opt over /opt/ml)
        rules = [
            (p, execute | read | read_dir)
            for p in sorted(interpreter)
            if p.startswith("/") and not any(h.startswith(p.rstrip("/") + "/") for h in hidden)
        ]
        rules += [("/dev/null", read | write | truncate), ("/dev/zero", read), ("/dev/random", read),
                  ("/dev/urandom", read), (os.getcwd(), handled)]  # fmt: skip

        class RulesetAttr(ctypes.Structure):
            _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]

        class PathBeneath(ctypes.Structure):
            _pack_ = 1
            _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

        # net: bind and connect TCP (v4); scoped: abstract Unix sockets and signals (v6)
        attr = RulesetAttr(handled, 3 if abi >= 4 else 0, 3 if abi >= 6 else 0)
        ruleset = call(444, ctypes.byref(attr), ctypes.sizeof(attr), 0)
        if ruleset < 0:
            return False
        try:
            for path, access in rules:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:  # absent, or beyond this uid's reach anyway
                    continue
                try:
                    if not stat.S_ISDIR(os.fstat(fd).st_mode):
                        access &= on_files
                    rule = PathBeneath(access & handled, fd)
                    if call(445, ruleset, 1, ctypes.byref(rule), 0) != 0:  # LANDLOCK_RULE_PATH_BENEATH
                        return False  # half a ruleset could lock out the interpreter: none at all
                finally:
                    os.close(fd)
            return call(446, ruleset, 0) == 0  # landlock_restrict_self
        finally:
            os.close(ruleset)

    def lockdown(uid: int | None) -> list[str]:
        """The last steps before untrusted or test code runs: uid, no_new_privs, rlimits, Landlock
        (unless the private filesystem hides the host already), seccomp (which leaves Landlock's
        calls allowed: a program may only restrict itself further)."""
        done = []
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            done.append("uid")
        libc.prctl(ulong(38), ulong(1), ulong(0), ulong(0), ulong(0))  # PR_SET_NO_NEW_PRIVS
        for res, value in (
            (resource.RLIMIT_CPU, cfg["cpu_seconds"]),
            (resource.RLIMIT_AS, cfg["memory_mb"] << 20),
            (resource.RLIMIT_FSIZE, cfg["max_file_mb"] << 20),
            (resource.RLIMIT_NPROC, cfg["max_processes"]),
            (resource.RLIMIT_NOFILE, 256),
            (resource.RLIMIT_CORE, 0),
        ):
            resource.setrlimit(res, (value, value))
        if "fs" not in isolation and landlock():
            done.append("landlock")
        if seccomp():
            done.append("seccomp")
        return done

    # -- values cross between the two processes as tagged JSON, never as objects ------------------

    def encode(v: object, handle, depth: int = 0, key: bool = False) -> object:
        """Plain data by value (subclasses read through their base type); anything else becomes a
        handle (`handle(v)` -> int), except inside a set or a dict key, where it raises ValueError."""
        if depth > 100:
            raise ValueError("nested too deeply")
        if v is None or v is True or v is False or type(v) is str:
            return v
        n = depth + 1
        if isinstance(v, int):
            v = int.__index__(v)
            return v if -(1 << 62) < v < 1 << 62 else ["i", format(v, "x")]
        if isinstance(v, float):
            return ["f", float.hex(float.__float__(v))]
        if isinstance(v, complex):
            c = complex.__complex__(v)
            return ["c", float.hex(c.real), float.hex(c.imag)]
        if isinstance(v, str):
            return str.__str__(v)
        if isinstance(v, (bytes, bytearray)):
            return ["ba" if isinstance(v, bytearray) else "b", bytes(memoryview(v)).hex()]
        if isinstance(v, range):
            return ["r", v.start, v.stop, v.step]
        if isinstance(v, dict):
            return ["d", [[encode(k, handle, n, True), encode(x, handle, n, key)] for k, x in dict.items(v)]]
        for base, tag, in_key in (
            (list, "l", key),
            (tuple, "t", key),
            (set, "s", True),
            (frozenset, "fs", True),
        ):
            if isinstance(v, base):
                return [tag, [encode(x, handle, n, in_key) for x in base.__iter__(v)]]
        if key:
            raise ValueError("not plain data")
        return ["h", handle(v)]

    def decode(x: object, handle, depth: int = 0) -> object:
        """The inverse of `encode` into fresh objects of the builtin types; anything malformed raises."""
        if depth > 100:
            raise ValueError("nested too deeply")
        if x is None or type(x) in (bool, int, str):
            return x
        if type(x) is not list or not x or type(x[0]) is not str:
            raise ValueError("malformed value")
        tag, args, n = x[0], x[1:], depth + 1
        containers = {"l": list, "t": tuple, "s": set, "fs": frozenset}
        if tag in containers and len(args) == 1 and type(args[0]) is list:
            return containers[tag](decode(i, handle, n) for i in args[0])
        if tag == "d" and len(args) == 1 and type(args[0]) is list:
            return {decode(k, handle, n): decode(v, handle, n) for k, v in args[0]}
        if tag == "r" and len(args) == 3 and all(type(a) is int for a in args):
            return range(*args)
        if tag == "h" and len(args) == 1 and type(args[0]) is int:
            return handle(args[0])
        if not args or any(type(a) is not str for a in args):
            raise ValueError("malformed value")
        build = {"i": lambda s: int(s, 16), "f": float.fromhex, "b": bytes.fromhex, "ba": bytearray.fromhex,
                 "c": lambda re, im: complex(float.fromhex(re), float.fromhex(im))}  # fmt: skip
        if tag not in build:
            raise ValueError("malformed value")
        return build[tag](*args)

    def channel(sock: socket.socket, cap: int):
        def send(msg: list) -> None:
            data = json.dumps(msg).encode()
            sock.sendall(struct.pack(">I", len(data)) + data)

        def recv() -> list:
            """One frame; EOFError when the peer is gone, ValueError when it is malformed."""
            chunks, need, header = [], 4, True
            while need:
                chunk = sock.recv(min(need, 1 << 20))
                if not chunk:
                    raise EOFError
                chunks.append(chunk)
                need -= len(chunk)
                if not need and header:
                    need, header = struct.unpack(">I", b"".join(chunks))[0], False
                    if need > cap:
                        raise ValueError("frame too large")
                    chunks = []
            msg = json.loads(b"".join(chunks))
            if type(msg) is not list or not msg:
                raise ValueError("malformed frame")
            return msg

        return send, recv

    # -- namespaces shared by both processes -------------------------------------------------------

    clone_newns, clone_newnet, clone_newuser, clone_newpid = 0x20000, 0x40000000, 0x10000000, 0x20000000
    flags = clone_newns | clone_newnet | clone_newpid | (0 if root else clone_newuser)
    if libc.unshare(flags) == 0:
        isolation.append("net")
        if not root:  # map ourselves in, so files keep our uid
            for name, text in (("setgroups", "deny"), ("uid_map", f"{real_uid} {real_uid} 1"),
                               ("gid_map", f"{real_gid} {real_gid} 1")):  # fmt: skip
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
        try:
            private_filesystem()
            isolation.append("fs")
        except OSError as e:
            print(f"sandbox: no private filesystem: {e}", file=sys.stderr)
    for module in cfg["imports"]:  # what the tests import, loaded before the program could touch files
        with contextlib.suppress(BaseException):
            __import__(module)

    def not_dumpable() -> None:
        """PR_SET_DUMPABLE 0: a process of the same uid may not ptrace us or open /proc/<pid>/mem, fd."""
        libc.prctl(ulong(4), ulong(0), ulong(0), ulong(0), ulong(0))

    not_dumpable()  # before the fork: the program starts running while the judge still sets up
    judge_end, program_end = socket.socketpair()
    child = os.fork()
    if child == 0:
        # -- the program's process: runs the untrusted code, answers the judge's requests ----------
        judge_end.close()
        fd = program_end.fileno()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.closerange(3, fd)  # the result pipe and the rest of stdin stay with the judge
        os.closerange(fd + 1, 1 << 16)
        mine = []
        if "net" in isolation:  # pid 1 of a new pid namespace: a /proc that shows only this run
            try:
                if libc.unshare(clone_newns) != 0:
                    raise OSError(ctypes.get_errno(), "unshare")
                mount("proc", "/proc", "proc", 0x2 | 0x4 | 0x8, None)  # nosuid, nodev, noexec
                mine.append("pid")
            except OSError as e:
                print(f"sandbox: no private /proc: {e}", file=sys.stderr)
        shed_userns()
        mine += lockdown(cfg["uid"])
        send, recv = channel(program_end, 64 << 20)
        handles: list = []

        def handle(v: object) -> int:
            handles.append(v)
            return len(handles) - 1

        def reply(v: object) -> list:
            try:
                return ["ok", encode(v, handle)]
            except Exception:  # too deep, or an element that is not plain data
                return ["ok", ["h", handle(v)]]

        snapshot = dict(vars(builtins))

        def untouched() -> bool:
            """Policy, checked by the program's own process, so it can only lower the score."""
            now = vars(builtins)
            return (
                sys.gettrace() is None
                and sys.getprofile() is None
                and _thread._count() == 0  # Python threads still running (0 once every one is joined)
                and len(now) == len(snapshot)
                and all(now.get(k) is v for k, v in snapshot.items())
            )

        ns = {"__name__": "solution", "__builtins__": builtins}
        try:
            exec(compile(cfg["program"], "<solution>", "exec", dont_inherit=True), ns)
            status = "ok" if untouched() else "tampered"
        except BaseException:  # SystemExit and KeyboardInterrupt too: exiting early is a failure
            traceback.print_exc()
            status = "error"
        send(["ready", status, mine])
        while status == "ok":
            try:
                op, *args = recv()
            except (EOFError, ValueError):
                break
            try:
                if op == "names":
                    answer = ["ok", ["d", [[n, reply(ns[n])[1]] for n in args[0] if n in ns]]]
                elif op == "call":
                    fn, pos, kw = handles[args[0]], args[1], args[2]
                    answer = reply(fn(*[decode(a, handles.__getitem__) for a in pos],
                                      **{k: decode(v, handles.__getitem__) for k, v in kw}))  # fmt: skip
                elif op == "getattr":
                    answer = reply(getattr(handles[args[0]], args[1]))
                elif op == "getitem":
                    answer = reply(handles[args[0]][decode(args[1], handles.__getitem__)])
                elif op == "iter":
                    answer = ["ok", ["h", handle(iter(handles[args[0]]))]]
                elif op == "next":
                    try:
                        answer = reply(next(handles[args[0]]))
                    except StopIteration:
                        answer = ["stop"]
                else:  # "finish"
                    answer = ["ok", untouched()]
                    status = "finished"
            except BaseException as e:
                try:
                    answer = ["raise", type(e).__name__, str(e)[:1000]]
                except BaseException:
                    answer = ["raise", "Exception", ""]
            send(answer)
        os._exit(0)

    # -- the judge: never runs program code; only values cross from the program's process ---------
    program_end.close()
    tests = read_part()  # only now: the forked program never had the tests or the nonce in memory
    write, nonce, result_fd = os.write, tests["nonce"], tests["result_fd"]
    shed_userns()
    isolation += lockdown(cfg["judge_uid"])
    not_dumpable()  # again: a change of uid resets it
    send, recv = channel(judge_end, 64 << 20)
    broken: list[str] = []  # "tampered" or "crashed", once the program's process misbehaved

    def report(status: str, passed: int = 0) -> None:
        write(result_fd, f"{nonce} {status} {passed} {','.join(isolation)}\n".encode())
        os._exit(0)

    class ProgramError(Exception):
        """An exception of the program's that is not a builtin one (or one the iteration protocol
        would misread: StopIteration raised from a call would silently end a test's loop)."""

    def rebuild(name: str, message: str) -> Exception:
        cls = getattr(builtins, name, None)
        if isinstance(cls, type) and issubclass(cls, Exception) and not issubclass(cls, StopIteration):
            try:
                return cls(message)
            except Exception:
                pass
        return ProgramError(f"{name}: {message}")

    def request(*msg: object) -> object:
        """One round trip; a reply that is not well-formed marks the run tampered, a lost peer crashed."""
        if broken:
            raise ProgramError("the program's process misbehaved")
        try:
            send(list(msg))
            answer = recv()
            if answer[0] == "ok" and len(answer) == 2:
                return decode(answer[1], Remote)
            if answer == ["stop"] and msg[0] == "next":
                error: Exception = StopIteration()
            elif answer[0] == "raise" and len(answer) == 3 and all(type(a) is str for a in answer[1:]):
                error = rebuild(answer[1], answer[2])
            else:
                raise ValueError("malformed answer")
        except (EOFError, OSError):
            broken.append("crashed")
            raise ProgramError("the program's process is gone") from None
        except Exception:
            broken.append("tampered")
            raise ProgramError("the program's process misbehaved") from None
        raise error

    class Remote:
        """An object of the program's that is not plain data: calls, attributes, items and iteration
        go to the program's process; comparing it, testing its truth, hashing or sizing it raise."""

        __slots__ = ("_id",)

        def __init__(self, ident: int) -> None:
            self._id = ident

        def __getattr__(self, name: str) -> object:
            return request("getattr", self._id, name)

        def __call__(self, *args: object, **kwargs: object) -> object:
            return request("call", self._id, [encode(a, arg) for a in args],
                           [[k, encode(v, arg)] for k, v in kwargs.items()])  # fmt: skip

        def __getitem__(self, key: object) -> object:
            return request("getitem", self._id, encode(key, arg))

        def __iter__(self) -> object:
            return request("iter", self._id)

        def __next__(self) -> object:
            return request("next", self._id)

        def _opaque(self, *_: object) -> None:
            raise TypeError("an object of the program's (not plain data) cannot be compared or tested")

        __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __bool__ = __hash__ = _opaque

    def arg(v: object) -> int:
        if type(v) is Remote:
            return object.__getattribute__(v, "_id")
        raise TypeError(f"only plain data can be passed to the program, not {type(v).__name__}")

    try:
        ready = recv()
    except EOFError:
        report("crashed")
    except Exception:
        report("tampered")
    if len(ready) != 3 or ready[0] != "ready" or ready[1] not in ("ok", "error", "tampered"):
        report("tampered")
    if type(ready[2]) is list:  # what only the program's process could set up: its /proc, its filter
        isolation += [
            m for m in ready[2] if m in ("pid", "landlock", "seccomp", "uid") and m not in isolation
        ]
    if ready[1] != "ok":
        report(ready[1])
    ns = {"__name__": "tests", "__builtins__": builtins}
    try:
        names = request("names", tests["names"])
        if type(names) is dict and all(type(k) is str for k in names):
            ns.update(names)
        else:
            broken.append("tampered")
    except ProgramError:
        pass
    passed = 0
    for kind, source in tests["units"]:
        if broken:
            break
        try:
            if kind == "assert":
                passed += bool(eval(compile(source, "<tests>", "eval", dont_inherit=True), ns))
            else:
                exec(compile(source, "<tests>", "exec", dont_inherit=True), ns)
                passed += 1
        except BaseException:
            pass
    try:
        if not broken and request("finish") is not True:
            broken.append("tampered")
    except ProgramError:
        pass
    report(broken[0] if broken else "done", passed)


_SANDBOX_SOURCE = textwrap.dedent(inspect.getsource(_sandbox_main)) + "\n_sandbox_main()\n"


# ---------------------------------------------------------------------------------------------
# The parent.


def _lock_dir() -> str:
    """Root-owned directory of uid lease files; refuses one another user could have planted."""
    path = os.path.join(tempfile.gettempdir(), f"grpo-rlvr-sandbox-{os.geteuid()}")
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    st = os.lstat(path)
    if st.st_uid != os.geteuid() or st.st_mode & 0o077 or not os.path.isdir(path):
        raise RuntimeError(f"code_exec: {path} is not a private directory of uid {os.geteuid()}")
    return path


def _sandbox_processes() -> dict[int, list[tuple[int, bool]]]:
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


def _sweep(uid: int) -> None:
    """SIGKILL every live process of a leased uid (program and judge) until none is left (fork bombs
    race the first pass). Zombies stay until init reaps them; they still count against RLIMIT_NPROC,
    hence the lease's preference for uids without any."""
    for _ in range(200):
        live = [pid for pid, zombie in _sandbox_processes().get(uid, []) if not zombie]
        if not live:
            return
        for pid in live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.005)
    log.warning("code_exec: processes of sandbox uid %d survived the sweep", uid)


@contextlib.contextmanager
def _lease_uid() -> Iterator[int | None]:
    """As root, an exclusive sandbox uid (flock, so concurrent trainers on one host never share one;
    the caller sweeps it after its run), preferring one with no leftover processes or zombies;
    otherwise None: the child keeps our uid."""
    if os.geteuid() != 0:
        yield None
        return
    directory = _lock_dir()
    while True:
        busy = _sandbox_processes()
        for uid in sorted(range(SANDBOX_UID_BASE, SANDBOX_UID_BASE + UID_POOL), key=lambda u: u in busy):
            fd = os.open(os.path.join(directory, str(uid)), os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                _sweep(uid)  # a crashed earlier holder may have left processes behind
                yield uid
            finally:
                os.close(fd)
            return
        time.sleep(0.05)


def _collect(proc: subprocess.Popen, result_fd: int, limits: Limits) -> tuple[bytes, bytes, bool]:
    """Read output (capped, the rest drained) and the result pipe until the child exits or time runs
    out. Returns (output, result, timed_out). Leftover grandchildren holding the pipes do not stall
    this: it stops when the direct child is gone."""
    assert proc.stdout is not None
    bufs = {proc.stdout.fileno(): bytearray(), result_fd: bytearray()}
    caps = {proc.stdout.fileno(): limits.max_output_bytes, result_fd: 64 * 1024}
    deadline = time.monotonic() + limits.timeout
    with selectors.DefaultSelector() as sel:
        for fd in bufs:
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map():
            exited = proc.poll() is not None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return bytes(bufs[proc.stdout.fileno()]), bytes(bufs[result_fd]), not exited
            events = sel.select(0 if exited else min(remaining, 0.1))
            for key, _ in events:
                data = os.read(key.fd, 65536)
                if not data:
                    sel.unregister(key.fd)
                buf = bufs[key.fd]
                buf += data[: max(0, caps[key.fd] - len(buf))]
            if exited and not events:
                break
    return bytes(bufs[proc.stdout.fileno()]), bytes(bufs[result_fd]), False


def run_program(program: str, tests: str, limits: Limits | None = None) -> Verdict:
    """Run one program and its tests in the sandbox and judge it; see the module docstring."""
    limits = limits or Limits()
    units = parse_tests(tests)
    if not _compiles(program):
        return Verdict("syntax_error", total=len(units))
    names, imports = _test_names(tests)
    nonce = secrets.token_hex(16)
    with (
        _lease_uid() as uid,
        tempfile.TemporaryDirectory(prefix="code-exec-", ignore_cleanup_errors=True) as workdir,
    ):
        if uid is not None:
            os.chown(workdir, uid, uid)
        os.chmod(workdir, 0o700)
        read_end, write_end = os.pipe()
        cfg = {
            "uid": uid, "judge_uid": None if uid is None else uid + UID_POOL, "program": program,
            "imports": imports, "hidden": HIDDEN_DIRS, "cpu_seconds": int(limits.timeout) + 1,
            "memory_mb": limits.memory_mb, "max_file_mb": limits.max_file_mb,
            "max_processes": limits.max_processes,
        }  # fmt: skip
        judge_cfg = {"nonce": nonce, "result_fd": write_end, "units": units, "names": names}
        payload = b"".join(
            f"{len(p):010d}".encode() + p for p in map(str.encode, map(json.dumps, (cfg, judge_cfg)))
        )
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-B", "-u", "-c", _SANDBOX_SOURCE],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                cwd=workdir, env=ENV, pass_fds=(write_end,), start_new_session=True,
            )  # fmt: skip
        finally:
            os.close(write_end)
        try:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(payload)  # type: ignore[union-attr]
                proc.stdin.close()  # type: ignore[union-attr]
            output, result, timed_out = _collect(proc, read_end, limits)
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if uid is not None:  # catches setsid() escapees before their directory goes
                _sweep(uid)
            os.close(read_end)
            proc.stdout.close()  # type: ignore[union-attr]
    if timed_out:
        return Verdict("timeout", total=len(units), output=output)
    return _judge(result, nonce, len(units), output)


def _judge(result: bytes, nonce: str, total: int, output: bytes) -> Verdict:
    """Exactly one record with this run's nonce counts; a second one means the program forged one."""
    records = [line.split()[1:] for line in result.decode(errors="replace").splitlines()
               if line.startswith(nonce + " ")]  # fmt: skip
    if len(records) != 1 or len(records[0]) not in (2, 3):
        return Verdict("crashed" if not records else "tampered", total=total, output=output)
    status, passed = records[0][0], int(records[0][1])
    isolation = tuple(records[0][2].split(",")) if len(records[0]) == 3 else ()
    if status == "done":
        status = "passed" if passed == total else "failed"
    return Verdict(status, passed=passed, total=total, output=output, isolation=isolation)


@functools.lru_cache(maxsize=1)
def check_sandbox() -> tuple[str, ...]:
    """Run a known-good program once per process: a sandbox that cannot import the stdlib (e.g. an
    interpreter the sandbox uid may not read; the harness has not loaded `fractions` itself) would
    score every completion 0, so fail loudly. Returns the isolation mechanisms in effect (logged),
    warning once when the network is not cut off or host files (/opt/ml's data) are not hidden."""
    program = "import fractions, json\ndef f():\n    return json.dumps(int(fractions.Fraction(3, 2)))\n"
    verdict = run_program(program, "assert f() == '1'")
    if verdict.status != "passed":
        raise RuntimeError(f"code_exec: the sandbox cannot run a correct program ({verdict.status}): "
                           f"{verdict.output[-2000:].decode(errors='replace')}")  # fmt: skip
    if not {"net", "seccomp"} & set(verdict.isolation):
        log.warning("code_exec: neither a network namespace nor seccomp here; sandboxed programs can "
                    "reach the network")  # fmt: skip
    if not {"fs", "landlock"} & set(verdict.isolation):
        log.warning("code_exec: neither a private filesystem nor Landlock here; sandboxed programs can "
                    "read world-readable host files, /opt/ml included")  # fmt: skip
    log.info("code_exec: sandbox isolation: %s", ", ".join(verdict.isolation))
    return verdict.isolation


@register("code_exec", columns=("tests",))
def code_exec(
    completions: list,
    tests: list[str],
    *,
    prompts: list | None = None,
    partial: float = PARTIAL_REWARD,
    whole_completion: bool = False,
    complete_prompt: bool = False,
    workers: int | None = None,
    timeout: float = Limits.timeout,
    memory_mb: int = Limits.memory_mb,
    max_processes: int = Limits.max_processes,
    max_file_mb: int = Limits.max_file_mb,
    max_output_bytes: int = Limits.max_output_bytes,
    **_columns: object,  # TRL passes every dataset column; options are checked by name in config
) -> list[float]:
    """Score each completion's code against its row's tests, `workers` sandboxes at a time.

    The code is the first Python fence of the completion, the whole completion (`whole_completion`), or,
    with `complete_prompt`, the text prompt followed by the completion (`completed_function`): the
    prompt holds a function's signature and docstring and the model writes its body, as in HumanEval."""
    if len(completions) != len(tests):
        raise ValueError(f"code_exec: {len(completions)} completions but {len(tests)} tests")
    if complete_prompt and (whole_completion or not all(isinstance(p, str) for p in prompts or [None])):
        raise ValueError("code_exec: complete_prompt needs text prompts and excludes whole_completion")
    check_sandbox()
    limits = Limits(timeout, memory_mb, max_processes, max_file_mb, max_output_bytes)

    def score(completion: str | list[dict], row_tests: str, prompt: str | None) -> float:
        text = completion_text(completion)
        if complete_prompt:
            code: str | None = completed_function(prompt or "", text)
        else:
            code = extract_code(text, whole_completion)
        return 0.0 if code is None else run_program(code, row_tests, limits).score(partial)

    workers = workers or min(4, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(score, completions, tests, prompts or [None] * len(completions)))
