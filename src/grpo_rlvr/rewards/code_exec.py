"""`code_exec`: run the completion's Python against the row's tests in a locked-down child process.

Scores: 0.0 for no code, a syntax error, a program that raises or exits, a timeout, a crash or any
tampering; `partial` (0.2) when the program runs but a test unit fails; 1.0 when every unit passes.

Tests format (the `tests` column): a string of Python. Every top-level statement is one test unit,
run in order in the program's namespace after the program. A top-level `assert` passes when its
condition is truthy (the harness evaluates the condition itself, so `AssertionError` plays no part);
any other statement (imports, helpers, loops) passes when it runs without raising. At least one
top-level `assert` is required. `if __name__ == "__main__":` blocks in the program do not run.

Isolation (see docs/rewards.md for what works where): scrubbed environment and `python -I -S -u`;
new session; rlimits on CPU, address space, file size, processes, open files, core dumps; as root a
dedicated unprivileged uid per concurrent run (leased with flock, swept with SIGKILL afterwards);
where permitted, new mount and network namespaces with private tmpfs over /tmp, /var/tmp, /dev/shm,
/root, /home, /run and /opt/ml (interpreter directories re-bound read-only-by-permission) and no
network interface up. Output is read up to `max_output_bytes`, the rest drained and dropped.

Threat model: the verdict is one line on a private pipe carrying a per-run nonce, written only after
every unit ran; stdout and exit codes count for nothing, so `sys.exit`/`os._exit`/atexit tricks and
printed "PASSED" lines score 0, and changing builtins, leaving a trace/profile hook or a live thread
counts as tampering (0). The program shares its process with the harness, so code that introspects
the harness (frames, gc, ctypes, /proc/self/mem) can read the nonce and forge a pass: this stops
generic reward hacks, not an adversary who targets this harness. Objects with an always-true
`__eq__` are not detected either.
"""

from __future__ import annotations

import ast
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
SANDBOX_UID_BASE = 64000  # root only: uids SANDBOX_UID_BASE .. +UID_POOL-1 run the programs
UID_POOL = 256
HIDDEN_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/root", "/home", "/run", "/opt/ml")
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}

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


def _compiles(code: str) -> bool:
    try:
        compile(code, "<solution>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


# ---------------------------------------------------------------------------------------------
# The child. `_sandbox_main` is shipped by source (`python -I -S -u -c`), so it is self-contained:
# it imports nothing from this package and takes everything from the JSON payload on stdin.


def _sandbox_main() -> None:  # pragma: no cover - runs in the sandboxed child
    import builtins
    import ctypes
    import json
    import os
    import resource
    import sys
    import traceback

    cfg = json.loads(sys.stdin.buffer.read())
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    write, exit_now, listdir = os.write, os._exit, os.listdir
    gettrace, getprofile, compile_, eval_, exec_, bool_ = (
        sys.gettrace, sys.getprofile, compile, eval, exec, bool)  # fmt: skip
    nonce, result_fd, isolation = cfg["nonce"], cfg["result_fd"], []
    libc = ctypes.CDLL(None, use_errno=True)

    def report(status: str, passed: int = 0) -> None:
        write(result_fd, f"{nonce} {status} {passed} {','.join(isolation)}\n".encode())

    def mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
        enc = [None if s is None else s.encode() for s in (src, target, fstype, data)]
        if libc.mount(enc[0], enc[1], enc[2], flags, enc[3]) != 0:
            raise OSError(ctypes.get_errno(), f"mount {target}")

    def private_filesystem() -> None:
        """Empty tmpfs over the writable/secret dirs; the interpreter's own dirs bound back in."""
        ms_rec, ms_private, ms_bind = 0x4000, 0x40000, 0x1000
        mount(None, "/", None, ms_rec | ms_private, None)
        keep = {os.path.realpath(p) for p in (sys.base_prefix, sys.base_exec_prefix)}
        keep.add(os.path.dirname(os.path.realpath(sys.executable)))
        fds = {p: os.open(p, os.O_PATH) for p in keep if any(p.startswith(h + "/") for h in cfg["hidden"])}
        for hidden in cfg["hidden"]:
            if os.path.isdir(hidden) and not os.path.islink(hidden):
                mount("tmpfs", hidden, "tmpfs", 0, f"size={cfg['max_file_mb']}m,mode=1777")
        for path, fd in fds.items():
            os.makedirs(path, exist_ok=True)
            mount(f"/proc/self/fd/{fd}", path, None, ms_bind | ms_rec, None)
            os.close(fd)
        os.makedirs("/tmp/work", mode=0o777)
        os.chmod("/tmp/work", 0o777)
        os.chdir("/tmp/work")

    clone_newns, clone_newnet, clone_newuser = 0x20000, 0x40000000, 0x10000000
    uid, root, real_uid, real_gid = cfg["uid"], os.geteuid() == 0, os.getuid(), os.getgid()
    flags = clone_newns | clone_newnet | (0 if root else clone_newuser)
    if libc.unshare(flags) == 0:
        isolation.append("net")
        if not root:  # map ourselves in, so files keep our uid, then shed the namespace's caps below
            for name, text in (("setgroups", "deny"), ("uid_map", f"{real_uid} {real_uid} 1"),
                               ("gid_map", f"{real_gid} {real_gid} 1")):  # fmt: skip
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
        try:
            private_filesystem()
            isolation.append("fs")
        except OSError as e:
            print(f"sandbox: no private filesystem: {e}", file=sys.stderr)
        if not root and libc.unshare(clone_newuser) != 0:  # nested userns: no caps over our mounts
            exit_now(3)
    if root:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        isolation.append("uid")
    pr_set_no_new_privs = 38
    libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0)
    for res, value in (
        (resource.RLIMIT_CPU, cfg["cpu_seconds"]),
        (resource.RLIMIT_AS, cfg["memory_mb"] << 20),
        (resource.RLIMIT_FSIZE, cfg["max_file_mb"] << 20),
        (resource.RLIMIT_NPROC, cfg["max_processes"]),
        (resource.RLIMIT_NOFILE, 256),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(res, (value, value))

    snapshot = dict(vars(builtins))

    def untouched() -> bool:
        now = vars(builtins)
        return (
            gettrace() is None
            and getprofile() is None
            and len(listdir("/proc/self/task")) == 1
            and len(now) == len(snapshot)
            and all(now.get(k) is v for k, v in snapshot.items())
        )

    ns = {"__name__": "solution", "__builtins__": builtins}
    try:
        exec_(compile_(cfg["program"], "<solution>", "exec", dont_inherit=True), ns)
    except BaseException:  # SystemExit and KeyboardInterrupt too: exiting early is a failure
        report("error")
        traceback.print_exc()
        exit_now(0)
    if not untouched():
        report("tampered")
        exit_now(0)
    passed = 0
    for kind, source in cfg["units"]:
        try:
            if kind == "assert":
                passed += bool_(eval_(compile_(source, "<tests>", "eval", dont_inherit=True), ns))
            else:
                exec_(compile_(source, "<tests>", "exec", dont_inherit=True), ns)
                passed += 1
        except BaseException:
            pass
        if gettrace() is not None or getprofile() is not None:
            report("tampered")
            exit_now(0)
    report("done" if untouched() else "tampered", passed)
    exit_now(0)


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
    """Processes running as a pool uid: uid -> [(pid, is_zombie)]."""
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
        if SANDBOX_UID_BASE <= uid < SANDBOX_UID_BASE + UID_POOL:
            found.setdefault(uid, []).append((int(entry), status["State"].strip().startswith("Z")))
    return found


def _sweep(uid: int) -> None:
    """SIGKILL every live process of a sandbox uid until none is left (fork bombs race the first
    pass). Zombies stay until init reaps them; they still count against RLIMIT_NPROC, hence the
    lease's preference for uids without any."""
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
            "nonce": nonce, "result_fd": write_end, "uid": uid, "program": program, "units": units,
            "hidden": HIDDEN_DIRS, "cpu_seconds": int(limits.timeout) + 1, "memory_mb": limits.memory_mb,
            "max_file_mb": limits.max_file_mb, "max_processes": limits.max_processes,
        }  # fmt: skip
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-u", "-c", _SANDBOX_SOURCE],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                cwd=workdir, env=ENV, pass_fds=(write_end,), start_new_session=True,
            )  # fmt: skip
        finally:
            os.close(write_end)
        try:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(json.dumps(cfg).encode())  # type: ignore[union-attr]
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
    """Run a known-good program once per process: a sandbox that cannot even import the stdlib (e.g.
    an interpreter the sandbox uid may not read) would score every completion 0, so fail loudly.
    Returns the isolation mechanisms in effect, warning once when the network is not cut off."""
    program = "import json, math\ndef f():\n    return json.dumps(math.floor(1.5))\n"
    verdict = run_program(program, "assert f() == '1'")
    if verdict.status != "passed":
        raise RuntimeError(f"code_exec: the sandbox cannot run a correct program ({verdict.status}): "
                           f"{verdict.output[-2000:].decode(errors='replace')}")  # fmt: skip
    if "net" not in verdict.isolation:
        log.warning("code_exec: no network namespace here; sandboxed programs can reach the network")
    return verdict.isolation


@register("code_exec", columns=("tests",))
def code_exec(
    completions: list,
    tests: list[str],
    *,
    partial: float = PARTIAL_REWARD,
    whole_completion: bool = False,
    workers: int | None = None,
    timeout: float = Limits.timeout,
    memory_mb: int = Limits.memory_mb,
    max_processes: int = Limits.max_processes,
    max_file_mb: int = Limits.max_file_mb,
    max_output_bytes: int = Limits.max_output_bytes,
    **_columns: object,  # TRL passes every dataset column; options are checked by name in config
) -> list[float]:
    """Score each completion's code against its row's tests, `workers` sandboxes at a time."""
    check_sandbox()
    limits = Limits(timeout, memory_mb, max_processes, max_file_mb, max_output_bytes)

    def score(completion: str | list[dict], row_tests: str) -> float:
        code = extract_code(completion_text(completion), whole_completion)
        return 0.0 if code is None else run_program(code, row_tests, limits).score(partial)

    if len(completions) != len(tests):
        raise ValueError(f"code_exec: {len(completions)} completions but {len(tests)} tests")
    workers = workers or min(4, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(score, completions, tests))
