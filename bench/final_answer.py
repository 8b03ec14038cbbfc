"""The final answer decides: GSM8K solutions whose reasoning says "the answer is N" for an intermediate
result, graded before their `#### The final answer is N` line; and every gold solution, graded as is.

`reasoning_phrase_completions` rewrites real GSM8K train solutions deterministically: after the first
calculation line whose result differs from the gold answer it inserts a sentence such as "So the answer
is 24 clips for this part.", as a model thinking aloud writes. The final answer line is the gold one, so
every completion should score 1 on correctness and 0.5 on format.
"""

from __future__ import annotations

import json
import re
from importlib.resources import files

from grpo_rlvr.answers import parse_number
from grpo_rlvr.data import gold_from_solution, training_solution
from grpo_rlvr.rewards.gsm8k import gsm8k_correctness, gsm8k_format

# An intermediate result: `= N` (optionally `$N`), then the word after it when there is one (a unit).
_RESULT = re.compile(r"=\s*\$?(?P<n>\d[\d,]*(?:\.\d+)?)(?:\s+(?P<unit>[a-z]+))?")
_NOT_UNITS = {None, "per", "and", "to", "of", "for", "in", "on", "at", "is", "so", "x", "times", "each"}
PHRASES = (
    "So the answer is {n} {unit} for this part.",
    "The answer is {n} {unit} so far, but we are not done.",
    "That means the answer is {n} {unit} for the first step.",
    "The answer is {n} {unit}. Now we use it.",
    "For now, the answer is ${n}.",
    "The final answer is {n} {unit} only for this step.",
)


def gsm8k_rows(split: str) -> list[dict[str, str]]:
    """The GSM8K split shipped with the package."""
    text = (files("grpo_rlvr") / "gsm8k_data" / f"{split}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def reasoning_phrase_completions(rows: list[dict[str, str]]) -> tuple[list[str], list[str]]:
    """(completions, golds): one per row that has an intermediate result other than its gold answer."""
    completions, golds = [], []
    for row in rows:
        gold = gold_from_solution(row["answer"])
        *reasoning, answer_line = training_solution(row["answer"]).split("\n")
        for i, line in enumerate(reasoning):
            found = next(
                (m for m in _RESULT.finditer(line) if parse_number(m["n"]) != parse_number(gold)), None
            )
            if found is not None:
                phrase = PHRASES[len(completions) % len(PHRASES)]
                unit = found["unit"] if found["unit"] not in _NOT_UNITS else ""
                sentence = phrase.format(n=found["n"], unit=unit).replace("  ", " ")
                reasoning.insert(i + 1, sentence.replace(" .", "."))
                completions.append("\n".join([*reasoning, answer_line]))
                golds.append(gold)
                break
    return completions, golds


def scores(completions: list[str], golds: list[str]) -> dict[str, float]:
    """Share of completions graded correct, and share given the format reward."""
    correct = gsm8k_correctness(completions, final_answer=golds)
    formatted = gsm8k_format(completions)
    n = len(completions)
    return {"n": n, "correct": sum(correct) / n, "format": sum(f > 0 for f in formatted) / n}


def bench_final_answer() -> dict[str, dict[str, float]]:
    """Accuracy of the extractor on reasoning-phrase completions and on every gold solution."""
    train, test = gsm8k_rows("train"), gsm8k_rows("test")
    gold_rows = train + test
    golds = [gold_from_solution(r["answer"]) for r in gold_rows]
    return {
        "reasoning_phrases": scores(*reasoning_phrase_completions(train)),
        "gold_trained_format": scores([training_solution(r["answer"]) for r in gold_rows], golds),
        "gold_as_published": scores([r["answer"] for r in gold_rows], golds),
    }


if __name__ == "__main__":
    print(json.dumps(bench_final_answer(), indent=2))
