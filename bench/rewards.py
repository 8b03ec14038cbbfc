"""Reward throughput: GSM8K format + correctness on fresh, distinct ~200-token completions, one core."""

from __future__ import annotations

import json
import time
from pathlib import Path

from grpo_rlvr.answers import extract, parse_number
from grpo_rlvr.data import gold_from_solution, training_solution
from grpo_rlvr.rewards.gsm8k import gsm8k_correctness, gsm8k_format

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k"
BATCH = 256  # completions scored per reward call, as in a GRPO step (prompts x generations)
FILLER = "We work it out step by step: {a} * 3 = {b}, and {b} + 4 = {c}. "


def _completions(n: int) -> tuple[list[str], list[str]]:
    """n distinct completions of ~800 characters (~200 tokens), half of them with a wrong answer."""
    with (GSM8K / "test.jsonl").open() as f:
        rows = [json.loads(line) for line in f]
    completions, golds = [], []
    for i in range(n):
        row = rows[i % len(rows)]
        text = training_solution(row["answer"])
        filler = ""
        while len(filler) + len(text) < 800:
            a = i * 7 + len(filler)
            filler += FILLER.format(a=a, b=a * 3, c=a * 3 + 4)
        if i % 2:
            text = text.rpartition(" ")[0] + " " + str(parse_number(gold_from_solution(row["answer"])) + 1)
        completions.append(filler + text)
        golds.append(gold_from_solution(row["answer"]))
    return completions, golds


def bench_gsm8k_rewards(n: int = 200_000) -> dict[str, float]:
    """Completions per second through both GSM8K rewards, batch by batch, cold caches."""
    completions, golds = _completions(n)
    extract.cache_clear()
    parse_number.cache_clear()
    start = time.perf_counter()
    total = 0.0
    for i in range(0, n, BATCH):
        batch, gold = completions[i : i + BATCH], golds[i : i + BATCH]
        total += sum(gsm8k_format(batch)) + sum(gsm8k_correctness(batch, final_answer=gold))
    seconds = time.perf_counter() - start
    assert total > 0, "the benchmark completions must score"
    return {
        "completions": n,
        "mean_chars": sum(map(len, completions)) / n,
        "seconds": seconds,
        "completions_per_s": n / seconds,
    }


if __name__ == "__main__":
    print(json.dumps(bench_gsm8k_rewards(), indent=2))
