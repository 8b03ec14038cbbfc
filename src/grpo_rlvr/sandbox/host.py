"""The host side of the sandbox: run one program and its tests in a fresh child (forked by the fork
server, `program.py --serve`) under the limits, collect its output and the judge's verdict line, kill
the run's processes, and check once per process that the sandbox can run a correct program at all."""

from __future__ import annotations

import ast
import builtins
import contextlib
import functools
import json
import logging
import os
import secrets
import selectors
import tempfile
import time
from dataclasses import dataclass

from grpo_rlvr.sandbox.meter import MAX_FILES, SAMPLE_S, Meter, kill_run
from grpo_rlvr.sandbox.server import RESULT_FD, start_run
from grpo_rlvr.sandbox.uids import UID_POOL, lease_uid, sweep

log = logging.getLogger(__name__)

HIDDEN_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/root", "/home", "/run", "/opt/ml")
RESULT_CAP = 64 * 1024  # bytes read from the verdict pipe
PARTIAL_REWARD = 0.2  # the score of a program that ran but failed a test unit


@dataclass(frozen=True)
class Limits:
    """Per-run resource limits; every field is a `reward_kwargs` option of `code_exec`."""

    timeout: float = 5.0  # wall clock for program + tests, seconds
    memory_mb: int = 1024  # resident, all of the run's processes together; RLIMIT_AS of each
    max_processes: int = 16  # RLIMIT_NPROC (per sandbox uid as root)
    max_file_mb: int = 16  # RLIMIT_FSIZE
    disk_mb: int = 64  # all of the run's files together
    max_output_bytes: int = 64 * 1024  # stdout+stderr kept for debugging


@dataclass(frozen=True)
class Verdict:
    """What one run produced. `status` is passed | failed | no_code | syntax_error | error | timeout |
    over_limit | tampered | crashed; only `passed` and `failed` mean every test unit was evaluated."""

    status: str
    passed: int = 0
    total: int = 0
    output: bytes = b""
    isolation: tuple[str, ...] = ()

    def score(self, partial: float = PARTIAL_REWARD) -> float:
        return {"passed": 1.0, "failed": partial}.get(self.status, 0.0)


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
    """(names the tests read that the program may define, modules they import). Builtins and dunders
    are never looked up in the program: a program cannot stand in for `len`, `sorted` or
    `__builtins__` in the tests."""
    tree = ast.parse(tests)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - set(dir(builtins))
    imports = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imports |= {
        n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and not n.level
    }
    return sorted(n for n in names if not (n.startswith("__") and n.endswith("__"))), sorted(imports)


def _compiles(code: str) -> bool:
    try:
        compile(code, "<solution>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _collect(output_fd: int, result_fd: int, limits: Limits, meter: Meter) -> tuple[bytes, bytes, str]:
    """Read output (capped, the rest drained) and the verdict pipe until the judge's line is complete
    or the judge is gone (its pipe closes), time runs out or the run goes over a program-wide limit.
    Returns (output, result, why it was stopped: "" when it ended by itself). Leftover grandchildren
    holding the output pipe do not stall this: only the judge holds the verdict pipe."""
    bufs = {output_fd: bytearray(), result_fd: bytearray()}
    caps = {output_fd: limits.max_output_bytes, result_fd: RESULT_CAP}
    deadline = time.monotonic() + limits.timeout
    with selectors.DefaultSelector() as sel:
        for fd in bufs:
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map():
            done = result_fd not in sel.get_map() or b"\n" in bufs[result_fd]
            remaining = deadline - time.monotonic()
            if remaining <= 0 and not done:
                return bytes(bufs[output_fd]), bytes(bufs[result_fd]), "timeout"
            if not done and (over := meter.over()):
                return bytes(bufs[output_fd]), bytes(bufs[result_fd]), f"over_limit: {over}"
            events = sel.select(0 if done else min(remaining, SAMPLE_S))
            for key, _ in events:
                data = os.read(key.fd, 65536)
                if not data:
                    sel.unregister(key.fd)
                buf = bufs[key.fd]
                buf += data[: max(0, caps[key.fd] - len(buf))]
            if done and not events:
                break
    return bytes(bufs[output_fd]), bytes(bufs[result_fd]), ""


def run_program(program: str, tests: str, limits: Limits | None = None) -> Verdict:
    """Run one program and its tests in the sandbox and judge it; see docs/rewards.md."""
    limits = limits or Limits()
    units = parse_tests(tests)
    if not _compiles(program):
        return Verdict("syntax_error", total=len(units))
    names, imports = _test_names(tests)
    nonce = secrets.token_hex(16)
    with (
        lease_uid() as uid,
        tempfile.TemporaryDirectory(prefix="code-exec-", ignore_cleanup_errors=True) as workdir,
    ):
        if uid is not None:
            os.chown(workdir, uid, uid)
        os.chmod(workdir, 0o700)
        cfg = {
            "uid": uid, "judge_uid": None if uid is None else uid + UID_POOL, "program": program,
            "imports": imports, "hidden": HIDDEN_DIRS, "cpu_seconds": int(limits.timeout) + 1,
            "memory_mb": limits.memory_mb, "max_file_mb": limits.max_file_mb, "disk_mb": limits.disk_mb,
            "max_processes": limits.max_processes, "max_files": MAX_FILES,
        }  # fmt: skip
        judge_cfg = {"nonce": nonce, "result_fd": RESULT_FD, "units": units, "names": names}
        payload = b"".join(
            f"{len(p):010d}".encode() + p for p in map(str.encode, map(json.dumps, (cfg, judge_cfg)))
        )
        (stdin, to_stdin), (output_fd, to_output), (result_fd, to_result) = os.pipe(), os.pipe(), os.pipe()
        theirs = [stdin, to_output, to_result, os.open(workdir, os.O_RDONLY | os.O_DIRECTORY)]
        try:
            server, pid = start_run(*theirs)
        finally:
            for fd in theirs:
                os.close(fd)
        try:
            with contextlib.suppress(BrokenPipeError):  # kept open: the judge waits for its end
                _write_all(to_stdin, payload)
            meter = Meter(pid, workdir, limits.memory_mb, limits.disk_mb)
            output, result, stopped = _collect(output_fd, result_fd, limits, meter)
            if not stopped and (over := meter.disk_over()):
                stopped = f"over_limit: {over}"
        finally:
            whole = kill_run(pid)
            server.reap(pid)
            # a run that ended without its judge (killed, crashed) may have processes outside its tree
            if uid is not None and (stopped or not whole or b"\n" not in result):
                sweep(uid)
            for fd in (to_stdin, output_fd, result_fd):
                os.close(fd)
    if stopped:
        status, _, why = stopped.partition(": ")
        note = f"\nsandbox: stopped, {why}\n".encode() if why else b""
        return Verdict(status, total=len(units), output=output + note)
    return _verdict(result, nonce, len(units), output)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _verdict(result: bytes, nonce: str, total: int, output: bytes) -> Verdict:
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
