"""One prompt format: a recipe that changes the template changes training's prompts and format reward,
grading and evaluation's prompts, stop strings and grades together."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from grpo_rlvr.config import checks
from grpo_rlvr.config.loading import load_config
from grpo_rlvr.config.sections import ConfigError
from grpo_rlvr.data import build_prompt
from grpo_rlvr.evaluation import evaluate
from grpo_rlvr.evaluation.generation import Generation
from grpo_rlvr.grading import grade_one
from grpo_rlvr.prompt_format import DEFAULT, PromptFormat
from grpo_rlvr.rewards import REGISTRY
from grpo_rlvr.tiny import _corpus
from grpo_rlvr.training import grpo

CUSTOM = {
    "question_label": "Problem:",
    "solution_label": "Working:",
    "solution_prefix": "",
    "answer_line": "#### Answer: {}",
}
SEEN = "seen_prompts"
# A user reward that records the prompts training scores (TRL passes them to every reward).
SEEN_REWARD = f"""
import json, os
def {SEEN}(completions, prompts, **kwargs):
    with open(os.environ["SEEN_PROMPTS_FILE"], "a") as f:
        f.write("".join(json.dumps(p) + "\\n" for p in prompts))
    return [0.0] * len(completions)
"""


class Answering:
    """An evaluation backend that answers every question with its gold number in the custom format."""

    def __init__(self, golds: dict[str, str], stop: tuple[str, ...]) -> None:
        self.golds, self.stop, self.prompts, self.info = golds, stop, [], {"device": "none"}

    def generate(self, prompts: list[str]) -> list[Generation]:
        self.prompts += prompts
        answers = [next(g for q, g in self.golds.items() if p.endswith(f"{q}\nWorking:")) for p in prompts]
        return [
            Generation(f"It is so.\n#### Answer: {a}", len(p), 5, "stop")
            for p, a in zip(prompts, answers, strict=True)
        ]


def test_default_format_is_what_every_consumer_derives_from() -> None:
    assert DEFAULT.canonical == "#### The final answer is"
    assert DEFAULT.stop_strings == ("\nQuestion:",)
    assert build_prompt("Q?", 0) == "Question: Q?\nSolution: Let's think step by step."
    assert any("#### The final answer is 12" in text for text in _corpus())  # the tiny tokenizer's corpus


def test_a_changed_template_reaches_training_grading_and_evaluation(
    tmp_path: Path, tiny_model: str, gsm8k_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reward = tmp_path / "seen.py"
    reward.write_text(SEEN_REWARD)
    seen_file = tmp_path / "prompts.jsonl"
    monkeypatch.setenv("SEEN_PROMPTS_FILE", str(seen_file))
    val_rows = [json.loads(line) for line in (gsm8k_dir / "test.jsonl").read_text().splitlines()[:3]]
    backends: list[Answering] = []

    def answering(*args: Any) -> Answering:
        backends.append(
            Answering(
                {r["question"].strip(): r["answer"].rpartition("####")[2] for r in val_rows}, args[2].stop
            )
        )
        return backends[-1]

    monkeypatch.setattr(evaluate, "make_generator", answering)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "model_name_or_path": "builtin:tiny-qwen2", "use_peft": False,
        "dataset_path": str(gsm8k_dir / "train.jsonl"), "max_train_samples": 4, "num_shots": 1,
        "val_dataset_path": str(gsm8k_dir / "test.jsonl"), "max_val_samples": 3,
        "prompt_format": CUSTOM, "reward_module": str(reward),
        "rewards": ["gsm8k_format", "gsm8k_correctness", SEEN],
        "per_device_train_batch_size": 4, "num_generations": 4, "max_completion_length": 8, "max_steps": 1,
        "save_strategy": "no", "gradient_checkpointing": False, "disable_tqdm": True, "use_cpu": True,
        "eval_at_end": True, "eval_shots": [1], "eval_max_new_tokens": 4,
        "output_dir": str(tmp_path / "checkpoints"), "model_dir": str(tmp_path / "model"),
        "summary_dir": str(tmp_path / "output"),
    }))  # fmt: skip
    try:
        config = load_config(recipe)
        fmt = config.prompt_format
        assert (fmt.canonical, fmt.stop_strings) == ("#### Answer:", ("\nProblem:",))

        # Training: its prompts are written in the template, and the format reward asks for its answer line.
        format_reward = config.reward_funcs[0]
        assert format_reward(["So.\n#### Answer: 5", "So.\n#### The final answer is 5"]) == [0.5, 0.0]
        assert config.reward_funcs[1](["So.\n#### Answer: 5"], final_answer=["5"]) == [1.0]
        summary = grpo.run(config)
        assert summary["global_step"] == 1
        prompts = [json.loads(line) for line in seen_file.read_text().splitlines()]
        assert len(prompts) == 4
        for prompt in prompts:
            assert prompt.startswith("Problem: A baker") and prompt.endswith("\nWorking:")
            assert "#### Answer: 12\n\nProblem: " in prompt  # the worked example ends in the template's line
            assert "Question:" not in prompt and "Let's think" not in prompt

        # Evaluation: the same prompts, the template's stop string, graded by its answer line.
        (backend,) = backends
        assert backend.stop == ("\nProblem:",)
        assert len(backend.prompts) == 3 and all(p.startswith("Problem: A baker") for p in backend.prompts)
        metrics = json.loads((tmp_path / "output" / "eval" / "metrics.json").read_text())
        assert metrics["decoding"]["stop"] == ["\nProblem:"]
        assert summary["evaluation"]["results"][0]["correct"] == 3
    finally:
        REGISTRY.pop(SEEN, None)
        checks._LOADED_REWARD_MODULES.discard(reward.resolve())

    # Grading: the template's answer line is read, an invented next problem in it is cut.
    assert grade_one("#### Answer: 7\nProblem: x\n#### Answer: 8", 7, fmt) == {
        "extracted": "7",
        "correct": True,
    }


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"answer_lin": "#### {}"}, "unknown field 'answer_lin' (did you mean 'answer_line'?)"),
        ({"answer_line": "Answer: {}"}, "answer_line: must start with '####'"),
        ({"answer_line": "#### {} or {}"}, "hold one '{}'"),
        ({"question_label": "Task:"}, "question_label: must be one of"),
        ({"solution_label": "Two\nlines"}, "solution_label: must be one line"),
        ({"answer_line": "#### Answer: {},000"}, "the extractor cannot read the number"),
        ({"exemplars": [["Q?", "no marker"]]}, "exemplars: each solution must end with"),
    ],
)
def test_a_template_the_extractor_cannot_follow_is_refused(tmp_path: Path, settings: dict, says: str) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"model_name_or_path": "Qwen/Qwen2.5-0.5B", "num_shots": 0}))
    with pytest.raises(ConfigError) as caught:
        load_config(recipe, {"prompt_format": settings})
    assert caught.value.key == "prompt_format" and says in str(caught.value)


def test_the_shot_count_is_bounded_by_the_template_exemplars(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"model_name_or_path": "Qwen/Qwen2.5-0.5B", "num_shots": 2}))
    one = {"exemplars": [["What is 1 + 1?", "1 + 1 = 2\n#### 2"]]}
    with pytest.raises(ConfigError, match="2 shots but prompt_format has 1 exemplars"):
        load_config(recipe, {"prompt_format": one})
    # As JSON text, the way a command line gives it
    config = load_config(recipe, {"prompt_format": json.dumps(one), "num_shots": 1})
    assert config.prompt_format == PromptFormat.from_settings(one)
    assert build_prompt("Q?", 1, config.prompt_format).startswith(
        "Question: What is 1 + 1?\nSolution: Let's think step by step. 1 + 1 = 2\n"
        "#### The final answer is 2\n\n"
    )
