"""A PEFT adapter merged into its base: the one way training writes its merged model and evaluation loads
an adapter (plain layers generate faster, and vLLM loads plain weights only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def merged_model(
    base: str, adapter: str | Path, dtype: Any, revision: str | None = None, trust_remote_code: bool = False
) -> Any:
    """The base loaded fresh in `dtype` (so a QLoRA adapter merges into full-precision weights, never into
    4-bit ones, which would round the update away), with the adapter merged into its weights."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        base, revision=revision, dtype=dtype, trust_remote_code=trust_remote_code
    )
    return PeftModel.from_pretrained(model, adapter).merge_and_unload()
