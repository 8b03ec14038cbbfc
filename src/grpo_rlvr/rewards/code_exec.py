"""`code_exec`: run the completion's Python against the row's tests in the code sandbox
(`grpo_rlvr.sandbox`; docs/rewards.md says what is isolated where and why the verdict cannot be forged).

Scores: 0.0 for no code, a syntax error, a program that raises or exits, a timeout, a limit exceeded, a
crash or any tampering; `partial` (0.2) when the program runs but a test unit fails; 1.0 when every
unit passes.

Tests format (the `tests` column): a string of Python. Every top-level statement is one test unit,
run in order by the judge after the program ran. A top-level `assert` passes when its condition is
truthy; any other statement (imports, helpers, loops) passes when it runs without raising. At least one
top-level `assert` is required. `if __name__ == "__main__":` blocks in the program do not run.
"""

from __future__ import annotations

import concurrent.futures
import os
import re

from grpo_rlvr.rewards import completion_text, register
from grpo_rlvr.sandbox import Limits, check_sandbox, run_program
from grpo_rlvr.sandbox.host import PARTIAL_REWARD

# Where a completed function body ends, as the Codex paper (and bigcode's harness) cut HumanEval
# completions: a new top-level definition, statement or comment (`\nif` covers `if __name__ == ...`).
BODY_END = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
_FENCE = re.compile(r"```([^\n`]*)\n(.*?)```", re.DOTALL)
_PYTHON_TAGS = {"", "python", "py", "python3"}


def extract_code(text: str, whole_completion: bool = False) -> str | None:
    """The first closed fence tagged python/py/python3 or untagged; the whole text by option."""
    if whole_completion:
        code = text
    else:
        code = next((m[2] for m in _FENCE.finditer(text) if m[1].strip().lower() in _PYTHON_TAGS), "")
    return code if code.strip() else None


def completed_function(prompt: str, completion: str) -> str:
    """The program of a completion that continues its prompt's code (HumanEval's style): prompt plus
    completion, cut where the body ends (`BODY_END`), as generation's stop strings cut it."""
    cuts = [i for i in (completion.find(s) for s in BODY_END) if i >= 0]
    return prompt + (completion[: min(cuts)] if cuts else completion)


@register("code_exec", columns=("tests",))
def code_exec(
    completions: list,
    tests: list[str],
    *,
    prompts: list | None = None,
    partial: float = PARTIAL_REWARD,
    whole_completion: bool = False,
    complete_prompt: bool = False,
    workers: int | None = None,
    timeout: float = Limits.timeout,
    memory_mb: int = Limits.memory_mb,
    max_processes: int = Limits.max_processes,
    max_file_mb: int = Limits.max_file_mb,
    disk_mb: int = Limits.disk_mb,
    max_output_bytes: int = Limits.max_output_bytes,
    **_columns: object,  # TRL passes every dataset column; options are checked by name in config
) -> list[float]:
    """Score each completion's code against its row's tests, `workers` sandboxes at a time.

    The code is the first Python fence of the completion, the whole completion (`whole_completion`), or,
    with `complete_prompt`, the text prompt followed by the completion (`completed_function`): the
    prompt holds a function's signature and docstring and the model writes its body, as in HumanEval."""
    if len(completions) != len(tests):
        raise ValueError(f"code_exec: {len(completions)} completions but {len(tests)} tests")
    if complete_prompt and (whole_completion or not all(isinstance(p, str) for p in prompts or [None])):
        raise ValueError("code_exec: complete_prompt needs text prompts and excludes whole_completion")
    check_sandbox()
    limits = Limits(timeout, memory_mb, max_processes, max_file_mb, disk_mb, max_output_bytes)

    def score(completion: str | list[dict], row_tests: str, prompt: str | None) -> float:
        text = completion_text(completion)
        if complete_prompt:
            code: str | None = completed_function(prompt or "", text)
        else:
            code = extract_code(text, whole_completion)
        return 0.0 if code is None else run_program(code, row_tests, limits).score(partial)

    workers = workers or min(4, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(score, completions, tests, prompts or [None] * len(completions)))
