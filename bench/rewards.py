"""Reward throughput: GSM8K format + correctness on fresh, distinct ~200-token completions, one core."""

from __future__ import annotations

import json
import time

from grpo_rlvr.answers import extract, parse_number
from grpo_rlvr.data import gold_from_solution, packaged_gsm8k, training_solution
from grpo_rlvr.rewards.gsm8k import gsm8k_correctness, gsm8k_format

GSM8K = packaged_gsm8k("train").parent  # the shipped copy, checksums checked
BATCH = 256  # completions scored per reward call, as in a GRPO step (prompts x generations)
CANON = "#### The final answer is"
# ~1 MB texts shaped to make a backtracking answer regex take minutes; graded within ADVERSARIAL_TARGET_S.
ADVERSARIAL = {
    "hashes": "####" * 250_000,
    "digits_commas": ("1," * 500_000),
    "answer_lines": (f"{CANON} 1,000,000,000,000\n" * 30_000)[:1_000_000],
    "mixed": ("#### 1,2,3,4,5 answer is \\boxed{ 9" * 40_000)[:1_000_000],
    "near_miss": ("#### The final answer is " + "9" * 1000 + ",") * 900,
}
ADVERSARIAL_TARGET_S = 1.0


def _completions(n: int) -> tuple[list[str], list[str]]:
    """n distinct completions of ~800 characters (~200 tokens), half of them with a wrong answer.

    Each is a real GSM8K solution in the trained format, its reasoning lengthened with reasoning lines
    from other solutions (real model-like text: arithmetic, units, dollar signs), so no two are equal.
    """
    with (GSM8K / "test.jsonl").open() as f:
        rows = [json.loads(line) for line in f]
    lines = [  # reasoning lines in the trained format, without their answer lines
        line for row in rows for line in training_solution(row["answer"]).splitlines()[1:-1]
    ]
    completions, golds = [], []
    for i in range(n):
        row = rows[i % len(rows)]
        gold = gold_from_solution(row["answer"])
        reasoning, answer_line = training_solution(row["answer"]).rsplit("\n", 1)
        j = i  # rows repeat every 1,319 (a prime) completions; a shifting filler keeps all n distinct
        reasoning += "\n" + lines[j % len(lines)]
        while len(reasoning) + len(answer_line) < 800:
            j += 1
            reasoning += "\n" + lines[j % len(lines)]
        if i % 2:
            answer_line = answer_line.rpartition(" ")[0] + " " + str(parse_number(gold) + 1)
        completions.append(f"{reasoning}\n{answer_line}")
        golds.append(gold)
    return completions, golds


def bench_gsm8k_rewards(n: int = 200_000) -> dict[str, float]:
    """Completions per second through both GSM8K rewards, batch by batch, cold caches."""
    completions, golds = _completions(n)
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


def grade_seconds(text: str) -> float:
    """Seconds the extractor takes on one completion (both GSM8K rewards read it once per batch)."""
    start = time.perf_counter()
    extract(text)
    return time.perf_counter() - start


def bench_adversarial() -> dict[str, float]:
    """Seconds to grade each adversarial megabyte: the answer regexes' worst case."""
    return {name: grade_seconds(text) for name, text in ADVERSARIAL.items()}


if __name__ == "__main__":
    print(json.dumps(bench_gsm8k_rewards(), indent=2))
