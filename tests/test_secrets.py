"""Credentials given through the environment never reach the job's log or any file under /opt/ml."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bad_inputs import SMOKE_HYPERPARAMETERS, make_tree

from grpo_rlvr.launch import entrypoint, logs
from grpo_rlvr.redact import Redactor
from grpo_rlvr.sagemaker import Paths

SECRETS = {
    "HF_TOKEN": "hf_PlantedTokenValue0123456789",
    "HUGGING_FACE_HUB_TOKEN": "hf_OtherPlantedToken987654321",
    "AWS_ACCESS_KEY_ID": "AKIAPLANTEDKEY123456",
    "AWS_SECRET_ACCESS_KEY": "planted/Secret+Access/Key0123456789abcdef",
    "AWS_SESSION_TOKEN": "FwoGZXIvYXdzEPlantedSessionToken//////////",
}


def _leaks(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [name for name, value in SECRETS.items() if value.encode() in data]


def _leaks_in_files(base: Path) -> dict[str, list[str]]:
    """Secrets in any file the run wrote (everything but SageMaker's own input/)."""
    written = [p for p in base.rglob("*") if p.is_file() and p.relative_to(base).parts[0] != "input"]
    assert written  # at least the failure file or the model
    found = {str(p.relative_to(base)): _leaks(p.read_bytes()) for p in written}
    return {path: names for path, names in found.items() if names}


def test_failure_path_through_the_console_command(tmp_path: Path, tiny_model: str) -> None:
    # The token also sits in a bad hyperparameter value, so the error message itself would carry it.
    base = make_tree(tmp_path, {"recipe": "smoke-cpu", "learning_rate": SECRETS["HF_TOKEN"]})
    result = subprocess.run(
        [sys.executable, "-m", "grpo_rlvr.cli", "launch"],
        env={**os.environ, **SECRETS, "SAGEMAKER_BASE_DIR": str(base)},
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 2
    failure = Paths(base).failure_file.read_text()
    assert failure.startswith("learning_rate:") and "'***'" in failure
    assert _leaks(result.stdout + result.stderr) == []
    assert _leaks_in_files(base) == {}


def test_success_path_in_process(
    tmp_path: Path, tiny_model: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A docker-compose-style run (channels only, no config JSONs, recipe from the environment)."""
    base = make_tree(tmp_path)
    for name in ("hyperparameters.json", "resourceconfig.json", "inputdataconfig.json"):
        (base / "input" / "config" / name).unlink()
    for name, value in {**SECRETS, "SAGEMAKER_BASE_DIR": str(base), "GRPO_RLVR_RECIPE": "smoke-cpu"}.items():
        monkeypatch.setenv(name, value)
    assert entrypoint.main(["max_steps=2", "num_shots=0"]) == 0
    out, err = capfd.readouterr()
    assert "training from step 0" in err  # training's own log went through the same redacted stream
    assert _leaks(out + err) == []
    assert _leaks_in_files(base) == {}
    summary = json.loads((Paths(base).model_dir / "run_summary.json").read_text())
    assert summary["global_step"] == 2
    assert not Paths(base).failure_file.exists()


def test_output_of_children_and_c_level_writes_is_masked(capfd: pytest.CaptureFixture[str]) -> None:
    token = SECRETS["HF_TOKEN"]
    with logs.RedactedOutput(Redactor([token])):
        subprocess.run([sys.executable, "-c", f"print('child sees {token}')"], check=True)
        os.write(2, f"split {token[:5]}".encode())  # one secret written in two pieces
        os.write(2, f"{token[5:]} done\n".encode())
    out, err = capfd.readouterr()
    assert out == "child sees ***\n"
    assert err == "split *** done\n"


def test_settings_holding_secrets_reach_no_file_checkpoints_included(
    tmp_path: Path, tiny_model: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A token given as a setting, and a secret's value pasted into another, are masked in
    every checkpoint's pickled arguments, the trainer state, the summaries and the log."""
    import torch

    hyperparameters = {
        **SMOKE_HYPERPARAMETERS,
        "save_steps": "1",
        "num_shots": "0",
        "hub_token": SECRETS["HF_TOKEN"],
        "run_name": f"run-{SECRETS['AWS_SECRET_ACCESS_KEY']}",
    }
    base = make_tree(tmp_path, hyperparameters)
    for name, value in {**SECRETS, "SAGEMAKER_BASE_DIR": str(base)}.items():
        monkeypatch.setenv(name, value)
    assert entrypoint.main() == 0
    out, err = capfd.readouterr()
    assert _leaks(out + err) == []
    checkpoints = Paths(base).checkpoint_dir
    saved = sorted(checkpoints.glob("checkpoint-*/training_args.bin"))
    assert [p.parent.name for p in saved] == ["checkpoint-1", "checkpoint-2"]
    assert _leaks_in_files(base) == {}
    args = torch.load(saved[-1], weights_only=False)
    assert (args.hub_token, args.run_name, args.max_steps) == (None, "run-***", 2)


def test_a_secret_split_across_two_reads_at_any_byte_is_masked() -> None:
    """Each read of the pump gets exactly one of two pieces (a datagram each): the secret is cut after
    every one of its bytes in turn, the first byte alone included."""
    import socket

    token = SECRETS["HF_TOKEN"]
    line = f"token={token} end\n".encode()
    output = logs.RedactedOutput(Redactor([token]))
    for cut in range(len("token="), len("token=") + len(token) + 1):
        reader, writer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        writer.sendall(line[:cut])
        writer.sendall(line[cut:])
        writer.close()
        out_read, out_write = os.pipe()
        output._pump(os.dup(reader.fileno()), out_write, keep_tail=False)
        reader.close()
        os.close(out_write)
        with os.fdopen(out_read, "rb") as written:
            assert written.read() == b"token=*** end\n", f"cut after {cut - len('token=')} byte(s)"


# --- secrets inside settings: at any depth, and never on a command line -------------------------------

SETTING_SECRET = "planted-setting-secret-0123456789"  # in no environment variable: only its place tells


def test_secrets_at_any_depth_of_a_value_are_masked() -> None:
    url_secret = "https://user:url-password-123@mlflow.example.com/api"
    value = {
        "hub_token": "anything-long",
        "hub_token_empty": "",  # nothing to hide
        "model_init_kwargs": {"token": SETTING_SECRET, "revision": "main"},
        "reward_kwargs": {"judge": {"endpoints": [{"api_key": SETTING_SECRET}, url_secret]}},
        "tags": ("x", "hf_" + "A" * 34),
        "n": 3,
    }
    masked = Redactor([]).value(value)
    assert masked == {
        "hub_token": "***",
        "hub_token_empty": "",
        "model_init_kwargs": {"token": "***", "revision": "main"},
        "reward_kwargs": {"judge": {"endpoints": [{"api_key": "***"}, "https://***@mlflow.example.com/api"]}},
        "tags": ["x", "***"],
        "n": 3,
    }
    assert SETTING_SECRET not in json.dumps(masked) and "url-password" not in json.dumps(masked)
