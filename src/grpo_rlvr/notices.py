"""Library notices that flag nothing wrong on a healthy run, silenced before those libraries load.

Each is matched by its logger and the start of its message, so every other warning of the same library
still shows. The package calls `quiet_notices` when it is imported, so every entry point (the CLI, the
launcher's children, `python -m grpo_rlvr.reproduce`, the benchmarks) prints the same clean log.
"""

from __future__ import annotations

import logging

# logger name -> message starts that say nothing is wrong
NOTICES = {
    # bitsandbytes on CPUs with AVX512-BF16: an optional hub kernel for 4-bit CPU matmuls is not installed.
    "bitsandbytes.backends.cpu.ops": ("Failed to load CPU gemm_4bit_forward from kernels-community",),
    # DeepSpeed on a host without a GPU (CPU runs, the launcher, tests): CPU is the right choice there.
    "DeepSpeed": ("Setting accelerator to CPU. If you have GPU or other accelerator",),
}


class _DropNotices(logging.Filter):
    def __init__(self, starts: tuple[str, ...]) -> None:
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.starts)


def quiet_notices() -> None:
    """Install the filters (once): a logger keeps its filters when its library configures it later."""
    for name, starts in NOTICES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNotices) for f in logger.filters):
            logger.addFilter(_DropNotices(starts))
