"""Grading model outputs against gold answers, and the Wilson interval every accuracy is reported with.

`grade` (any model's JSONL outputs) and `evaluate` (our generations) both grade through `grade_one`,
which reads answers with `grpo_rlvr.answers` exactly as the correctness reward does.
"""

from __future__ import annotations

import math
from typing import Any

from grpo_rlvr.answers import Number, extract, format_number, parse_number, same_number
from grpo_rlvr.data import gold_from_solution
from grpo_rlvr.prompt_format import DEFAULT, PromptFormat

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def gold_value(gold: Any) -> Number:
    """A gold answer given as a bare number (`1,200`, `-3`) or a full GSM8K solution (`… #### 72`)."""
    text = str(gold)
    value = parse_number(gold_from_solution(text) if "####" in text else text)
    if value is None:
        raise ValueError(f"gold answer is not a number: {text[-40:]!r}")
    return value


def grade_one(completion: str, gold: Any, prompt_format: PromptFormat = DEFAULT) -> dict[str, Any]:
    """`extracted` (canonical text or None) and `correct` for one completion."""
    answer = extract(completion, prompt_format.canonical)
    return {
        "extracted": None if answer.value is None else format_number(answer.value),
        "correct": same_number(answer.value, gold_value(gold)),
    }


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion: honest near 0 and 1 and for small n."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_line(correct: int, n: int) -> str:
    lo, hi = wilson_interval(correct, n)
    return f"accuracy={correct / n if n else 0.0:.4f} n={n} ci95=[{lo:.4f}, {hi:.4f}]"
