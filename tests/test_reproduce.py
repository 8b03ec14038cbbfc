"""The miniature reproduction: its synthetic word problems (deterministic, GSM8K-shaped, arithmetically
right, splits that share no question, slips only where asked) and a smaller run of its loop that must
learn, and must not when the advantage sign is flipped or the learning rate is 0."""

import json
import re
from pathlib import Path

import pytest

from grpo_rlvr import reproduce, synthetic
from grpo_rlvr.data import load_examples

# The smaller run (`--size small`): `make reproduce-mini`'s warm-up, fewer GRPO steps and test problems.
SMALL_SIZES = reproduce.SIZES["small"].splits
SMALL_GRPO_STEPS = reproduce.SIZES["small"].grpo_steps
SMALL_MIN_GAIN = 10  # net held-out questions won (right only after GRPO minus right only before)


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


def test_slips_keep_the_reasoning_and_change_only_the_answer_line(tmp_path: Path) -> None:
    paths = synthetic.write_splits(tmp_path, {"warmup": 1000, "test": 200}, seed=0, slips={"warmup": 0.5})
    slipped = {}
    for split, path in paths.items():
        rows, _ = load_examples(path)
        slipped[split] = 0
        for row in rows:
            steps = re.findall(r"(\d+) ([-+*]) (\d+) = (\d+)", row["answer"])
            assert all(eval(f"{a} {op} {b}") == int(c) for a, op, b, c in steps), row["answer"]
            if row["final_answer"] != steps[-1][3]:
                assert row["final_answer"] == steps[-1][0], row["answer"]  # the last step's first number
                slipped[split] += 1
    assert slipped["test"] == 0
    assert 420 <= slipped["warmup"] <= 580  # about half of 1000 (binomial, 5 standard deviations)


@pytest.fixture(scope="module")
def warmed_up(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """A smaller miniature reproduction's warmed-up base and data, shared by the GRPO variants below."""
    out = tmp_path_factory.mktemp("mini")
    data = synthetic.write_splits(
        out / "data", SMALL_SIZES, seed=0, top=reproduce.TOP, slips={"warmup": reproduce.WARMUP_SLIP}
    )
    rows, _ = load_examples(data["warmup"])
    reproduce.warm_up(
        reproduce.BUILTIN,
        rows,
        out / "base",
        steps=reproduce.WARMUP_STEPS,
        learning_rate=reproduce.WARMUP_LR,
        seed=0,
    )
    return out / "base", data


@pytest.mark.parametrize(
    ("overrides", "improves"),
    # A learning rate of 0 is refused as an input; 1e-30 leaves every float32 weight where it was.
    [({}, True), ({"reward_weights": [-1.0, -1.0]}, False), ({"learning_rate": 1e-30}, False)],
    ids=["as-configured", "advantage-sign-flipped", "learning-rate-zero"],
)
def test_grpo_on_the_gsm8k_rewards_improves_held_out_accuracy_only_when_it_should(
    warmed_up: tuple[Path, dict[str, Path]], overrides: dict, improves: bool, tmp_path: Path
) -> None:
    """The loop learns through the real rewards and `training.grpo.run`: the trained model answers more
    held-out questions right than its base. Negated rewards (every advantage flips) or a zero learning
    rate must not, so a sign or update bug fails the first case and cannot pass these."""
    base, data = warmed_up
    summary, _ = reproduce.grpo(
        base, data["train"], tmp_path, seed=0, max_steps=SMALL_GRPO_STEPS, **overrides
    )
    (paired,) = reproduce.compare(base, Path(summary["model_dir"]), data["test"], tmp_path / "eval")[
        "comparison"
    ]["by_shots"]
    gained = paired["trained_only_correct"] - paired["base_only_correct"]
    if improves:
        assert gained >= SMALL_MIN_GAIN and paired["mcnemar_p"] < reproduce.P_MAX, paired
    else:
        assert gained <= 0, paired


def test_phases_are_announced_and_make_passes_the_size(capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess

    for number in range(1, len(reproduce.PHASES) + 1):
        reproduce.phase(number)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"== reproduce-mini {i + 1}/4: {name}" for i, name in enumerate(reproduce.PHASES)]
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(["make", "-n", "reproduce-mini", "SIZE=small", "PY=python3"], cwd=root,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert "-m grpo_rlvr.reproduce --out reproduce-mini --size small" in done.stdout
