"""docker-compose.yml: valid Compose, GPU and shared-memory settings, /opt/ml, secrets, a working MLflow."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = Path(__file__).resolve().parents[2] / "shared/schemas/compose-spec.json"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _env(service: dict[str, Any]) -> list[str]:
    env = service.get("environment", [])
    assert isinstance(env, list), "use the list form so a name without a value stays a pass-through"
    return env


def test_valid_against_the_compose_spec(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def test_train_reserves_all_gpus_and_shares_host_ipc(compose: dict[str, Any]) -> None:
    train = compose["services"]["train"]
    (device,) = train["deploy"]["resources"]["reservations"]["devices"]
    assert device == {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}
    assert train["ipc"] == "host"
    assert train["hostname"] == "algo-1"
    assert train["command"] == ["train"]


def test_train_mounts_opt_ml_and_the_hf_cache(compose: dict[str, Any]) -> None:
    volumes = compose["services"]["train"]["volumes"]
    assert "${OPT_ML:-./opt_ml}:/opt/ml" in volumes
    assert "hf-cache:/cache/hf" in volumes
    assert "hf-cache" in compose["volumes"]


def test_stop_grace_period_leaves_time_for_a_checkpoint(compose: dict[str, Any]) -> None:
    for name in ("train", "smoke"):
        value = compose["services"][name]["stop_grace_period"]
        assert value.endswith("s") and int(value[:-1]) >= 120, name


def test_hf_token_is_passed_by_name_only(compose: dict[str, Any]) -> None:
    assert "HF_TOKEN" in _env(compose["services"]["train"])
    for name, service in compose["services"].items():
        assert not [e for e in _env(service) if e.startswith("HF_TOKEN=")], name
        assert "env_file" not in service, name
    assert "hf_" not in (ROOT / "docker-compose.yml").read_text().replace("hf-cache", "")


def test_train_logs_to_the_mlflow_service(compose: dict[str, Any]) -> None:
    train = compose["services"]["train"]
    assert "MLFLOW_TRACKING_URI=http://mlflow:5000" in _env(train)
    assert "mlflow" in train["depends_on"]
    mlflow = compose["services"]["mlflow"]
    assert "mlflow:/mlflow" in mlflow["volumes"] and "mlflow" in compose["volumes"]
    assert mlflow["image"] == train["image"]


def test_smoke_runs_the_same_image_on_cpu(compose: dict[str, Any]) -> None:
    smoke, train = compose["services"]["smoke"], compose["services"]["train"]
    assert smoke["image"] == train["image"]
    assert "deploy" not in smoke
    assert "GRPO_RLVR_RECIPE=smoke-cpu" in _env(smoke)
    assert any(v.endswith(":/opt/ml") for v in smoke["volumes"])
    assert "shm_size" in smoke or smoke.get("ipc") == "host"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(url: str, host: str) -> int:
    request = urllib.request.Request(url, headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def test_mlflow_service_command_serves_the_train_service(compose: dict[str, Any], tmp_path: Path) -> None:
    """Run the service's own command (volume paths moved to tmp): `train` reaches it as `mlflow:5000`."""
    service = compose["services"]["mlflow"]
    assert service["entrypoint"] == ["mlflow"]
    port = _free_port()
    args = [
        a.replace("/mlflow/", f"{tmp_path}/").replace("--port=5000", f"--port={port}")
        for a in service["command"]
    ]
    args = [a.replace("--host=0.0.0.0", "--host=127.0.0.1") for a in args]
    env = {**os.environ, **dict(e.split("=", 1) for e in _env(service))}
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1"
        deadline = time.monotonic() + 90
        while True:
            try:
                status = _status(url, "mlflow:5000")
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "mlflow server did not start"
                time.sleep(0.5)
        assert status == 200
        assert _status(url, "attacker.example:5000") == 403
        assert (tmp_path / "mlflow.db").exists()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
