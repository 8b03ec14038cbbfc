"""Synthetic HumanEval-shaped function problems, deterministic from a seed (never HumanEval itself).

The code reproduction (`grpo_rlvr.reproduce_code`) needs problems a model of a few hundred thousand
parameters can partly learn in a minute on a CPU and that are graded exactly like HumanEval. Each row
has HumanEval's fields: `task_id`, `prompt` (a one-argument function's signature and a docstring that
says what it returns), `entry_point`, `canonical_solution` (a one-line body) and `test` (a
`check(candidate)` with three asserts), plus `tests` (`humaneval.tests` of the row), the column the
`code_exec` reward reads. So the same file trains (`code_exec` with `complete_prompt: true`) and is
evaluated (`grpo-rlvr evaluate --task humaneval --data FILE`).

A split may carry wrong bodies (`wrong`): the body applies a neighbouring operation to the same
constant (`return x - 7` for "Return x plus 7.", `min` for "the larger of"), a slip written in a
hurry. It runs, so `code_exec` gives it the partial score, and at least one of the problem's asserts
fails, so only the full score tells it from the right body. It differs from the right body in one
token, so a model that learns both must choose there, problem by problem.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grpo_rlvr.data import write_jsonl
from grpo_rlvr.humaneval import tests

# (docstring's description with {k}, the returned expression with {k}, what it computes, the slip)
OPERATIONS: tuple[tuple[str, str, Callable[[int, int], int], str], ...] = (
    ("x plus {k}", "x + {k}", lambda x, k: x + k, "x - {k}"),
    ("x minus {k}", "x - {k}", lambda x, k: x - k, "x + {k}"),
    ("x times {k}", "x * {k}", lambda x, k: x * k, "x + {k}"),
    ("the larger of x and {k}", "max(x, {k})", max, "min(x, {k})"),
    ("the smaller of x and {k}", "min(x, {k})", min, "max(x, {k})"),
    ("x modulo {k}", "x % {k}", lambda x, k: x % k, "x - {k}"),
)
VERBS = ("adjust", "apply", "compute", "convert", "get", "make", "map", "shift", "transform", "update")
NOUNS = ("count", "level", "price", "score", "size", "step", "total", "value", "weight", "width")
TOP = 19  # constants k are 2..TOP


def problem(r: random.Random, wrong: float = 0.0) -> dict[str, Any]:
    """One HumanEval-shaped row; with probability `wrong` its canonical body is the slip."""
    text, expression, compute, slip = r.choice(OPERATIONS)
    k = r.randint(2, TOP)
    name = f"{r.choice(VERBS)}_{r.choice(NOUNS)}"
    # one argument below k and one above it: max and min differ on one of them
    xs = [r.randint(1, k - 1), r.randint(k + 1, k + 30), r.randint(1, 50)]
    asserts = "".join(f"    assert candidate({x}) == {compute(x, k)}\n" for x in xs)
    row = {
        "task_id": f"Synthetic/{name}/{expression.format(k=k)}",
        "prompt": f'def {name}(x: int) -> int:\n    """Return {text.format(k=k)}."""\n',
        "entry_point": name,
        "canonical_solution": f"    return {expression.format(k=k)}\n",
        "test": f"def check(candidate):\n{asserts}",
    }
    if r.random() < wrong:
        row["canonical_solution"] = f"    return {slip.format(k=k)}\n"
    return {**row, "tests": tests(row)}


def problems(
    n: int, seed: int, exclude: set[str] | frozenset[str] = frozenset(), wrong: float = 0.0
) -> list[dict[str, Any]]:
    """`n` problems with distinct prompts from `seed`, none whose prompt is in `exclude` (another split's)."""
    r, rows, seen = random.Random(seed), [], set(exclude)
    while len(rows) < n:
        row = problem(r, wrong)
        if row["prompt"] not in seen:
            seen.add(row["prompt"])
            rows.append(row)
    return rows


def write_splits(
    out_dir: Path, sizes: dict[str, int], seed: int, wrong: dict[str, float] | None = None
) -> dict[str, Path]:
    """One `<name>.jsonl` per split under `out_dir`, no prompt in two splits; their paths. `wrong` gives a
    split's share of wrong bodies (none by default)."""
    seen: set[str] = set()
    paths = {}
    for i, (name, n) in enumerate(sizes.items()):
        rows = problems(n, seed + i, exclude=seen, wrong=(wrong or {}).get(name, 0.0))
        seen |= {row["prompt"] for row in rows}
        paths[name] = Path(out_dir) / f"{name}.jsonl"
        write_jsonl(rows, paths[name])
    return paths
