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

_FENCE = re.compile(r"```([^\n`]*)\n(.*?)```", re.DOTALL)
_PYTHON_TAGS = {"", "python", "py", "python3"}


def extract_code(text: str, whole_completion: bool = False) -> str | None:
    """The first closed fence tagged python/py/python3 or untagged; the whole text by option."""
    if whole_completion:
        code = text
    else:
        code = next((m[2] for m in _FENCE.finditer(text) if m[1].strip().lower() in _PYTHON_TAGS), "")
    return code if code.strip() else None


@register("code_exec", columns=("tests",))
def code_exec(
    completions: list,
    tests: list[str],
    *,
    partial: float = PARTIAL_REWARD,
    whole_completion: bool = False,
    workers: int | None = None,
    timeout: float = Limits.timeout,
    memory_mb: int = Limits.memory_mb,
    max_processes: int = Limits.max_processes,
    max_file_mb: int = Limits.max_file_mb,
    disk_mb: int = Limits.disk_mb,
    max_output_bytes: int = Limits.max_output_bytes,
    **_columns: object,  # TRL passes every dataset column; options are checked by name in config
) -> list[float]:
    """Score each completion's code against its row's tests, `workers` sandboxes at a time."""
    check_sandbox()
    limits = Limits(timeout, memory_mb, max_processes, max_file_mb, disk_mb, max_output_bytes)

    def score(completion: str | list[dict], row_tests: str) -> float:
        code = extract_code(completion_text(completion), whole_completion)
        return 0.0 if code is None else run_program(code, row_tests, limits).score(partial)

    if len(completions) != len(tests):
        raise ValueError(f"code_exec: {len(completions)} completions but {len(tests)} tests")
    workers = workers or min(4, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(score, completions, tests))
