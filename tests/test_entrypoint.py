"""docker/entrypoint.sh, the very file the image runs, against fake /opt/ml trees (SAGEMAKER_BASE_DIR)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
VENV_BIN = Path(sys.executable).parent
FAKE_TOKEN = "hf_" + "t" * 34


def _run(args: list[str], env: dict[str, str], timeout: int = 60) -> subprocess.CompletedProcess[str]:
    # `sh` (dash here) rather than bash: the entrypoint must stay POSIX.
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def recorder(tmp_path: Path) -> tuple[Path, Path]:
    """A stand-in console script that records its pid and arguments: only the dispatch is under test."""
    log = tmp_path / "calls.jsonl"
    script = tmp_path / "grpo-rlvr"
    script.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f'open({str(log)!r}, "a").write(json.dumps({{"pid": os.getpid(), "argv": sys.argv[1:]}}) + "\\n")\n'
    )
    script.chmod(0o755)
    return script, log


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], ["launch"]),
        (["train"], ["launch"]),
        (["train", "--max-steps", "3"], ["launch", "--max-steps", "3"]),
        (["evaluate", "--model", "/opt/ml/model"], ["evaluate", "--model", "/opt/ml/model"]),
        (["env"], ["env"]),
        (["launch", "--dry-run"], ["launch", "--dry-run"]),
    ],
)
def test_dispatch_execs_the_console_script(
    recorder: tuple[Path, Path], tmp_path: Path, args: list[str], expected: list[str]
) -> None:
    script, log = recorder
    env = {"PATH": os.environ["PATH"], "GRPO_RLVR_BIN": str(script), "SAGEMAKER_BASE_DIR": str(tmp_path)}
    proc = subprocess.Popen(["sh", str(ENTRYPOINT), *args], env=env)
    assert proc.wait(timeout=60) == 0
    (call,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert call["argv"] == expected
    assert call["pid"] == proc.pid, "exec, so SIGTERM from docker/SageMaker reaches the launcher itself"


def test_other_commands_run_as_given(recorder: tuple[Path, Path], tmp_path: Path) -> None:
    script, log = recorder
    env = {"PATH": os.environ["PATH"], "GRPO_RLVR_BIN": str(script)}
    result = _run(["printf", "%s", "hello"], env)
    assert (result.returncode, result.stdout) == (0, "hello")
    assert not log.exists()


class _FakeSecretsManager(BaseHTTPRequestHandler):
    """Answers GetSecretValue like the service's JSON protocol; a stand-in so no AWS account is needed."""

    secrets: ClassVar[dict[str, str]] = {}
    requests: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append(body)
        secret = self.secrets.get(body["SecretId"])
        status, payload = (
            (200, {"Name": body["SecretId"], "SecretString": secret + "\n"})
            if secret
            else (400, {"__type": "ResourceNotFoundException", "message": "Secrets Manager can't find it"})
        )
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def secrets_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    _FakeSecretsManager.secrets = {"grpo-rlvr/hf-token": FAKE_TOKEN}
    _FakeSecretsManager.requests = []
    server = HTTPServer(("127.0.0.1", 0), _FakeSecretsManager)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {
        "PATH": os.environ["PATH"],
        "GRPO_RLVR_PYTHON": sys.executable,
        "SAGEMAKER_BASE_DIR": str(tmp_path / "opt_ml"),
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": f"http://127.0.0.1:{server.server_port}",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    server.shutdown()
    thread.join()


SHOW_TOKEN = ["sh", "-c", 'printf %s "$HF_TOKEN" > "$TOKEN_OUT"']


def test_hf_token_is_read_from_secrets_manager(secrets_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "token"
    env = {**secrets_env, "HF_TOKEN_SECRET_ID": "grpo-rlvr/hf-token", "TOKEN_OUT": str(out)}
    result = _run(SHOW_TOKEN, env)
    assert result.returncode == 0, result.stderr
    assert out.read_text() == FAKE_TOKEN
    assert FAKE_TOKEN not in result.stdout + result.stderr


def test_a_given_hf_token_wins_over_the_secret(secrets_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "token"
    env = {
        **secrets_env,
        "HF_TOKEN_SECRET_ID": "grpo-rlvr/hf-token",
        "HF_TOKEN": "hf_local",
        "TOKEN_OUT": str(out),
    }
    assert _run(SHOW_TOKEN, env).returncode == 0
    assert out.read_text() == "hf_local"
    assert _FakeSecretsManager.requests == []


def test_unreadable_secret_fails_with_a_failure_file(secrets_env: dict[str, str], tmp_path: Path) -> None:
    env = {**secrets_env, "HF_TOKEN_SECRET_ID": "no/such/secret", "TOKEN_OUT": str(tmp_path / "token")}
    result = _run(SHOW_TOKEN, env)
    assert result.returncode == 1
    failure = Path(secrets_env["SAGEMAKER_BASE_DIR"]) / "output" / "failure"
    assert "no/such/secret" in failure.read_text()
    assert not (tmp_path / "token").exists(), "the command must not run without its token"


def _local_opt_ml(opt_ml: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "local_opt_ml.py"), "--opt-ml", str(opt_ml), *args],
        capture_output=True,
        text=True,
        timeout=300,  # it validates the recipe as train does: torch and TRL load
    )


def test_local_opt_ml_writes_what_sagemaker_would(tmp_path: Path) -> None:
    for channel in ("train", "val"):
        (tmp_path / "input" / "data" / channel).mkdir(parents=True)
    result = _local_opt_ml(
        tmp_path, "--recipe", "smoke-cpu", "--hp", "max_steps=3", "--hp", 'rewards=["gsm8k_format"]'
    )
    assert result.returncode == 0, result.stderr
    config = tmp_path / "input" / "config"
    hyperparameters = json.loads((config / "hyperparameters.json").read_text())
    assert hyperparameters == {"recipe": "smoke-cpu", "max_steps": "3", "rewards": '["gsm8k_format"]'}
    resources = json.loads((config / "resourceconfig.json").read_text())
    assert resources["current_host"] == "algo-1" and resources["hosts"] == ["algo-1"]
    assert set(json.loads((config / "inputdataconfig.json").read_text())) == {"train", "val"}
    for sub in ("model", "checkpoints", "output/data"):
        assert (tmp_path / sub).is_dir()


def test_local_opt_ml_refuses_a_tree_without_train(tmp_path: Path) -> None:
    result = _local_opt_ml(tmp_path)
    assert result.returncode == 2
    assert "train" in result.stderr
    assert not (tmp_path / "input" / "config").exists()


def _launcher_env(opt_ml: Path) -> dict[str, str]:
    return {
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
        "SAGEMAKER_BASE_DIR": str(opt_ml),
        "HF_HUB_OFFLINE": "1",
        "HOME": str(opt_ml.parent),
    }


@pytest.mark.parametrize("args", [[], ["train"]], ids=["no-argument", "train"])
def test_launcher_fails_cleanly_without_the_train_channel(tmp_path: Path, args: list[str]) -> None:
    """The real `grpo-rlvr launch`: SageMaker declared a train channel but nothing arrived."""
    opt_ml = tmp_path / "opt_ml"
    (opt_ml / "input" / "data" / "train").mkdir(parents=True)
    assert _local_opt_ml(opt_ml, "--recipe", "smoke-cpu").returncode == 0
    (opt_ml / "input" / "data" / "train").rmdir()
    result = _run(args, _launcher_env(opt_ml), timeout=300)
    assert result.returncode != 0
    failure = opt_ml / "output" / "failure"
    assert failure.is_file(), result.stderr
    assert "train" in failure.read_text()
    assert not any((opt_ml / "model").iterdir()), "a model in /opt/ml/model would mean the run finished"


def test_env_subcommand_passes_through(tmp_path: Path) -> None:
    result = _run(["env"], _launcher_env(tmp_path), timeout=300)
    assert result.returncode == 0, result.stderr
    assert "torch==2.13.0" in result.stdout
