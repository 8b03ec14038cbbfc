"""`grpo-rlvr launch`: the bad-input catalogue, process topology, SIGTERM + resume, two nodes on loopback."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from bad_inputs import CATALOGUE, SMOKE_HYPERPARAMETERS, BadInput, make_tree

from grpo_rlvr import checkpoints, handoff
from grpo_rlvr.config.loading import load_config
from grpo_rlvr.launch import entrypoint, logs, planning, processes
from grpo_rlvr.sagemaker import ContractError, Paths, Resources

LAUNCH = [str(Path(sys.executable).with_name("grpo-rlvr")), "launch"]  # the real console script
# Run through the real console command (a subprocess each, started together); the rest run in-process.
SUBPROCESS_SAMPLE = {"hyperparameters_not_json", "key_unknown"}


def _by_name(names: set[str]) -> list[BadInput]:
    return [entry for entry in CATALOGUE if entry.name in names]


def _assert_refused(base: Path, entry: BadInput, code: int) -> None:
    paths = Paths(base)
    failure = paths.failure_file.read_text()
    assert entry.message in failure, failure
    assert len(failure) <= 1024
    assert code == entry.code
    assert not (paths.model_dir / checkpoints.SUMMARY_NAME).exists()


def test_catalogue_is_large_and_distinct() -> None:
    assert len(CATALOGUE) >= 30
    assert len({e.name for e in CATALOGUE}) == len({e.message for e in CATALOGUE}) == len(CATALOGUE)


@pytest.mark.parametrize(
    "entry", [e for e in CATALOGUE if e.name not in SUBPROCESS_SAMPLE], ids=lambda e: e.name
)
def test_bad_input_in_process(
    entry: BadInput, tmp_path: Path, tiny_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = make_tree(tmp_path)
    entry.breaks(base)
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    for name, value in entry.env.items():
        monkeypatch.setenv(name, value)
    _assert_refused(base, entry, entrypoint.main(entry.args))


def test_bad_input_through_the_console_command(tmp_path: Path, tiny_model: str) -> None:
    runs = []
    for entry in _by_name(SUBPROCESS_SAMPLE):
        base = make_tree(tmp_path / entry.name)
        entry.breaks(base)
        env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), **entry.env}
        command = [*LAUNCH, *entry.args]
        runs.append((entry, base, subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)))
    assert len(runs) == len(SUBPROCESS_SAMPLE)
    for entry, base, process in runs:
        _, stderr = process.communicate(timeout=120)
        _assert_refused(base, entry, process.returncode)
        assert entry.message in stderr  # the reason is in the job's log too


# --- decisions, without running anything ------------------------------------------------------------


def test_the_settings_file_reads_back_as_the_same_values_and_only_its_user_can_read_it() -> None:
    typed = {
        "run_name": "yes",  # YAML would read a bare yes as a bool
        "hub_model_id": "3",
        "lora_target_modules": ["q_proj", "v_proj"],
        "reward_kwargs": {"gsm8k_correctness": {"tolerance": 0.5}},
        "gradient_checkpointing": False,
        "max_steps": 40,
        "lora_dropout": None,
        "logging_dir": "a b: c",
    }
    with handoff.settings_file("smoke-cpu", typed) as path:
        assert handoff.read_settings(path) == ("smoke-cpu", typed)
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.parent.stat().st_mode & 0o777 == 0o700
    assert not path.parent.exists()


def test_training_processes_get_the_config_the_launcher_validated(tmp_path: Path, tiny_model: str) -> None:
    typed = {
        "learning_rate": 5e-06,
        "lora_target_modules": ["q_proj", "v_proj"],
        "max_steps": 7,
        "use_cpu": True,
    }
    in_process = load_config("smoke-cpu", typed).resolved()
    with handoff.settings_file("smoke-cpu", typed) as path:
        child = load_config(*handoff.read_settings(path)).resolved()
    assert child == in_process
    assert in_process["training"]["learning_rate"] == 5e-06
    assert in_process["model"]["lora_target_modules"] == ["q_proj", "v_proj"]


def _fake_devices(tmp_path: Path, interfaces: list[str], efa: bool) -> dict[str, Path]:
    net, ib = tmp_path / "net", tmp_path / "infiniband"
    for folder in (net, ib):
        folder.mkdir(exist_ok=True)
    for name in interfaces:
        (net / name).mkdir(exist_ok=True)
    if efa:
        (ib / "uverbs0").touch()
    return {"net_dir": net, "efa_dir": ib}


GRACE = {"TORCH_ELASTIC_SHUTDOWN_TIMEOUT": str(processes.STOP_GRACE_S)}
CPU = {**GRACE, "DS_ACCELERATOR": "cpu"}  # DeepSpeed's CPU accelerator, over gloo
NCCL = {**GRACE, "NCCL_DEBUG": "WARN"}
SOCKETS = {**NCCL, "NCCL_SOCKET_IFNAME": "eth0"}
EFA = {**SOCKETS, "FI_PROVIDER": "efa", "RDMAV_FORK_SAFE": "1"}  # never NCCL_PROTO=simple


@pytest.mark.parametrize(
    ("hosts", "interface", "instance", "gpus", "efa", "plugin", "expected"),
    [
        # CPU: gloo, and its interface only when there are several hosts and the interface exists
        (1, "eth0", None, 0, False, False, CPU),
        (2, "eth0", None, 0, False, False, {**CPU, "GLOO_SOCKET_IFNAME": "eth0"}),
        (
            2,
            "ethwe",
            None,
            0,
            False,
            False,
            CPU,
        ),  # SDK local mode's name: no such interface in a local container
        # GPU without EFA
        (2, "eth0", "ml.g5.12xlarge", 4, False, False, SOCKETS),
        (2, "ethwe", "local_gpu", 1, False, False, NCCL),
        # EFA devices: used only between hosts and through an OFI NCCL plugin; device RDMA where listed
        (1, "eth0", "ml.p4d.24xlarge", 8, True, True, SOCKETS),  # one host: NVLink, nothing for EFA
        (2, "eth0", "ml.g5.48xlarge", 8, True, False, SOCKETS),  # no plugin: NCCL cannot use EFA
        (2, "eth0", "ml.g5.48xlarge", 8, True, True, EFA),
        (2, "eth0", "ml.p4d.24xlarge", 8, True, True, {**EFA, "FI_EFA_USE_DEVICE_RDMA": "1"}),
    ],
)
def test_distributed_env(
    tmp_path: Path,
    hosts: int,
    interface: str,
    instance: str | None,
    gpus: int,
    efa: bool,
    plugin: bool,
    expected: dict,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    plugin_dir = tmp_path / "ofi-nccl"
    plugin_dir.mkdir()
    if plugin:
        (plugin_dir / "libnccl-net.so").touch()
    names = tuple(f"algo-{i + 1}" for i in range(hosts))
    resources = Resources("algo-1", names, interface, instance)
    devices = _fake_devices(tmp_path, ["lo", "eth0"], efa)
    assert processes.distributed_env(resources, gpus, **devices, plugin_dirs=[str(plugin_dir)]) == expected


def test_cpu_processes_sets_the_process_count_on_hosts_without_a_gpu() -> None:
    two_hosts = Resources("algo-1", ("algo-1", "algo-2"))
    assert planning.Plan("smoke-cpu", {}, two_hosts, 0, "zero3", 2).processes == 4
    assert planning._cpu_processes(None) == 1 and planning._cpu_processes(3) == 3
    for bad in (0, -1, "two", True, 1.5):
        with pytest.raises(ContractError, match="cpu_processes"):
            planning._cpu_processes(bad)


def _plan(gpus: int, hosts: tuple[str, ...], current: str) -> planning.Plan:
    return planning.Plan(
        "smoke-cpu",
        {"max_steps": 3, "lora_target_modules": ["q_proj"]},
        Resources(current, hosts),
        gpus,
        None,
    )


def test_accelerate_command_on_cpu_hosts() -> None:
    plan = _plan(0, ("algo-1", "algo-2"), "algo-2")
    command = processes.accelerate_command(
        plan, planning.accelerate_config_path("ddp"), "10.0.0.1", 29500, Path("/tmp/x/s.json")
    )
    assert plan.processes == 2
    assert command[command.index("--num_processes") + 1] == "2"
    assert command[command.index("--num_machines") + 1] == "2"
    assert command[command.index("--machine_rank") + 1] == "1"
    assert command[command.index("--main_process_ip") + 1] == "10.0.0.1"
    assert "--multi_gpu" in command  # gloo on CPU: `--cpu` would start ONE process
    assert command[command.index("-m", 3) :] == [
        "-m", "grpo_rlvr.cli", "train", "--settings", "/tmp/x/s.json",
    ]  # fmt: skip


def test_accelerate_command_on_cpu_hosts_leaves_deepspeed_to_the_config() -> None:
    """`--multi_gpu` would make accelerate ignore the config's DeepSpeed and run plain DDP."""
    plan = _plan(0, ("algo-1",), "algo-1")
    zero3 = planning.accelerate_config_path("zero3")
    ddp = planning.accelerate_config_path("ddp")
    assert processes.uses_deepspeed(zero3) and not processes.uses_deepspeed(ddp)
    assert "--multi_gpu" not in processes.accelerate_command(plan, zero3, "127.0.0.1", 29500, Path("s.json"))


def test_accelerate_command_on_gpu_hosts() -> None:
    plan = _plan(8, ("algo-1", "algo-2"), "algo-1")
    command = processes.accelerate_command(plan, Path("zero2.yaml"), "10.0.0.1", 29500, Path("s.json"))
    assert plan.processes == 16
    assert command[command.index("--num_processes") + 1] == "16"
    assert command[command.index("--machine_rank") + 1] == "0"
    assert "--multi_gpu" not in command  # the accelerate config file says DDP or DeepSpeed


def test_host_address() -> None:
    env = {processes.HOST_ADDRS_ENV: "algo-1=127.0.0.1, algo-2=10.0.0.2"}
    assert processes.host_address("algo-2", env) == "10.0.0.2"
    assert processes.host_address("localhost", env) == socket.gethostbyname("localhost")


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (
            "Traceback ...\nValueError: inner\ngrpo-rlvr train: error: no usable rows in /x\n",
            "no usable rows in /x",
        ),
        (
            "[rank0]: Traceback (most recent call last):\n[rank0]: RuntimeError: CUDA out of memory\n"
            "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n"
            "subprocess.CalledProcessError: Command '[...]' returned non-zero exit status 1.\n",
            "RuntimeError: CUDA out of memory",
        ),
        ("Killed\n", None),
    ],
)
def test_error_from_output(output: str, expected: str | None) -> None:
    assert logs.error_from_output(output) == expected


def test_sigterm_reaches_the_whole_process_group(tmp_path: Path) -> None:
    """The launcher forwards SIGTERM to its child's group: a grandchild (a training worker) gets it too."""
    script = (
        "import signal, subprocess, sys, time\n"
        "def stop(*_):\n"
        f"    open(r'{tmp_path}/' + sys.argv[1], 'w').close(); sys.exit(3)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "if sys.argv[1] == 'parent':\n"
        "    subprocess.Popen([sys.executable, __file__, 'worker'])\n"
        f"open(r'{tmp_path}/ready-' + sys.argv[1], 'w').close()\n"
        "time.sleep(60)\n"
    )
    (tmp_path / "child.py").write_text(script)

    def stop_when_ready() -> None:
        while not (tmp_path / "ready-worker").exists():
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=stop_when_ready, daemon=True).start()
    started = time.monotonic()
    command = [sys.executable, str(tmp_path / "child.py"), "parent"]
    code, forwarded = processes.run_children(command, os.environ)
    assert (code, forwarded) == (3, signal.SIGTERM)
    assert time.monotonic() - started < 30
    deadline = time.monotonic() + 10
    while not (tmp_path / "worker").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (tmp_path / "parent").exists() and (tmp_path / "worker").exists()


# --- end to end on CPU --------------------------------------------------------------------------------


class Launcher:
    """A `grpo-rlvr launch` subprocess whose output is collected line by line as it comes."""

    def __init__(self, base: Path, env: dict[str, str] | None = None) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            LAUNCH,
            env={**os.environ, "SAGEMAKER_BASE_DIR": str(base), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for(self, needle: str, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while sum(needle in line for line in self.lines) < count:
            assert self.process.poll() is None, "".join(self.lines[-40:])
            assert time.monotonic() < deadline, "".join(self.lines[-40:])
            time.sleep(0.1)

    def finish(self, timeout: float) -> tuple[int, str]:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code, "".join(self.lines)

    def stop(self) -> None:
        """SIGTERM (which the launcher forwards to its training processes), then SIGKILL."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture
def start() -> Iterator[Callable[..., Launcher]]:
    """Starts launchers; any still running when the test ends (a failure) is stopped with its children."""
    started: list[Launcher] = []

    def start_one(base: Path, env: dict[str, str] | None = None) -> Launcher:
        started.append(Launcher(base, env))
        return started[-1]

    yield start_one
    for launcher in started:
        launcher.stop()


def test_sigterm_checkpoints_then_a_restart_resumes(
    tmp_path: Path, tiny_model: str, start: Callable[..., Launcher]
) -> None:
    hyperparameters = {
        **SMOKE_HYPERPARAMETERS,
        "max_steps": "30",
        "save_steps": "1000",  # only the SIGTERM checkpoint exists
        "num_shots": "0",
        "learning_rate": "5e-05",
        "lora_target_modules": '["q_proj", "v_proj"]',
    }
    base = make_tree(tmp_path / "opt_ml", hyperparameters)
    paths = Paths(base)

    first = start(base)
    first.wait_for("'loss'", count=3, timeout=150)  # a few steps into training
    first.process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    code, output = first.finish(timeout=120)
    assert time.monotonic() - sent < 120, "past SageMaker's grace"
    assert code == 128 + signal.SIGTERM, output[-3000:]
    checkpoint = checkpoints.latest_complete_checkpoint(paths.checkpoint_dir)
    assert checkpoint is not None
    step = int(checkpoint.name.split("-")[1])
    assert 3 <= step < 30
    assert [p.name for p in paths.checkpoint_dir.glob("checkpoint-*")] == [checkpoint.name]
    failure = paths.failure_file.read_text()
    assert failure.startswith(
        f"stopped by SIGTERM: start again with the same checkpoint location to resume from step {step}"
    )
    assert not (paths.model_dir / checkpoints.SUMMARY_NAME).exists()

    code, output = start(base).finish(timeout=300)
    assert code == 0, output[-3000:]
    assert not paths.failure_file.exists()
    summary = json.loads((paths.model_dir / checkpoints.SUMMARY_NAME).read_text())
    assert summary["global_step"] == 30
    assert summary["resumed_from"] == str(checkpoint)
    assert summary["config"]["training"]["learning_rate"] == 5e-05
    assert summary["config"]["model"]["lora_target_modules"] == ["q_proj", "v_proj"]
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["global_step"] == step


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_nodes(
    tmp_path: Path, max_steps: int, save_steps: int, **more: str
) -> tuple[list[Paths], dict[str, str]]:
    """Two /opt/ml trees, algo-1 and algo-2, whose names resolve to loopback, and their environment."""
    hosts = ("algo-1", "algo-2")
    env = {
        processes.HOST_ADDRS_ENV: "algo-1=127.0.0.1,algo-2=127.0.0.1",
        processes.PORT_ENV: str(_free_port()),
        "OMP_NUM_THREADS": "1",
    }
    hyperparameters = {
        **SMOKE_HYPERPARAMETERS,
        "max_steps": str(max_steps),
        "save_steps": str(save_steps),
        "num_shots": "0",
        **more,
    }
    bases = [make_tree(tmp_path / host, hyperparameters, current_host=host, hosts=hosts) for host in hosts]
    return [Paths(base) for base in bases], env


def _trained_on_both_nodes(checkpoint: Path) -> int:
    """The checkpoint's step, after checking its epoch: 8 completions x 2 processes / 4 per prompt = 4 of
    the 16 prompts a step (one process alone would take 2)."""
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["epoch"] == pytest.approx(state["global_step"] / 4)
    return state["global_step"]


def _cmdlines_holding(secret: bytes) -> list[str]:
    """Command lines of every process on the host (as any user can read them) that hold `secret`."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:  # gone, or no process
            continue
        if secret in cmdline:
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def test_two_nodes_on_loopback(tmp_path: Path, tiny_model: str, start: Callable[..., Launcher]) -> None:
    """Two launchers, each with its own /opt/ml and resourceconfig.json, train together over gloo.

    algo-2 starts with an empty cache, as a second machine does: it builds the built-in model itself.
    A secret-named setting and a secret nested in another reach training (the summary shows them set,
    masked) through a private file: never a command line, a log line or a file left behind."""
    secret = "planted-setting-secret-0123456789"  # in no environment variable: only its place tells
    (main, other), env = _two_nodes(
        tmp_path, max_steps=2, save_steps=2, hub_token=secret, model_init_kwargs=json.dumps({"token": secret})
    )
    fresh_cache = {**env, "GRPO_RLVR_CACHE": str(tmp_path / "algo-2-cache")}
    launchers = [start(main.base, env), start(other.base, fresh_cache)]
    on_command_lines = []
    while any(launcher.process.poll() is None for launcher in launchers):
        on_command_lines += _cmdlines_holding(secret.encode())
        time.sleep(0.05)
    results = [launcher.finish(timeout=300) for launcher in launchers]
    for code, output in results:
        assert code == 0, output[-3000:]
        assert secret not in output
        running = next(line for line in output.splitlines() if "running:" in line)
        assert not Path(running.split("--settings ")[1].split()[0]).parent.exists()  # removed after
    assert on_command_lines == []
    summary = json.loads((main.model_dir / checkpoints.SUMMARY_NAME).read_text())
    assert summary["config"]["training"]["hub_token"] == "***"  # set: an unset one shows null
    assert summary["config"]["training"]["model_init_kwargs"] == {"token": "***"}
    for paths in (main, other):
        written = [
            p for p in paths.base.rglob("*") if p.is_file() and p.relative_to(paths.base).parts[0] != "input"
        ]
        assert not [p for p in written if secret.encode() in p.read_bytes()]
    assert "--num_processes 2 --num_machines 2 --machine_rank 1" in results[1][1]
    assert "building builtin:tiny-qwen2" in results[1][1]
    # `ethwe` from resourceconfig.json exists on no host here: no GLOO_SOCKET_IFNAME pointing at it.
    added = json.loads(results[0][1].split("added for the training processes: ", 1)[1].splitlines()[0])
    # DS_ACCELERATOR is added only where the caller's environment lacks it (an earlier test may set it)
    assert added.pop("DS_ACCELERATOR", "cpu") == "cpu"
    assert added == {"TORCH_ELASTIC_SHUTDOWN_TIMEOUT": "110"}
    assert _trained_on_both_nodes(main.checkpoint_dir / "checkpoint-2") == 2
    assert json.loads((main.model_dir / checkpoints.SUMMARY_NAME).read_text())["global_step"] == 2
    assert not (other.model_dir / checkpoints.SUMMARY_NAME).exists()  # the model is the main host's to write
    assert not main.failure_file.exists() and not other.failure_file.exists()


def test_two_nodes_sigterm_checkpoints_on_every_node(
    tmp_path: Path, tiny_model: str, start: Callable[..., Launcher]
) -> None:
    """SageMaker stops every host: each launcher forwards SIGTERM to its process group; the processes
    agree on one step, each node keeps a whole checkpoint of it, and both launchers exit 143."""
    (main, other), env = _two_nodes(tmp_path, max_steps=30, save_steps=1000)
    launchers = [start(paths.base, env) for paths in (main, other)]
    launchers[0].wait_for("'loss'", count=2, timeout=200)
    for launcher in launchers:
        launcher.process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    for code, output in (launcher.finish(timeout=120) for launcher in launchers):
        assert code == 128 + signal.SIGTERM, output[-3000:]
    assert time.monotonic() - sent < 120
    saved = [checkpoints.latest_complete_checkpoint(paths.checkpoint_dir) for paths in (main, other)]
    assert saved[0] is not None and saved[1] is not None
    assert saved[0].name == saved[1].name
    step = _trained_on_both_nodes(saved[0])
    assert 2 <= step < 30
    for paths in (main, other):
        assert f"resume from step {step}" in paths.failure_file.read_text()


def test_dropped_rows_are_named_in_the_log_and_the_summary(
    tmp_path: Path, tiny_model: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Unreadable rows and a row whose prompt is over `max_prompt_tokens` are each named by file:line."""
    base = make_tree(tmp_path, {**SMOKE_HYPERPARAMETERS, "num_shots": "0"})
    data = base / "input" / "data" / "train" / "data.jsonl"
    lines = data.read_bytes().splitlines(keepends=True)
    long_row = json.dumps({"question": "How many? " * 1000, "answer": "#### 1"}).encode() + b"\n"
    lines[4:4] = [b"{broken\n", b'{"question": "caf\xe9", "answer": "#### 1"}\n', long_row]  # lines 5-7
    data.write_bytes(b"".join(lines))
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    assert entrypoint.main() == 0
    named = [
        f"{data}:5: malformed JSON line: Expecting property name enclosed in double quotes",
        f"{data}:6: invalid UTF-8: byte 0xe9 at column 18",
    ]
    err = capfd.readouterr().err
    assert all(f"dropped {place}" in err for place in named)
    too_long = re.search(
        rf"dropped ({re.escape(str(data))}:7: prompt of \d+ tokens, over max_prompt_tokens=1024)", err
    )
    assert too_long, err[-3000:]
    summary = json.loads((Paths(base).model_dir / checkpoints.SUMMARY_NAME).read_text())
    assert summary["data_issues"]["train"]["first"][:2] == named
    # The long row is dropped from whichever part the seeded split put it in, and named there.
    issues = summary["data_issues"]
    assert sum(part["count"] for part in issues.values()) == 3
    assert [p for part in issues.values() for p in part["first"]].count(too_long.group(1)) == 1
    assert sum(summary["data"]["prompts_dropped"].values()) == 1


@pytest.mark.parametrize("host", ["algo-1", "algo-2"])
def test_training_that_exits_0_without_a_run_summary_is_a_failure_on_the_main_host(
    host: str, tmp_path: Path, tiny_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the main host (rank 0) writes the model and its run_summary.json: a clean exit without it
    there is a failure; the other hosts write none and succeed."""
    base = make_tree(tmp_path, current_host=host, hosts=("algo-1", "algo-2"))
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    started: list[int] = []

    def processes_that_exit_0(plan: planning.Plan, _config: object, _lock: object) -> tuple[int, None]:
        started.append(plan.processes)
        return 0, None

    monkeypatch.setattr(entrypoint, "run_distributed", processes_that_exit_0)
    code = entrypoint.main()
    assert started == [2]
    failure = Paths(base).failure_file
    if host == "algo-1":
        assert code == entrypoint.EXIT_FAILED
        assert failure.read_text() == "training failed: it exited 0 but wrote no run_summary.json\n"
    else:
        assert code == entrypoint.EXIT_OK and not failure.exists()
