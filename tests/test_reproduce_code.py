"""The miniature code reproduction: its synthetic function problems (deterministic, HumanEval-shaped,
right bodies pass and slips only run, splits that share no prompt, slips only where asked) and the
partial/full score shares it reads from TRL's logs."""

from pathlib import Path

import pytest
import torch
from trl.trainer.utils import nanstd

from grpo_rlvr import humaneval, reproduce, reproduce_code, synthetic_code


def test_problems_are_deterministic_humaneval_rows_whose_right_bodies_pass(tmp_path: Path) -> None:
    assert synthetic_code.problems(30, seed=3) == synthetic_code.problems(30, seed=3)
    assert synthetic_code.problems(30, seed=3) != synthetic_code.problems(30, seed=4)
    paths = synthetic_code.write_splits(tmp_path, {"a": 40, "b": 30}, seed=0, wrong={"a": 0.5})
    rows = {split: humaneval.load_problems(path) for split, path in paths.items()}
    assert not {r["prompt"] for r in rows["a"]} & {r["prompt"] for r in rows["b"]}
    assert all(r["tests"] == humaneval.tests(r) for part in rows.values() for r in part)
    # the task id names the right expression; a body that is not it is a slip
    wrong = {s: [r["canonical_solution"] != _right(r) for r in rows[s]] for s in rows}
    assert 8 <= sum(wrong["a"]) <= 32 and not any(wrong["b"])  # about half of 40 (4 standard deviations)
    everything = rows["a"] + rows["b"]
    graded = humaneval.grade(everything, [r["canonical_solution"] for r in everything])
    assert [g["correct"] for g in graded] == [not w for w in wrong["a"] + wrong["b"]]
    # every slip runs (the partial score) and fails a test; it differs from the right body in one token
    slipped = synthetic_code.problems(200, seed=7, wrong=1.0)
    assert [r["prompt"] for r in slipped] == [r["prompt"] for r in synthetic_code.problems(200, seed=7)]
    assert {g["status"] for g in humaneval.grade(slipped, [r["canonical_solution"] for r in slipped])} == {
        "failed"
    }
    assert all(len(set(r["canonical_solution"].split()) ^ set(_right(r).split())) == 2 for r in slipped)


def _right(row: dict) -> str:
    return f"    return {row['task_id'].split('/', 2)[2]}\n"


def test_score_shares_recover_the_counts_from_the_logged_mean_and_std() -> None:
    steps = reproduce.StepLog()
    batches = {1: [0.0] * 10 + [0.2] * 14 + [1.0] * 8, 2: [0.2] * 4 + [1.0] * 28, 3: [1.0] * 32}
    for step, scores in batches.items():
        t = torch.tensor(scores)
        entry = {"rewards/code_exec/mean": t.mean().item(), "rewards/code_exec/std": nanstd(t).item()}
        steps.logs.append({**entry, "step": step})  # as TRL logs one generation per step
    steps.logs.append({"train_runtime": 1.0, "step": 3})  # the end-of-training entry has no reward
    assert reproduce_code.score_shares(steps, batch=32) == [
        {"step": 1, "partial": pytest.approx(14 / 32, abs=1e-4), "full": pytest.approx(8 / 32, abs=1e-4)},
        {"step": 2, "partial": pytest.approx(4 / 32, abs=1e-4), "full": pytest.approx(28 / 32, abs=1e-4)},
        {"step": 3, "partial": pytest.approx(0, abs=1e-4), "full": pytest.approx(1, abs=1e-4)},
    ]
