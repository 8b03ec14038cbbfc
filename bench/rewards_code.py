"""code_exec throughput: programs scored per second through the full sandbox (measured, not assumed),
and how that scales with `workers` (concurrent sandboxes)."""

from __future__ import annotations

import time

from grpo_rlvr.rewards.code_exec import code_exec
from grpo_rlvr.sandbox import check_sandbox

PASSING = "```python\ndef add(a, b):\n    return a + b\n```"
FAILING = "```python\ndef add(a, b):\n    return a - b\n```"
TESTS = "assert add(1, 2) == 3\nassert add(-1, 1) == 0\nassert add(0, 0) == 0\n"
WORKERS = (1, 2, 4)


def bench_code_exec(n: int = 64, workers: int = 4) -> float:
    """Completions per second for `n` completions (half pass, half fail) with `workers` sandboxes."""
    check_sandbox()  # the one-off self-check (and the fork server's start) is not the steady state
    completions = [PASSING if i % 2 else FAILING for i in range(n)]
    start = time.perf_counter()
    scores = code_exec(completions, [TESTS] * n, workers=workers)
    elapsed = time.perf_counter() - start
    if scores != [0.2, 1.0] * (n // 2) + [0.2] * (n % 2):
        raise RuntimeError(f"code_exec scored the benchmark wrongly: {scores}")
    return n / elapsed


def bench_code_exec_scaling(n: int = 64, workers: tuple[int, ...] = WORKERS) -> dict[str, float]:
    """Completions per second for each number of workers, `n` completions each."""
    return {str(w): bench_code_exec(n, w) for w in workers}


if __name__ == "__main__":
    for w, rate in bench_code_exec_scaling().items():
        print(f"code_exec, {w} workers: {rate:.1f} completions/s")
