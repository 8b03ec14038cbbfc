"""The synthetic word problems of the miniature reproduction: deterministic, GSM8K-shaped, arithmetically
right, and splits that share no question."""

import json
import re
from pathlib import Path

from grpo_rlvr import synthetic
from grpo_rlvr.data import load_examples


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
