"""The miniature reproduction, small: a warmed-up model gets better on held-out synthetic problems through
GRPO on the real GSM8K rewards, and the same check fails when the advantage sign is flipped or the learning
rate is 0. Also the synthetic problems themselves: deterministic, GSM8K-shaped, right, disjoint splits."""

import json
import re
from pathlib import Path
from typing import Any

import pytest

from grpo_rlvr import reproduce, synthetic
from grpo_rlvr.data import load_examples
from grpo_rlvr.evaluate import evaluate_examples

N_HELD_OUT = 120
GRPO_STEPS = 24
# Small enough for the test suite; the full reproduction's sizes are in reproduce.py.
SMALL = {"max_steps": GRPO_STEPS, "per_device_train_batch_size": 32, "num_generations": 8}
MIN_GAIN = 0.05  # held-out accuracy points (as a share) GRPO must add for "it learned"


def test_problems_are_deterministic_gsm8k_rows_with_right_arithmetic(tmp_path: Path) -> None:
    assert synthetic.problems(50, seed=3) == synthetic.problems(50, seed=3)
    assert synthetic.problems(50, seed=3) != synthetic.problems(50, seed=4)
    paths = synthetic.write_splits(tmp_path, {"a": 300, "b": 200}, seed=0)
    rows, report = load_examples(paths["a"])
    assert report.summary() == "300 rows, none dropped"
    for row in rows:
        steps = re.findall(r"(\d+) ([-+*]) (\d+) = (\d+)", row["answer"])
        assert steps, row["answer"]
        for a, op, b, c in steps:
            assert eval(f"{a} {op} {b}") == int(c), row["answer"]  # digits and one operator
        assert row["final_answer"] == steps[-1][3]
    questions = [{json.loads(line)["question"] for line in paths[s].open()} for s in ("a", "b")]
    assert len(questions[0]) == 300 and len(questions[1]) == 200 and not questions[0] & questions[1]


@pytest.fixture(scope="module")
def warmed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Data splits, the warmed-up base and its held-out accuracy (shared by every variant)."""
    out = tmp_path_factory.mktemp("mini")
    data = synthetic.write_splits(out / "data", {"warmup": 2000, "train": 1000, "test": N_HELD_OUT}, seed=0)
    warmup_rows, _ = load_examples(data["warmup"])
    reproduce.warm_up(reproduce.BUILTIN, warmup_rows, out / "base", steps=200, learning_rate=3e-3, seed=0)
    test_rows, _ = load_examples(data["test"])
    return {"out": out, "data": data, "test_rows": test_rows, "base": accuracy(out / "base", test_rows, out)}


def accuracy(model: Path, rows: list[dict[str, Any]], out: Path) -> float:
    metrics = evaluate_examples(
        [str(model)], rows, out / "eval" / model.parent.name, max_new_tokens=reproduce.EVAL_MAX_NEW_TOKENS
    )
    return metrics["results"][0]["accuracy"]


@pytest.mark.parametrize(
    ("variant", "overrides", "learns"),
    [
        ("grpo", {}, True),
        # TRL's own reward_weights: weights of -1 negate the summed reward, so every group-relative
        # advantage (reward - group mean, over the group std) changes sign and nothing else does. The
        # rewards themselves and their logs stay as they are.
        ("advantage_sign_flipped", {"reward_weights": [-1.0, -1.0]}, False),
        ("learning_rate_0", {"learning_rate": 0.0}, False),
    ],
)
def test_grpo_on_the_gsm8k_rewards_raises_held_out_accuracy_only_when_it_should(
    variant: str, overrides: dict[str, Any], learns: bool, warmed: dict[str, Any]
) -> None:
    """The check `learned` (held-out greedy accuracy up by MIN_GAIN, and the training correctness reward
    up) passes for real GRPO and fails for a flipped advantage sign and for a learning rate of 0: a
    pipeline that silently trained the wrong way, or not at all, would fail this test."""
    out = warmed["out"] / variant
    summary, steps = reproduce.grpo(
        warmed["out"] / "base", warmed["data"]["train"], out, **SMALL, **overrides
    )
    assert summary["global_step"] == GRPO_STEPS
    trained = accuracy(Path(summary["model_dir"]), warmed["test_rows"], out)
    reward = steps.series("rewards/gsm8k_correctness/mean")
    reward_gain = sum(reward[-6:]) / 6 - sum(reward[:6]) / 6
    assert 0.05 < warmed["base"] < 0.9  # the warm-up taught part of the task
    learned = trained - warmed["base"] >= MIN_GAIN and reward_gain > 0
    assert learned is learns, (variant, warmed["base"], trained, reward)
