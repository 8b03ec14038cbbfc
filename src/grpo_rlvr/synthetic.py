"""Synthetic GSM8K-style arithmetic word problems, deterministic from a seed.

The miniature reproduction (`grpo_rlvr.reproduce`) needs problems a model of a few hundred thousand
parameters can partly learn in a minute on a CPU, and that are graded exactly like GSM8K. Rows have
GSM8K's shape: `question` and a worked `answer` ending in `#### N`, so `data.load_examples`, the
rewards and `grpo-rlvr evaluate` read them as they read GSM8K. One and two-step problems with small
whole numbers: the model must read the numbers from the question and get the arithmetic right.

A split may carry careless slips (`slip`): an answer line that repeats a number of the last step
instead of its result, as worked solutions written in a hurry do. The reasoning stays right, so a
model trained on them knows the result and sometimes writes the wrong one: an error only a reward
that checks the final answer sees.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path

from grpo_rlvr.datafiles import write_jsonl

NAMES = ("Ava", "Ben", "Chloe", "Dan", "Ella", "Finn", "Grace", "Hugo", "Ivy", "Jack", "Lena", "Max")
ITEMS = ("apples", "pencils", "stickers", "marbles", "cookies", "books", "shells", "cards")
CONTAINERS = ("bags", "boxes", "jars", "baskets")

_FIRST_NUMBER = re.compile(r"\d+")

Problem = tuple[str, list[str], int]  # question, reasoning lines, answer


def _add(r: random.Random, name: str, item: str, top: int) -> Problem:
    a, b = r.randint(2, top), r.randint(2, top)
    q = f"{name} has {a} {item}. {name} gets {b} more {item}. How many {item} does {name} have now?"
    return q, [f"{name} has {a} + {b} = {a + b} {item}."], a + b


def _sub(r: random.Random, name: str, item: str, top: int) -> Problem:
    a = r.randint(3, 2 * top)
    b = r.randint(1, a - 1)
    q = f"{name} has {a} {item} and gives {b} of them away. How many {item} does {name} have left?"
    return q, [f"{name} has {a} - {b} = {a - b} {item} left."], a - b


def _mul(r: random.Random, name: str, item: str, top: int) -> Problem:
    a, b = r.randint(2, 9), r.randint(2, 9)
    box = r.choice(CONTAINERS)
    q = f"{name} buys {a} {box} with {b} {item} in each. How many {item} does {name} buy?"
    return q, [f"{name} buys {a} * {b} = {a * b} {item}."], a * b


def _mul_sub(r: random.Random, name: str, item: str, top: int) -> Problem:
    a, b = r.randint(2, 9), r.randint(2, 9)
    c = r.randint(1, a * b - 1)
    box = r.choice(CONTAINERS)
    q = (
        f"{name} has {a} {box} with {b} {item} in each. {name} gives away {c} {item}. "
        f"How many {item} does {name} keep?"
    )
    steps = [f"{name} has {a} * {b} = {a * b} {item}.", f"{name} keeps {a * b} - {c} = {a * b - c} {item}."]
    return q, steps, a * b - c


KINDS: tuple[Callable[[random.Random, str, str, int], Problem], ...] = (_add, _sub, _mul, _mul_sub)


def problem(r: random.Random, top: int = 20, slip: float = 0.0) -> dict[str, str]:
    """One GSM8K-shaped row; `top` bounds the operands of additions and subtractions. With probability
    `slip` the answer line is a careless slip: it repeats the last step's first number, not its result."""
    kind = r.choice(KINDS)
    question, steps, answer = kind(r, r.choice(NAMES), r.choice(ITEMS), top)
    if r.random() < slip:
        answer = int(_FIRST_NUMBER.search(steps[-1]).group())
    return {"question": question, "answer": "\n".join(steps) + f"\n#### {answer}"}


def problems(
    n: int, seed: int, top: int = 20, exclude: set[str] | frozenset[str] = frozenset(), slip: float = 0.0
) -> list:
    """`n` distinct problems from `seed`, none whose question is in `exclude` (another split's)."""
    r, rows, seen = random.Random(seed), [], set(exclude)
    while len(rows) < n:
        row = problem(r, top, slip)
        if row["question"] not in seen:
            seen.add(row["question"])
            rows.append(row)
    return rows


def write_splits(
    out_dir: Path, sizes: dict[str, int], seed: int, top: int = 20, slips: dict[str, float] | None = None
) -> dict[str, Path]:
    """One `<name>.jsonl` per split under `out_dir`, no question in two splits; their paths. `slips`
    gives a split's share of careless answer lines (none by default)."""
    seen: set[str] = set()
    paths = {}
    for i, (name, n) in enumerate(sizes.items()):
        rows = problems(n, seed + i, top, exclude=seen, slip=(slips or {}).get(name, 0.0))
        seen |= {row["question"] for row in rows}
        paths[name] = Path(out_dir) / f"{name}.jsonl"
        write_jsonl(rows, paths[name])
    return paths
