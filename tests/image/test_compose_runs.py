"""`docker compose` as users run it: smoke training, stop and resume, and the mlflow service's record."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from engine import Compose
from safetensors.torch import load_file

# The smoke recipe with more steps (a multiple of its save_steps, 3), given as a hyperparameter: six steps
# of the tiny model end in about two seconds, before `docker compose stop` could reach a running step.
STEPS = 42
GRACE_S = 120  # docker-compose.yml: stop_grace_period of smoke
PACKAGED_TRAIN = (
    'python -c \'import grpo_rlvr, pathlib; print(pathlib.Path(grpo_rlvr.__file__).parent / "gsm8k_data" / '
    '"train.jsonl")\''
)


def prepare_channels(project: Compose, image: str) -> None:
    """`make data`'s channels, made in the image from its own GSM8K copy, and the run length to train."""
    data = project.base / "opt_ml"
    data.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [project.docker, "run", "--rm", "--network=none", "-v", f"{data}:/opt/ml", "--entrypoint", "sh",
         image, "-c", f'grpo-rlvr prepare --source "$({PACKAGED_TRAIN})" --out /opt/ml/input/data'],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert (data / "input/data/train").is_dir() and (data / "input/data/val").is_dir()
    config = project.smoke_tree / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps({"max_steps": str(STEPS)}))


def mlflow_api(port: int, endpoint: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/api/2.0/mlflow/{endpoint}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def wait_for_mlflow(port: int, timeout_s: int = 900) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            mlflow_api(port, "experiments/search", {"max_results": 1})
            return
        except OSError:
            assert time.monotonic() < deadline, f"the mlflow service did not answer on port {port}"
            time.sleep(1)


@pytest.fixture(scope="module")
def full_run(compose_factory, image: str) -> tuple[Compose, subprocess.CompletedProcess[str]]:
    """One uninterrupted `docker compose up smoke`, logging to the project's own mlflow service."""
    project = compose_factory("full")
    prepare_channels(project, image)
    started = project("up", "-d", "--no-build", "--pull", "never", "mlflow", timeout=300)
    assert started.returncode == 0, started.stderr
    wait_for_mlflow(project.mlflow_port)
    run = project(
        "up", "--no-build", "--pull", "never", "--exit-code-from", "smoke", "smoke",
        extra_env={"MLFLOW_TRACKING_URI": "http://mlflow:5000"}, timeout=2400,
    )  # fmt: skip
    return project, run


def test_compose_up_smoke_writes_the_model_and_run_summary(full_run) -> None:
    project, run = full_run
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert project.exit_code("smoke") == 0
    model = project.smoke_tree / "model"
    summary = json.loads((model / "run_summary.json").read_text())
    assert summary["global_step"] == STEPS
    assert (model / "config.json").is_file()
    assert list(model.glob("*.safetensors")), sorted(p.name for p in model.iterdir())
    assert not (project.smoke_tree / "output" / "failure").exists()


def test_the_mlflow_service_holds_the_run_and_its_rewards(full_run) -> None:
    project, run = full_run
    assert run.returncode == 0, run.stdout[-4000:]
    # `up --exit-code-from` stopped every service when smoke ended; the record is in the mlflow volume.
    assert project("up", "-d", "--no-build", "--pull", "never", "mlflow", timeout=300).returncode == 0
    wait_for_mlflow(project.mlflow_port)
    experiments = mlflow_api(project.mlflow_port, "experiments/search", {"max_results": 100})["experiments"]
    runs = mlflow_api(
        project.mlflow_port,
        "runs/search",
        {"experiment_ids": [e["experiment_id"] for e in experiments], "max_results": 10},
    ).get("runs", [])
    assert len(runs) == 1, runs
    (only,) = runs
    assert only["info"]["status"] == "FINISHED"
    metrics = {m["key"]: m for m in only["data"].get("metrics", [])}
    rewards = sorted(k for k in metrics if k.startswith("reward"))
    assert "reward" in rewards, sorted(metrics)
    history = mlflow_api(
        project.mlflow_port, f"metrics/get-history?run_id={only['info']['run_id']}&metric_key=reward"
    )["metrics"]
    assert sorted(m["step"] for m in history) == list(range(1, STEPS + 1))


def wait_for_steps(project: Compose, service: str, count: int, timeout_s: int = 2400) -> None:
    """Until the service's log shows `count` logged training steps."""
    deadline = time.monotonic() + timeout_s
    while True:
        logs = project("logs", "--no-color", service, timeout=60).stdout
        if logs.count("'loss'") >= count:
            return
        assert "run_summary" not in logs, "training ended before it could be stopped"
        assert time.monotonic() < deadline, logs[-3000:]
        time.sleep(1)


def test_stop_checkpoints_then_up_resumes_to_the_same_weights(compose_factory, image: str, full_run) -> None:
    project = compose_factory("resume")
    prepare_channels(project, image)
    up = ("up", "--no-build", "--pull", "never")
    assert project(*up, "-d", "smoke").returncode == 0
    wait_for_steps(project, "smoke", count=2)

    sent = time.monotonic()
    stopped = project("stop", "smoke", timeout=GRACE_S + 60)
    waited = time.monotonic() - sent
    assert stopped.returncode == 0, stopped.stderr
    assert project.exit_code("smoke") == 143, project("logs", "smoke").stdout[-3000:]
    assert waited < GRACE_S, f"stop took {waited:.0f} s: past the grace period, so it was killed"
    tree = project.smoke_tree
    assert "stopped by SIGTERM" in (tree / "output" / "failure").read_text()
    assert not (tree / "model" / "run_summary.json").exists()
    checkpoints = sorted(tree.glob("checkpoints/checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    stopped_at = int(checkpoints[-1].name.split("-")[1])
    assert 2 <= stopped_at < STEPS

    resumed = project(*up, "--exit-code-from", "smoke", "smoke", timeout=2400)
    assert resumed.returncode == 0, resumed.stdout[-4000:]
    summary = json.loads((tree / "model" / "run_summary.json").read_text())
    assert summary["global_step"] == STEPS
    assert summary["resumed_from"] == f"/opt/ml/checkpoints/checkpoint-{stopped_at}"

    full_project, _ = full_run
    final = Path("checkpoints") / f"checkpoint-{STEPS}" / "adapter_model.safetensors"
    expected, got = load_file(full_project.smoke_tree / final), load_file(tree / final)
    assert expected.keys() == got.keys()
    worst = max((expected[k] - got[k]).abs().max().item() for k in expected)
    print(f"resumed vs uninterrupted adapter: max abs difference {worst:.3g}")
    assert worst <= 1e-6, f"adapter weights differ by up to {worst}"
    # The random tiny model scores 0 on the GSM8K rewards, so neither run moves the adapter; what resuming
    # must keep shows in every step after the stop: the same schedule and the same logged metrics.
    after = [
        {e["step"]: {k: v for k, v in e.items() if k != "step_time"} for e in history if "loss" in e}
        for history in (
            json.loads((p / final.parent / "trainer_state.json").read_text())["log_history"]
            for p in (full_project.smoke_tree, tree)
        )
    ]
    resumed_steps = {step: after[0][step] for step in after[0] if step > stopped_at}
    assert len(resumed_steps) == STEPS - stopped_at
    assert {step: after[1][step] for step in resumed_steps} == resumed_steps
