"""The GSM8K rewards on every real gold solution, and the registry."""

import json

import pytest

from grpo_rlvr.answers import parse_number
from grpo_rlvr.data import gold_from_solution, packaged_gsm8k, training_solution
from grpo_rlvr.rewards import REGISTRY, required_columns, resolve
from grpo_rlvr.rewards.gsm8k import gsm8k_correctness, gsm8k_format

GSM8K = packaged_gsm8k("train").parent  # the shipped copy, checksums checked


def _all_rows() -> list[dict]:
    rows = []
    for split in ("train", "test"):
        with (GSM8K / f"{split}.jsonl").open() as f:
            rows += [json.loads(line) for line in f]
    return rows


def test_every_gold_solution_scores_full_marks_and_a_changed_number_scores_zero() -> None:
    rows = _all_rows()
    assert len(rows) == 8792
    golds = [gold_from_solution(r["answer"]) for r in rows]
    completions = [training_solution(r["answer"]) for r in rows]
    assert gsm8k_format(completions) == [0.5] * len(rows)
    assert gsm8k_correctness(completions, final_answer=golds) == [1.0] * len(rows)

    def changed(completion: str) -> str:
        head, _, number = completion.rpartition("is ")
        return f"{head}is {parse_number(number) + 1}"

    wrong = [changed(c) for c in completions]
    assert gsm8k_correctness(wrong, final_answer=golds) == [0.0] * len(rows)


def test_registry_names_are_the_logged_names() -> None:
    assert {"gsm8k_format", "gsm8k_correctness"} <= set(REGISTRY)
    funcs = resolve(["gsm8k_format", "gsm8k_correctness"])
    assert [f.__name__ for f in funcs] == ["gsm8k_format", "gsm8k_correctness"]
    assert required_columns(funcs[1]) == ("final_answer",)


def test_resolve_rejects_unknown_names_and_stray_options() -> None:
    with pytest.raises(ValueError, match="unknown reward"):
        resolve(["gsm8k_formatt"])
    with pytest.raises(ValueError, match="not selected"):
        resolve(["gsm8k_format"], {"gsm8k_correctness": {}})


def test_reward_options_are_bound_and_the_name_is_kept() -> None:
    (fn,) = resolve(["gsm8k_correctness"], {"gsm8k_correctness": {"final_answer": ["7"]}})
    assert fn.__name__ == "gsm8k_correctness"
    assert fn(["#### The final answer is 7"]) == [1.0]
