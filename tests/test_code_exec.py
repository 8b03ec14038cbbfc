"""The code_exec sandbox: correct code scores 1.0, hostile code scores 0 and the test process stays
healthy. Every hostile case is followed by a correct program that must still score 1.0 quickly."""

from __future__ import annotations

import fcntl
import json
import os
import select
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from grpo_rlvr.rewards import resolve
from grpo_rlvr.rewards.code_exec import code_exec, extract_code
from grpo_rlvr.sandbox import Limits, check_sandbox, parse_tests, run_program, server, uids
from grpo_rlvr.sandbox.uids import sandbox_processes as uid_processes

DATA = Path(__file__).parent / "data" / "code_tasks.jsonl"
FAST = Limits(timeout=2.0)
SQUARE = "def square(x):\n    return x * x\n"
SQUARE_TESTS = "assert square(3) == 9\nassert square(-2) == 4\n"
ISOLATION = check_sandbox()


def fenced(code: str, tag: str = "python") -> str:
    return f"Here is my solution.\n```{tag}\n{code}```\nDone."


def assert_healthy() -> None:
    """The sandbox still runs a correct program, and no sandboxed process outlived its run."""
    assert run_program(SQUARE, SQUARE_TESTS, FAST).score() == 1.0
    assert sandbox_processes() == []


def sandbox_processes() -> list[int]:
    """Live processes of a sandbox uid that no run holds (as root; otherwise the child keeps our uid).
    A uid another process's run holds now (another trainer or test on this machine) is not checked:
    its processes are in flight, not left over."""
    found = []
    for uid in uid_processes():
        fd = os.open(os.path.join(uids._lock_dir(), str(uid)), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # holding the lease while looking: nobody starts a run of that uid meanwhile
            found += [pid for pid, zombie in uid_processes().get(uid, []) if not zombie]
        except BlockingIOError:
            pass
        finally:
            os.close(fd)
    return found


# --- scoring -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        (fenced(SQUARE), 1.0),
        (fenced(SQUARE, tag="py"), 1.0),
        (fenced(SQUARE, tag=""), 1.0),
        (fenced("def square(x):\n    return x + x\n"), 0.2),  # square(3) fails, square(-2) passes
        (fenced("def square(x):\n    return 0\n"), 0.2),  # runs, every test fails
        (fenced("def square(x) return x\n"), 0.0),  # syntax error
        (fenced("raise RuntimeError('boom')\n"), 0.0),  # the program itself fails
        ("def square(x):\n    return x * x\n", 0.0),  # no fence: no code by default
        (f"```python\n{SQUARE}", 0.0),  # unterminated fence (cut at max tokens)
        (fenced(SQUARE, tag="bash"), 0.0),  # only python/py/untagged fences count
        (fenced("   \n"), 0.0),  # empty block
        ([{"role": "assistant", "content": fenced(SQUARE)}], 1.0),  # conversational completion
    ],
)
def test_scores(completion: str | list[dict], expected: float) -> None:
    assert code_exec([completion], [SQUARE_TESTS], timeout=2.0) == [expected]


def test_options_partial_and_whole_completion() -> None:
    wrong = fenced("def square(x):\n    return 0\n")
    assert resolve(["code_exec"], {"code_exec": {"partial": 0.5}})[0]([wrong], [SQUARE_TESTS]) == [0.5]
    assert code_exec([SQUARE], [SQUARE_TESTS], whole_completion=True) == [1.0]


def test_first_python_fence_wins() -> None:
    text = "```bash\nls\n```\n```python\nx = 1\n```\n```python\ny = 2\n```"
    assert extract_code(text) == "x = 1\n"


def test_test_units_count_statements_and_setup() -> None:
    tests = "import math\nassert square(2) == 4\nfor v in (1, 2):\n    assert square(v) == v * v\n"
    assert [kind for kind, _ in parse_tests(tests)] == ["exec", "assert", "exec"]
    verdict = run_program("def square(x):\n    return 4\n", tests, FAST)
    assert (verdict.status, verdict.passed, verdict.total) == ("failed", 2, 3)  # the loop unit fails


@pytest.mark.parametrize("tests", ["x = 1\n", "assert (\n"])
def test_bad_tests_are_a_data_error(tests: str) -> None:
    with pytest.raises(ValueError, match="code_exec: tests"):
        code_exec([fenced(SQUARE)], [tests])


def test_parallel_workers_keep_order() -> None:
    completions = [fenced(SQUARE if i % 2 else "def square(x):\n    return 0\n") for i in range(8)]
    assert code_exec(completions, [SQUARE_TESTS] * 8, workers=4) == [0.2, 1.0] * 4


def test_example_tasks_are_solvable() -> None:
    rows = [json.loads(line) for line in DATA.read_text().splitlines()]
    assert len(rows) >= 8 and all(set(r) == {"prompt", "tests", "solution"} for r in rows)
    assert code_exec([fenced(r["solution"]) for r in rows], [r["tests"] for r in rows]) == [1.0] * len(rows)


# --- hostile programs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("program", "statuses"),
    [
        ("while True:\n    pass\n", {"timeout"}),  # infinite loop
        ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
         {"timeout", "crashed"}),  # fork bomb
        ("import os\nif os.fork() == 0:\n    os.setsid()\n    import time\n    time.sleep(60)\n" + SQUARE,
         {"passed"}),  # a daemonised child must not outlive the run (checked by assert_healthy)
        ("blob = bytearray(10 * 1024**3)\n" + SQUARE, {"error"}),  # 10 GB
        ("blob = b'x' * (64 << 20)\nopen('big', 'wb').write(blob)\n" + SQUARE, {"error"}),  # RLIMIT_FSIZE
        ("while True:\n    print('spam' * 10000)\n", {"timeout"}),  # endless output
        ("import sys\nsys.exit(0)\n" + SQUARE, {"error"}),
        ("import os\nos._exit(0)\n" + SQUARE, {"crashed"}),
        ("import os\n" + SQUARE.replace("return x * x", "os._exit(0)"), {"crashed"}),  # exit inside a test
    ],
)  # fmt: skip
def test_hostile_program_is_contained(program: str, statuses: set[str]) -> None:
    start = time.monotonic()
    verdict = run_program(program, SQUARE_TESTS, FAST)
    assert verdict.status in statuses
    assert verdict.score() == (1.0 if statuses == {"passed"} else 0.0)
    # A kill deadline, not a speed target: contained means ended soon after the timeout, even on a
    # loaded machine; a program that escaped it would run on far past this.
    assert time.monotonic() - start < FAST.timeout + 30
    assert len(verdict.output) <= FAST.max_output_bytes
    assert_healthy()


def test_megabytes_of_output_do_not_hang_or_fill_memory() -> None:
    # A timeout a loaded machine cannot miss: a hang still ends as "timeout", not "passed".
    patient = Limits(timeout=60.0)
    verdict = run_program("import sys\nsys.stdout.write('x' * (50 << 20))\n" + SQUARE, SQUARE_TESTS, patient)
    assert verdict.status == "passed"  # printing is allowed; it is only capped
    assert len(verdict.output) == patient.max_output_bytes
    assert_healthy()


@pytest.mark.parametrize(
    "program",
    [
        "import builtins\nbuiltins.AssertionError = Exception\n",
        "import builtins\nbuiltins.bool = lambda *a: True\nbuiltins.eval = lambda *a, **k: True\n",
        "import sys\nsys.settrace(lambda *a: None)\n",
        "import threading, time\nthreading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n",
        "import atexit, sys\natexit.register(print, 'ALL TESTS PASSED')\nsys.exit(0)\n",
        "import __main__\n__main__.report = lambda *a: None\nprint('done 2 2')\nraise SystemExit(0)\n",
        # a forged verdict on every descriptor, then an exit before the tests run
        "import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'done 2 net,fs,uid\\n')\n"
        "    except OSError:\n        pass\nos._exit(0)\n",
    ],
)
def test_tampering_scores_zero(program: str) -> None:
    assert run_program(program + SQUARE, SQUARE_TESTS, FAST).score() == 0.0
    assert_healthy()


def test_no_writes_outside_the_sandbox(tmp_path: Path) -> None:
    in_tmp = Path("/tmp") / f"code-exec-escape-{uuid.uuid4().hex}"
    in_host_dir = tmp_path / "escaped"
    program = f"open({str(in_tmp)!r}, 'w').write('x')\nopen({str(in_host_dir)!r}, 'w').write('x')\n"
    assert run_program(program + SQUARE, SQUARE_TESTS, FAST).score() == 0.0
    assert not in_tmp.exists() and not in_host_dir.exists()
    assert_healthy()


def test_environment_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_fakeTOKENforSandboxTest0123456789")
    # reading the token is an error; the same check in a test passes only because it is absent
    reads_token = "import os\ntoken = os.environ['HF_TOKEN']\n" + SQUARE
    assert run_program(reads_token, SQUARE_TESTS, FAST).score() == 0
    names = "import os\nnames = set(os.environ)\n"
    assert run_program(names, "assert 'HF_TOKEN' not in names", FAST).score() == 1.0
    assert run_program(names, "assert 'PATH' in names", FAST).score() == 1.0  # the probe does see env
    assert run_program(names, "assert names <= {'PATH', 'LANG', 'LC_CTYPE'}", FAST).score() == 1.0


def test_parent_process_is_out_of_reach() -> None:
    probe = (
        "import os\ndef probe(name):\n    try:\n        open(f'/proc/{os.getppid()}/{name}', 'rb').read(1)\n"
        "    except OSError:\n        return 'denied'\n    return 'read'\n"
    )
    if "uid" not in ISOLATION:
        pytest.skip("not root: the child keeps our uid, so it can read our /proc entries (documented)")
    tests = "assert probe('environ') == 'denied'\nassert probe('mem') == 'denied'\n"
    assert run_program(probe, tests, FAST).score() == 1.0


def test_no_network() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        program = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
        assert run_program(program + SQUARE, SQUARE_TESTS, FAST).score() == 0.0
        readable, _, _ = select.select([listener], [], [], 0.2)
        assert readable == [], "the sandboxed program reached the listener"
    assert "net" in ISOLATION
    assert_healthy()


@pytest.fixture
def cpu_load() -> Iterator[None]:
    """Two busy processes (bounded to 120 s even if the test dies) competing for the cores."""
    burn = "import time\nend = time.monotonic() + 120\nwhile time.monotonic() < end:\n    pass\n"
    burners = [subprocess.Popen([sys.executable, "-c", burn]) for _ in range(2)]
    try:
        yield
    finally:
        for proc in burners:
            proc.kill()
            proc.wait()


THREADED = [
    # a thread started and joined by the program, then by the function under test, then a pool
    "import threading\nresults = []\nt = threading.Thread(target=results.append, args=(1,))\n"
    "t.start()\nt.join()\n" + SQUARE,
    "import threading\ndef square(x):\n    out = []\n"
    "    t = threading.Thread(target=lambda: out.append(x * x))\n"
    "    t.start()\n    t.join()\n    return out[0]\n",
    "from concurrent.futures import ThreadPoolExecutor\ndef square(x):\n"
    "    with ThreadPoolExecutor(2) as pool:\n        return pool.submit(pow, x, 2).result()\n",
]


@pytest.mark.parametrize("program", THREADED)
def test_threaded_program_scores_one_every_time_under_load(cpu_load: None, program: str) -> None:
    verdicts = [run_program(program, SQUARE_TESTS, Limits(timeout=20.0)) for _ in range(20)]
    assert [v.status for v in verdicts] == ["passed"] * 20


def test_a_dead_fork_server_is_replaced() -> None:
    """The sandbox's fork server (one per process) killed between two runs: the next run starts a new one."""
    assert run_program(SQUARE, SQUARE_TESTS, FAST).score() == 1.0
    first = server._server
    assert first is not None and first.proc.poll() is None
    first.proc.kill()
    first.proc.wait()
    assert run_program(SQUARE, SQUARE_TESTS, FAST).score() == 1.0
    assert server._server is not first and server._server.proc.poll() is None
    assert_healthy()
