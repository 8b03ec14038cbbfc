"""Synthetic HumanEval-shaped function problems, deterministic from a seed (never HumanEval itself).

The code reproduction (`grpo_rlvr.reproduce_code`) needs problems a model of a few hundred thousand
parameters can partly learn in a minute on a CPU and that are graded exactly like HumanEval. Each row
has HumanEval's fields: `task_id`, `prompt` (a one-argument function's signature and a docstring that
says what it returns), `entry_point`, `canonical_solution` (a one-line body) and `test` (a
`check(candidate)` with three asserts), plus `tests` (`humaneval.tests` of the row), the column the
`code_exec` reward reads. So the same file trains (`code_exec` with `complete_prompt: true`) and is
evaluated (`grpo-rlvr evaluate --task humaneval --data FILE`).

A split may carry wrong bodies (`wrong`): the body of the paired operation (`return x - 1` for
"Return x plus one.", `min` for "the larger of"; each operation is the slip of exactly one other, so
none is more likely a priori), a slip written in a hurry. It runs, so `code_exec` gives it the
partial score, and at least one of the problem's asserts fails, so only the full score tells it from
the right body. It differs from the right body in one token, so a model that learns both must choose
there, problem by problem. The model reads no number: the docstring's words pick the expression.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grpo_rlvr.datafiles import write_jsonl
from grpo_rlvr.humaneval import tests

# (docstring's description, the returned expression, what it computes, the slip). Paired: each
# operation's slip is its partner's expression, so no body is more likely a priori than another.
OPERATIONS: tuple[tuple[str, str, Callable[[int], int], str], ...] = (
    ("x plus one", "x + 1", lambda x: x + 1, "x - 1"),
    ("x minus one", "x - 1", lambda x: x - 1, "x + 1"),
    ("x times two", "x * 2", lambda x: x * 2, "x + 2"),
    ("x plus two", "x + 2", lambda x: x + 2, "x * 2"),
    ("half of x, rounded down", "x // 2", lambda x: x // 2, "x % 2"),
    ("x modulo two", "x % 2", lambda x: x % 2, "x // 2"),
    ("the larger of x and zero", "max(x, 0)", lambda x: max(x, 0), "min(x, 0)"),
    ("the smaller of x and zero", "min(x, 0)", lambda x: min(x, 0), "max(x, 0)"),
)
VERBS = ("adjust", "apply", "build", "compute", "convert", "derive", "fix", "get", "make", "map",
         "measure", "normalize", "prepare", "process", "reduce", "scale", "shift", "take", "transform",
         "update")  # fmt: skip
NOUNS = ("amount", "count", "delta", "depth", "height", "index", "length", "level", "limit", "offset",
         "price", "rank", "rate", "score", "size", "step", "total", "value", "weight", "width")  # fmt: skip


def problem(r: random.Random, wrong: float = 0.0) -> dict[str, Any]:
    """One HumanEval-shaped row; with probability `wrong` its canonical body is the slip."""
    text, expression, compute, slip = r.choice(OPERATIONS)
    name = f"{r.choice(VERBS)}_{r.choice(NOUNS)}"
    # a negative argument tells every operation from its slip
    xs = [r.randint(-20, -1), r.randint(3, 40), r.randint(-20, 40)]
    asserts = "".join(f"    assert candidate({x}) == {compute(x)}\n" for x in xs)
    row = {
        "task_id": f"Synthetic/{name}/{expression}",
        "prompt": f'def {name}(x: int) -> int:\n    """Return {text}."""\n',
        "entry_point": name,
        "canonical_solution": f"    return {expression}\n",
        "test": f"def check(candidate):\n{asserts}",
    }
    if r.random() < wrong:
        row["canonical_solution"] = f"    return {slip}\n"
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
