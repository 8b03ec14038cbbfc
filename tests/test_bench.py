"""The benchmark helpers measure: each runs in its smallest configuration and returns numbers under the
keys `make bench` and bench/gpu.py read. No timing is asserted (this machine is shared)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import gpu  # noqa: E402
from measure import on_one_core  # noqa: E402
from overhead import bench_overhead  # noqa: E402
from prompts import bench_prompts  # noqa: E402
from rewards import bench_gsm8k_rewards  # noqa: E402
from rewards_code import bench_code_exec, bench_code_exec_scaling  # noqa: E402
from startup import (  # noqa: E402
    FLOORS,
    config_error_commands,
    startup_commands,
    time_to_exit,
    time_to_first_step,
    time_to_output,
)

TINY_RUN = {"per_device_train_batch_size": 4, "max_completion_length": 4, "max_train_samples": 8}


@pytest.fixture
def one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As `make bench` runs: one torch thread here and in child processes (2 crawl on shared cores)."""
    import torch

    threads = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _positive(values: dict, *keys: str) -> None:
    for key in keys:
        assert values[key] > 0, key


def test_rewards_on_one_core_and_code_exec() -> None:
    found = on_one_core(bench_gsm8k_rewards, 512)
    assert found["completions"] == 512
    _positive(found, "seconds", "completions_per_s")
    assert bench_code_exec(2, 2) > 0
    rates = bench_code_exec_scaling(2, (1, 2))
    assert set(rates) == {"1", "2"} and min(rates.values()) > 0


def test_prompts(tiny_model: str) -> None:
    found = bench_prompts(shots=2, limit=20)
    assert (found["rows"], found["shots"]) == (20, 2)
    _positive(found, "load_s", "build_s", "tokenize_s", "mean_prompt_tokens", "prompt_tokens_per_s")


@pytest.mark.usefixtures("one_thread")
def test_overhead_times_both_arms(tiny_model: str) -> None:
    found = bench_overhead(steps=2, rounds=1, order="AB", overrides=TINY_RUN)
    for arm in ("ours", "bare"):
        assert (found[arm]["runs"], found[arm]["steps_timed"]) == (1, 1)
        _positive(found[arm], "steps_per_s", "median_step_s", "outside_loop_s")
    _positive(found, "ratio_ours_over_bare", "ratio_of_medians")
    assert len(found["ratio_per_round"]) == 1
    _positive(found["callbacks"], "on_step_end_s", "on_save_s", "per_step_s")  # a save at the last step


@pytest.mark.usefixtures("one_thread")
def test_launcher_start_up_to_the_first_step(tiny_model: str, tmp_path: Path) -> None:
    """The launcher alone (the bare script runs the bare arm tested above); one floor."""
    commands = startup_commands(tmp_path / "opt_ml", rows=8, steps=1)
    assert set(commands) == {"launcher", "bare_trl"}
    times = time_to_first_step(*commands["launcher"])
    assert 0 < times["first_step_start_s"] < times["first_step_end_s"] <= times["exit_s"]
    assert time_to_output([sys.executable, "-c", FLOORS["python"]], commands["launcher"][1]) > 0


def test_time_to_a_config_error_times_both_doors(tmp_path: Path) -> None:
    commands = config_error_commands(tmp_path / "errors")
    assert set(commands) == {"train", "launch"}
    for command, env in commands.values():
        assert time_to_exit(command, env, 2) > 0
    with pytest.raises(RuntimeError, match="exited 2, not 0"):
        time_to_exit(*commands["train"], 0)


def test_gpu_bench_help_and_dry_run_need_no_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        gpu.main(["--help"])
    assert exit_info.value.code == 0
    capsys.readouterr()

    assert gpu.main(["--dry-run", "--steps", "3"]) == 0
    plans = json.loads(capsys.readouterr().out)
    runs = {(recipe, mode) for recipe in gpu.RECIPES.values() for mode in gpu.MODES}
    assert {(p["recipe"], p["mode"]) for p in plans} == runs
    # QLoRA with vLLM generation is refused before load: the row says so and why, and is not measured.
    skipped = [p for p in plans if "skipped" in p]
    assert [(p["recipe"], p["mode"]) for p in skipped] == [(gpu.RECIPES["b"], "qlora")]
    assert "load_in_4bit" in skipped[0]["skipped"] and "use_vllm" in skipped[0]["skipped"]
    for p in (p for p in plans if "skipped" not in p):
        settings = p["settings"]
        assert (settings["use_peft"], settings["load_in_4bit"]) == tuple(gpu.MODES[p["mode"]].values())
        assert settings["max_completion_length"] == 256  # the default: equal length for both recipes
        key = "min_tokens" if settings["use_vllm"] else "min_new_tokens"
        assert settings["generation_kwargs"][key] == 256  # random weights may not stop early
        assert settings["mask_truncated_completions"] is False  # every forced token is trained on
        assert p["completions_per_step"] > 0
    assert {p["settings"]["use_vllm"] for p in plans if "skipped" not in p} == {False, True}  # (a), (b)


def test_gpu_bench_refuses_a_row_that_masks_the_tokens_it_forces(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        gpu.main(["--dry-run", "--steps", "3", "--modes", "lora", "--set", "mask_truncated_completions=true"])
    assert exit_info.value.code == 2
    assert "mask_truncated_completions: true would leave every one out of the loss" in capsys.readouterr().err


def test_gpu_tokenizer_decodes_every_model_id(tiny_model: str) -> None:
    from transformers import AutoTokenizer

    from grpo_rlvr.data import build_prompt

    tokenizer = gpu.build_tokenizer()
    assert len(tokenizer) == gpu.QWEN2_5_0_5B["vocab_size"]
    assert tokenizer.decode([len(tokenizer) - 1])  # a sampled filler id decodes to text
    prompt = build_prompt("How many apples are 3 + 4?", 8)
    assert tokenizer(prompt).input_ids == AutoTokenizer.from_pretrained(tiny_model)(prompt).input_ids


def test_each_section_is_saved_as_it_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bench stopped in its second section still leaves the first one's numbers, marked incomplete."""
    import cpu

    def stopped(*_: object) -> float:
        raise KeyboardInterrupt

    monkeypatch.setattr(cpu, "bench_prompts", lambda shots: bench_prompts(shots=shots, limit=20))
    monkeypatch.setattr(cpu, "bench_code_exec_scaling", stopped)
    out = tmp_path / "results.json"
    with pytest.raises(KeyboardInterrupt):
        cpu.main(["--sections", "prompts,rewards", "--reward-completions", "256", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["complete"] is False and "rewards" not in saved
    assert saved["prompts"]["rows"] == 20
    printed = capsys.readouterr().out
    assert "prompts (1 of 2 sections)" in printed and f"saved to {out}" in printed
