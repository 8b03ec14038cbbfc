"""A hub id that cannot be used fails in seconds with one line naming it and HF_HUB_OFFLINE, before any
loader retries it; local-looking paths never reach the hub."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from grpo_rlvr import hub, tiny
from grpo_rlvr.hub import HubUnavailable

REFUSING_ENDPOINT = "http://127.0.0.1:9"  # the discard port: connection refused, at once


def test_offline_and_not_cached_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache
    with pytest.raises(HubUnavailable) as caught:
        tiny.resolve_model_path("Qwen/Qwen2.5-0.5B")
    assert str(caught.value).startswith("Qwen/Qwen2.5-0.5B is a model hub id, but HF_HUB_OFFLINE is set")


def test_offline_and_cached_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    snapshot = tmp_path / "models--org--cached" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "models--org--cached" / "refs").mkdir()
    (tmp_path / "models--org--cached" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert tiny.resolve_model_path("org/cached") == "org/cached"


def test_unreachable_hub_names_the_id_and_hf_hub_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "ENDPOINT", REFUSING_ENDPOINT)
    with pytest.raises(HubUnavailable) as caught:
        hub.check_model("Qwen/Qwen2.5-0.5B")
    message = str(caught.value)
    assert message.startswith("Qwen/Qwen2.5-0.5B: the Hugging Face Hub cannot be reached for this model id")
    assert "HF_HUB_OFFLINE=1" in message and "\n" not in message


def test_local_looking_models_never_ask_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_hub(*args: object) -> None:
        raise AssertionError(f"the hub was asked about {args}")

    monkeypatch.setattr(hub, "_ask", no_hub)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    for name in ("./model", str(tmp_path / "missing"), "~/model"):
        assert tiny.resolve_model_path(name) == name


def test_train_with_an_unreachable_hub_model_is_one_error_line_exit_2(tmp_path: Path) -> None:
    """As a user runs it: no retries for a minute, no traceback; nothing written."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "HF_ENDPOINT": REFUSING_ENDPOINT,
        "HF_HOME": str(tmp_path / "hf"),
    }
    out = tmp_path / "run"
    overrides = [f"{key}={out / key}" for key in ("output_dir", "model_dir", "summary_dir")]
    result = subprocess.run(
        [sys.executable, "-m", "grpo_rlvr.cli", "train", "--recipe", "smoke-cpu",
         "model_name_or_path=Qwen/Qwen2.5-0.5B", *overrides],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "Qwen/Qwen2.5-0.5B" in errors[0] and "HF_HUB_OFFLINE" in errors[0]
    assert not (out / "model_dir").exists()
