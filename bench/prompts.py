"""Prompt building and tokenizing for a GSM8K split: the data set-up every run pays before its first step."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from transformers import AutoTokenizer

from grpo_rlvr import data
from grpo_rlvr.tiny import resolve_model_path

GSM8K_TRAIN = data.packaged_gsm8k("train")


def bench_prompts(
    path: Path = GSM8K_TRAIN, shots: int = 8, limit: int | None = None
) -> dict[str, float | int]:
    """Seconds to load, build k-shot prompts for and tokenize (as the prompt-length check does) a split.

    The same functions `training.rows.prepare_data` calls, timed stage by stage, with the tiny tokenizer (a
    byte-level BPE with Qwen2's normalizer and pre-tokenizer, so the text pipeline is Qwen2's).
    """
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("builtin:tiny-qwen2"))  # not timed: cached
    start = time.perf_counter()
    rows, _ = data.load_examples(path)
    rows = rows[:limit]
    loaded = time.perf_counter()
    prompted = data.add_prompts(rows, shots)
    built = time.perf_counter()
    lengths = data.prompt_lengths(prompted, tokenizer)
    tokenized = time.perf_counter()
    return {
        "rows": len(rows),
        "shots": shots,
        "load_s": loaded - start,
        "build_s": built - loaded,
        "tokenize_s": tokenized - built,
        "total_s": tokenized - start,
        "prompt_tokens_per_s": sum(lengths) / (tokenized - built),
        "mean_prompt_tokens": statistics.fmean(lengths),
        "max_prompt_tokens": max(lengths),
        "mean_prompt_chars": statistics.fmean(len(row["prompt"]) for row in prompted),
        "tokenizer_vocab": len(tokenizer),
    }


if __name__ == "__main__":
    print(json.dumps(bench_prompts(), indent=2))
