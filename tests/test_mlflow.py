"""A CPU smoke run through the real launcher logs to a real MLflow server on loopback: the run, its
per-step metrics (reward means, loss) and its params, with no secret from the environment among them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bad_inputs import SMOKE_HYPERPARAMETERS, make_tree
from test_integration import run_launcher
from test_launch import _free_port

from grpo_rlvr import checkpoints
from grpo_rlvr.config.loading import find_recipe, read_recipe
from grpo_rlvr.sagemaker import Paths

EXPERIMENT = "grpo-rlvr-smoke-test"
SECRET = "hf_fakeSecretValue1234567890"
STEPS = 3
START_TIMEOUT_S = 60
SMOKE_REWARDS = ("gsm8k_format", "gsm8k_correctness")  # recipes/smoke-cpu.yaml's


def _api(uri: str, endpoint: str, query: dict[str, str] | None = None, body: dict | None = None) -> Any:
    """One MLflow REST call (GET, or POST with a JSON body), answered as JSON."""
    url = f"{uri}/api/2.0/mlflow/{endpoint}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """`mlflow server` on a free loopback port with a SQLite store in tmp_path; stopped with its workers."""
    port = _free_port()
    command = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--artifacts-destination", str(tmp_path / "artifacts"),
        "--allowed-hosts", f"127.0.0.1:{port}", "--workers", "1",
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no idle job-runner processes
    log = (tmp_path / "mlflow.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                _api(uri, "experiments/search", {"max_results": "1"})
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, (tmp_path / "mlflow.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "mlflow server did not answer in time"
                time.sleep(0.5)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # uvicorn's worker is in the same new session
        server.wait(timeout=30)
        log.close()


def _history(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    metrics = _api(uri, "metrics/get-history", {"run_id": run_id, "metric_key": key}).get("metrics", [])
    return sorted((m["step"], m["value"]) for m in metrics)


def test_smoke_run_logs_metrics_and_params_to_a_real_mlflow_server(
    tmp_path: Path, tiny_model: str, mlflow_server: str
) -> None:
    # The smoke recipe leaves `report_to` unset, like the GPU recipes: MLflow joins from
    # MLFLOW_TRACKING_URI alone, as in `docker compose up train`.
    assert "report_to" not in read_recipe(find_recipe("smoke-cpu"))
    hyperparameters = {
        **SMOKE_HYPERPARAMETERS,
        "max_steps": str(STEPS),
        "hub_token": SECRET,
    }
    base = make_tree(tmp_path / "opt_ml", hyperparameters)
    env = {"MLFLOW_TRACKING_URI": mlflow_server, "MLFLOW_EXPERIMENT_NAME": EXPERIMENT, "HF_TOKEN": SECRET}

    code, output = run_launcher(base, env)

    assert code == 0, output[-3000:]
    assert SECRET not in output
    assert output.count("'loss'") == STEPS  # the trainer logged every step
    found = _api(
        mlflow_server, "experiments/search", body={"filter": f"name = '{EXPERIMENT}'", "max_results": 1}
    )
    (experiment,) = found.get("experiments", [None])
    assert experiment, "nothing reached MLflow: the run did not report to it"
    runs = _api(mlflow_server, "runs/search", body={"experiment_ids": [experiment["experiment_id"]]})
    (run,) = runs["runs"]
    assert run["info"]["status"] == "FINISHED"
    run_id = run["info"]["run_id"]
    steps = list(range(1, STEPS + 1))
    rewards = {name: _history(mlflow_server, run_id, f"rewards/{name}/mean") for name in SMOKE_REWARDS}
    for name, series in rewards.items():
        assert [step for step, _ in series] == steps, name
        assert all(0.0 <= value <= 1.0 for _, value in series), name
    assert [step for step, _ in _history(mlflow_server, run_id, "loss")] == steps
    assert [step for step, _ in _history(mlflow_server, run_id, "completions/mean_length")] == steps

    summary = json.loads((Paths(base).model_dir / checkpoints.SUMMARY_NAME).read_text())
    assert summary["rewards"] == {
        name: {"first": series[0][1], "final": series[-1][1]} for name, series in rewards.items()
    }  # the numbers MLflow holds are the run's own

    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params["max_steps"] == str(STEPS) and params["learning_rate"] == "0.0001"
    assert params["hub_token"] == "***"  # secret-named settings are masked at any depth (redact.py)
    tags = {t["key"]: t["value"] for t in run["data"].get("tags", [])}
    assert not [key for key, value in {**params, **tags}.items() if SECRET in value]
