"""What is installed: recorded in run_summary.json and metrics.json and printed by `grpo-rlvr env`, so
every result says which stack produced it."""

from __future__ import annotations

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
