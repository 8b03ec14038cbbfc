"""Checkpoint markers by content: sizes and SHA-256 of every file and the settings that shape the weights;
a damaged checkpoint is skipped by name, a foreign one refused, a finished run recognised."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from grpo_rlvr import checkpoints

SETTINGS = checkpoints.weight_settings(
    SimpleNamespace(
        model_name_or_path="builtin:tiny-qwen2",
        use_peft=True,
        lora_r=8,
        lora_alpha=16,
        lora_target_modules=["v_proj", "q_proj"],
    )
)


def _checkpoint(output_dir: Path, step: int, settings: dict = SETTINGS) -> Path:
    folder = output_dir / f"checkpoint-{step}"
    (folder / "sub").mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(bytes(range(256)) * 4)
    (folder / "sub" / "optimizer.pt").write_bytes(b"state" * 100)
    checkpoints.mark_complete(folder, step, settings)
    return folder


def test_the_marker_records_sizes_hashes_and_weight_settings(tmp_path: Path) -> None:
    folder = _checkpoint(tmp_path, 3)
    marker = json.loads((folder / checkpoints.CHECKPOINT_MARKER).read_text())
    assert marker["step"] == 3
    assert marker["files"]["adapter_model.safetensors"] == {
        "size": 1024,
        "sha256": "785b0751fc2c53dc14a4ce3d800e69ef9ce1009eb327ccf458afe09c242c26c9",
    }
    assert set(marker["files"]) == {"adapter_model.safetensors", "sub/optimizer.pt"}
    assert marker["settings"]["lora_r"] == 8
    assert marker["settings"]["lora_target_modules"] == ["q_proj", "v_proj"]  # order does not shape weights
    assert set(marker["settings"]) == set(checkpoints.WEIGHT_SETTINGS)


def test_a_checkpoint_altered_with_its_sizes_kept_is_skipped_by_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = _checkpoint(tmp_path, 1), _checkpoint(tmp_path, 2)
    weights = second / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[100] ^= 0xFF  # one flipped byte: same size, other weights
    weights.write_bytes(bytes(data))
    assert checkpoints.is_complete(second)  # the save finished: sizes alone cannot tell
    assert checkpoints.damage(second) == (
        "adapter_model.safetensors does not hold the content its marker records (SHA-256 differs)"
    )
    assert checkpoints.damage(first) is None
    with caplog.at_level(logging.WARNING, logger="grpo_rlvr.checkpoints"):
        assert checkpoints.resume_point(tmp_path, SETTINGS) == first
    assert f"skipping checkpoint {second}: adapter_model.safetensors does not hold" in caplog.text


def test_a_checkpoint_missing_a_file_or_its_marker_is_skipped(tmp_path: Path) -> None:
    first, second, third = (_checkpoint(tmp_path, step) for step in (1, 2, 3))
    (third / "sub" / "optimizer.pt").unlink()
    (second / checkpoints.CHECKPOINT_MARKER).unlink()
    assert checkpoints.damage(third).startswith("incomplete")
    assert checkpoints.resume_point(tmp_path, SETTINGS) == first
    assert checkpoints.resume_point(tmp_path / "none", SETTINGS) is None


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"lora_r": 16}, "lora_r: 16 there, 8 here"),
        (
            {"model_name_or_path": "org/other"},
            "model_name_or_path: 'org/other' there, 'builtin:tiny-qwen2' here",
        ),
        (
            {"lora_target_modules": ["q_proj"]},
            "lora_target_modules: ['q_proj'] there, ['q_proj', 'v_proj'] here",
        ),
        ({"load_in_4bit": True}, "load_in_4bit: True there, None here"),
    ],
)
def test_a_checkpoint_of_other_weight_settings_is_refused_naming_what_differs(
    tmp_path: Path, change: dict, named: str
) -> None:
    checkpoint = _checkpoint(tmp_path, 4, {**SETTINGS, **change})
    with pytest.raises(checkpoints.ForeignCheckpoint, match="other weight settings") as refused:
        checkpoints.resume_point(tmp_path, SETTINGS)
    assert named in str(refused.value) and str(checkpoint) in str(refused.value)
    assert str(refused.value).count(" there, ") == 1  # only what differs


def test_a_marker_of_the_older_form_listing_sizes_only_does_not_count(tmp_path: Path) -> None:
    folder = _checkpoint(tmp_path, 2)
    (folder / checkpoints.CHECKPOINT_MARKER).write_text(
        json.dumps({"step": 2, "files": {"sub/optimizer.pt": 500}})
    )
    assert not checkpoints.is_complete(folder)
    assert checkpoints.resume_point(tmp_path, SETTINGS) is None


def test_a_finished_run_is_recognised_only_with_the_same_settings(tmp_path: Path) -> None:
    config = {"training": {"max_steps": 2, "hub_token": "***"}, "run": {"eval_at_end": False}}
    summary = {"status": "completed", "global_step": 2, "config": config}
    assert checkpoints.finished_run(tmp_path, config) is None  # no summary
    (tmp_path / checkpoints.SUMMARY_NAME).write_text(json.dumps(summary))
    assert checkpoints.finished_run(tmp_path, config) == summary
    assert (
        checkpoints.finished_run(tmp_path, {**config, "training": {"max_steps": 3, "hub_token": "***"}})
        is None
    )
    evaluated = {**config, "run": {"eval_at_end": True}}
    (tmp_path / checkpoints.SUMMARY_NAME).write_text(json.dumps({**summary, "config": evaluated}))
    assert checkpoints.finished_run(tmp_path, evaluated) is None  # its evaluation is still to do
    (tmp_path / checkpoints.SUMMARY_NAME).write_text("{not json")
    assert checkpoints.finished_run(tmp_path, config) is None
