"""What guards a tree's results around the launcher: one run per /opt/ml, a finished run stays finished,
a foreign checkpoint is refused before the model loads, and a full disk keeps the failure's reason."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bad_inputs import SMOKE_HYPERPARAMETERS, make_tree

from grpo_rlvr import checkpoints, runlock
from grpo_rlvr.launch import entrypoint, planning
from grpo_rlvr.redact import Redactor
from grpo_rlvr.sagemaker import RESERVE_NAME, Paths

HOLD_LOCK = (
    "import sys, time; from pathlib import Path; from grpo_rlvr.runlock import RunLock\n"
    "with RunLock(Path(sys.argv[1])):\n"
    "    print('locked', flush=True); time.sleep(600)\n"
)


def _holder(folder: Path) -> subprocess.Popen[str]:
    """Another process holding the run lock on `folder`, as a running launch does."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    return holder


def _contents(base: Path) -> dict[str, str]:
    """SHA-256 of every file the runs wrote (all but input/)."""
    return {
        str(p.relative_to(base)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(base.rglob("*"))
        if p.is_file() and p.relative_to(base).parts[0] != "input"
    }


def test_a_second_launch_on_a_running_tree_is_refused_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    base = make_tree(tmp_path)
    paths = Paths(base)
    paths.failure_file.parent.mkdir(parents=True)
    paths.failure_file.write_text("the first run's reason\n")  # what the running launch left (or will)
    paths.model_dir.mkdir()
    (paths.model_dir / checkpoints.SUMMARY_NAME).write_text('{"status": "completed"}')
    holder = _holder(paths.checkpoint_dir)
    before = _contents(base)
    try:
        monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
        assert entrypoint.main() == 2
        _, err = capfd.readouterr()
        assert f"another run is already training into {paths.checkpoint_dir}" in err
        assert _contents(base) == before  # the failure file and the model are the first run's
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_a_killed_process_never_blocks(tmp_path: Path) -> None:
    holder = _holder(tmp_path)
    with pytest.raises(runlock.AlreadyRunning):
        runlock.RunLock(tmp_path).__enter__()
    holder.kill()  # SIGKILL: no clean-up of any kind ran
    holder.wait()
    assert (tmp_path / runlock.LOCK_NAME).exists()  # the file stays; the lock went with the process
    with runlock.RunLock(tmp_path):
        pass


def test_a_finished_run_relaunched_with_the_same_settings_does_nothing(
    tmp_path: Path, tiny_model: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A SageMaker retry or a reused folder: nothing is trained or rewritten; other settings train on."""
    hyperparameters = {**SMOKE_HYPERPARAMETERS, "num_shots": "0", "save_steps": "1"}
    base = make_tree(tmp_path, hyperparameters)
    paths = Paths(base)
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    assert entrypoint.main() == 0
    finished = _contents(base)
    capfd.readouterr()

    assert entrypoint.main() == 0
    _, err = capfd.readouterr()
    assert "this run already finished (step 2) with the same settings" in err
    assert "training from" not in err
    assert _contents(base) == finished  # model, summary and checkpoints untouched

    assert entrypoint.main(["max_steps=3"]) == 0  # other settings: it resumes and trains on
    summary = json.loads((paths.model_dir / checkpoints.SUMMARY_NAME).read_text())
    assert summary["global_step"] == 3
    assert summary["resumed_from"] == str(paths.checkpoint_dir / "checkpoint-2")


def test_a_foreign_checkpoint_is_refused_before_the_model_loads(
    tmp_path: Path, tiny_model: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    base = make_tree(tmp_path)
    paths = Paths(base)
    run_config = planning.make_plan(paths, [], Redactor([]))[1]
    settings = {**checkpoints.weight_settings(run_config.model), "lora_r": 64}
    foreign = paths.checkpoint_dir / "checkpoint-7"
    foreign.mkdir(parents=True)
    (foreign / "adapter_model.safetensors").write_bytes(b"weights of another recipe")
    checkpoints.mark_complete(foreign, 7, settings)
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    assert entrypoint.main() == 2
    _, err = capfd.readouterr()
    failure = paths.failure_file.read_text()
    assert (
        f"checkpoint {foreign} was written by a run with other weight settings (lora_r: 64 there, 8 here)"
        in (failure)
    )
    assert "attention:" not in err and "training from" not in err  # no model was loaded
    assert foreign.is_dir()  # refused, never removed


def test_a_full_disk_keeps_the_reason_and_the_exit_code(tmp_path: Path, tiny_model: str) -> None:
    """The tree on a small tmpfs in a private mount namespace, filled to the last page as soon as the
    launch has started: the first checkpoint cannot be written, and neither could a new failure file."""
    source = make_tree(tmp_path / "source", {**SMOKE_HYPERPARAMETERS, "num_shots": "0", "save_steps": "1"})
    base = tmp_path / "opt_ml"
    base.mkdir()
    # Mount, copy the tree in, launch, fill the disk once the launch holds its room for the reason;
    # then read the failure file inside the namespace, before the tmpfs goes away with it.
    script = (
        'mount -t tmpfs -o size=1m tmpfs "$0" && cp -a "$1"/. "$0"/ || exit 99; '
        '"$2" -m grpo_rlvr.cli launch >&2 & launched=$!; '
        f'while [ ! -e "$0"/output/{RESERVE_NAME} ] && kill -0 $launched; do sleep 0.05; done; '
        'dd if=/dev/zero of="$0"/filler bs=4k 2>/dev/null; '
        'wait $launched; code=$?; cat "$0"/output/failure; ls -a "$0"/output; exit $code'
    )
    unshare = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-r", "-m"]
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base)}
    result = subprocess.run(
        [*unshare, "sh", "-c", script, str(base), str(source), sys.executable],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    failure = result.stdout.splitlines()[0]
    assert failure.startswith(f"the disk is full (0 MiB free on the volume of {base / 'checkpoints'})"), (
        result.stdout + result.stderr[-3000:]
    )
    assert "training failed:" in failure
    logged = result.stderr.partition("grpo-rlvr launch ERROR failure: the disk is full")
    assert logged[1] and "Traceback" not in logged[2]  # the failure handler itself held
    assert RESERVE_NAME not in result.stdout  # the room kept for the reason is given back
