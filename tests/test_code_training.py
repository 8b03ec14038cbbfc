"""Code training data: HumanEval-shaped rows (`prompt` + `tests`) train with `code_exec` from a train
channel, the completion continues the prompt's code (`complete_prompt`), HumanEval is refused as
training data by file:line, and the GPU code recipe is consistent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bad_inputs import make_tree
from test_integration import run_launcher
from transformers import AutoModelForCausalLM

from grpo_rlvr import checkpoints, cli, humaneval, synthetic_code
from grpo_rlvr.config.loading import load_config
from grpo_rlvr.datafiles import write_jsonl
from grpo_rlvr.rewards.code_exec import BODY_END, PARTIAL_REWARD, code_exec
from grpo_rlvr.sagemaker import Paths

ROW = synthetic_code.problems(1, seed=5)[0]
RIGHT = ROW["canonical_solution"]


def test_complete_prompt_grades_prompt_plus_completion_cut_where_the_body_ends() -> None:
    completions = [
        RIGHT + "\n\ndef next_problem(x):\n    return (",
        "    return None\n",
        "    return (",
        RIGHT,
    ]
    scores = code_exec(
        completions, [ROW["tests"]] * 4, prompts=[ROW["prompt"]] * 3 + ["# no function here\n"],
        complete_prompt=True, workers=2,
    )  # fmt: skip
    # the right body with a broken next function after it (cut at `\ndef`), the stub, a syntax error,
    # and the right body after a prompt that defines no function (the tests' name is missing)
    assert scores == [1.0, PARTIAL_REWARD, 0.0, 0.0]
    # the same completions without complete_prompt: no fence, so no code
    assert code_exec(completions, [ROW["tests"]] * 4, prompts=[ROW["prompt"]] * 4) == [0.0] * 4


@pytest.mark.parametrize(
    ("prompts", "options"),
    [([[{"role": "user", "content": "hi"}]], {}), ([ROW["prompt"]], {"whole_completion": True})],
    ids=["chat-prompts", "with-whole-completion"],
)
def test_complete_prompt_refuses_what_it_cannot_complete(prompts: list, options: dict) -> None:
    with pytest.raises(ValueError, match="complete_prompt needs text prompts and excludes whole_completion"):
        code_exec([RIGHT], [ROW["tests"]], prompts=prompts, complete_prompt=True, **options)


def _rows_with(tmp_path: Path, bad_prompt: str) -> Path:
    rows = synthetic_code.problems(6, seed=1)
    rows[4] = {**rows[4], "prompt": bad_prompt}
    path = tmp_path / "train" / "data.jsonl"
    write_jsonl(rows, path)
    return path


@pytest.mark.parametrize("wrapped", [False, True], ids=["as-published", "inside-an-instruction"])
def test_a_humaneval_prompt_in_training_data_fails_by_file_and_line_before_the_model_loads(
    wrapped: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def no_model(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_model)
    problem = humaneval.load_problems()[17]
    prompt = f"Complete this function.\n\n{problem['prompt']}" if wrapped else problem["prompt"]
    path = _rows_with(tmp_path, prompt)
    argv = ["train", "--recipe", "code-exec-cpu", f"dataset_path={path}", f"output_dir={tmp_path / 'ck'}"]
    assert cli.main([*argv, f"model_dir={tmp_path / 'model'}", f"summary_dir={tmp_path / 's'}"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:5: this training prompt is HumanEval's (def {problem['entry_point']})" in err
    assert "never training data" in err and not (tmp_path / "model").exists()


def test_a_train_channel_of_prompt_and_tests_rows_trains_with_code_exec(
    tmp_path: Path, tiny_model: str
) -> None:
    base = tmp_path / "opt_ml"
    hyperparameters = {
        "recipe": "mini-code-grpo-cpu",
        "model_name_or_path": "builtin:tiny-qwen2",
        "max_steps": "2",
        "per_device_train_batch_size": "8",
        "num_generations": "4",
        "save_steps": "100",
    }
    make_tree(base, hyperparameters)
    channel = base / "input" / "data" / "train"
    (channel / "data.jsonl").unlink()  # make_tree's GSM8K rows: these are code rows
    write_jsonl(synthetic_code.problems(16, seed=2), channel / "data.jsonl")

    code, output = run_launcher(base)

    assert code == 0, output[-3000:]
    assert output.count("'rewards/code_exec/mean'") == 2  # the trainer's log line of each step
    paths = Paths(base)
    summary = json.loads((paths.model_dir / checkpoints.SUMMARY_NAME).read_text())
    assert summary["global_step"] == 2 and summary["data"]["train_rows"] >= 14
    assert summary["config"]["data"]["dataset_path"] == str(channel)
    assert summary["config"]["rewards"]["reward_kwargs"]["code_exec"]["complete_prompt"] is True
    assert list(summary["rewards"]) == ["code_exec"]
    assert not paths.failure_file.exists()


@pytest.mark.parametrize("recipe", ["qwen2.5-coder-1.5b-code", "mini-code-grpo-cpu"])
def test_code_recipes_stop_where_a_body_ends_and_complete_the_prompt(recipe: str, tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    write_jsonl(synthetic_code.problems(4, seed=0), rows)
    config = load_config(recipe, {"dataset_path": str(rows)})
    t = config.training
    stops = t.generation_kwargs["stop" if t.use_vllm else "stop_strings"]
    assert tuple(stops) == BODY_END == humaneval.STOP and not config.data.stop_at_answer
    assert config.rewards.reward_kwargs["code_exec"]["complete_prompt"] is True
    if recipe.startswith("qwen"):
        assert t.use_vllm and t.vllm_mode == "colocate" and t.bf16 and config.model.use_peft
        assert t.vllm_max_model_length >= config.data.max_prompt_tokens + t.max_completion_length
        assert t.generation_batch_size % t.num_generations == 0
