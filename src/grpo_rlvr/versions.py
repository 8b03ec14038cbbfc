"""What is installed: recorded in run_summary.json and metrics.json and printed by `grpo-rlvr env`, so
every result says which stack produced it."""

from __future__ import annotations

import importlib.util
from importlib.metadata import PackageNotFoundError, version

STACK = ("grpo-rlvr", "torch", "trl", "transformers", "peft", "accelerate", "datasets", "bitsandbytes",
         "deepspeed", "vllm", "flash-attn", "mlflow", "sagemaker-training", "matplotlib")  # fmt: skip


def package_versions(names: tuple[str, ...] = STACK) -> dict[str, str | None]:
    """Each package's installed version, None where it is not installed (vLLM and flash-attn on CPU)."""
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def attention_choice(requested: str | None = None) -> tuple[str, str]:
    """The attention implementation training will use, and why: the recipe's choice, else flash-attn 2
    where it can run, else PyTorch's sdpa (an image built without a flash-attn wheel)."""
    if requested:
        return requested, "from the recipe"
    if importlib.util.find_spec("flash_attn") is None:
        return "sdpa", "flash_attn is not installed: an image built without FLASH_ATTN_WHEEL_URL"
    import torch

    if not torch.cuda.is_available():
        return "sdpa", "flash_attn is installed but no CUDA device is visible"
    return "flash_attention_2", "flash_attn is installed and a CUDA device is visible"
