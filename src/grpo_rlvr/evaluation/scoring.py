"""The numbers: accuracy and its 95% Wilson interval per model x shots, and trained - base with the
exact paired McNemar test."""

from __future__ import annotations

import math
from typing import Any

from grpo_rlvr.grading import wilson_interval
from grpo_rlvr.tasks import GSM8K, Task


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value: are two models' disagreements on the same questions one-sided?"""
    n = only_a + only_b
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1))
    return min(1.0, 2 * tail / 2**n)


def summarize(
    rows: list[dict[str, Any]], labels: list[str], shots: list[int], task: Task = GSM8K
) -> list[dict[str, Any]]:
    """Accuracy (a task's pass@1 too), counts and Wilson interval per model x shots, in that order."""
    results = []
    for label in labels:
        for k in shots:
            part = [r for r in rows if r["model"] == label and r["shots"] == k]
            correct, n = sum(r["correct"] for r in part), len(part)
            lo, hi = wilson_interval(correct, n)
            results.append(
                {
                    "model": label,
                    "shots": k,
                    "n": n,
                    "correct": correct,
                    "accuracy": round(correct / n, 6),
                    "ci95": [round(lo, 6), round(hi, 6)],
                    "no_answer": sum(task.unanswered(r) for r in part),
                    "truncated": sum(r["finish"] == "length" for r in part),
                }
            )
    return results


def compare(
    rows: list[dict[str, Any]], results: list[dict[str, Any]], base: str, trained: str
) -> list[dict[str, Any]]:
    """Per shots: trained - base, whether the intervals overlap, and the paired (McNemar) test."""
    table = []
    for b in (r for r in results if r["model"] == base):
        t = next(r for r in results if r["model"] == trained and r["shots"] == b["shots"])
        right = {
            m: {r["id"]: r["correct"] for r in rows if r["model"] == m and r["shots"] == b["shots"]}
            for m in (base, trained)
        }
        base_only = sum(right[base][i] and not right[trained][i] for i in right[base])
        trained_only = sum(right[trained][i] and not right[base][i] for i in right[base])
        table.append(
            {
                "shots": b["shots"],
                "base": b["accuracy"],
                "trained": t["accuracy"],
                "difference": round(t["accuracy"] - b["accuracy"], 6),
                "intervals_overlap": t["ci95"][0] <= b["ci95"][1] and b["ci95"][0] <= t["ci95"][1],
                "base_only_correct": base_only,
                "trained_only_correct": trained_only,
                "mcnemar_p": float(f"{mcnemar_p(base_only, trained_only):.4g}"),  # 4 digits, never 0
            }
        )
    return table
