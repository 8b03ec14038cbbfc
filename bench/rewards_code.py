"""code_exec throughput: completions scored per second through the full sandbox (measured, not assumed)."""

from __future__ import annotations

import time

from grpo_rlvr.rewards.code_exec import code_exec
from grpo_rlvr.sandbox import check_sandbox

PASSING = "```python\ndef add(a, b):\n    return a + b\n```"
FAILING = "```python\ndef add(a, b):\n    return a - b\n```"
TESTS = "assert add(1, 2) == 3\nassert add(-1, 1) == 0\nassert add(0, 0) == 0\n"


def bench_code_exec(n: int = 64, workers: int = 4) -> float:
    """Completions per second for `n` completions (half pass, half fail) with `workers` sandboxes."""
    check_sandbox()  # the one-off self-check is not part of the steady state
    completions = [PASSING if i % 2 else FAILING for i in range(n)]
    start = time.perf_counter()
    scores = code_exec(completions, [TESTS] * n, workers=workers)
    elapsed = time.perf_counter() - start
    if scores != [0.2, 1.0] * (n // 2) + [0.2] * (n % 2):
        raise RuntimeError(f"code_exec scored the benchmark wrongly: {scores}")
    return n / elapsed


if __name__ == "__main__":
    for workers in (1, 2, 4):
        print(f"code_exec, {workers} workers: {bench_code_exec(64, workers):.1f} completions/s")
