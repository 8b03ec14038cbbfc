"""The policy model: loading (full precision, or 4/8-bit for QLoRA), LoRA targets, trained-module dtypes."""

from __future__ import annotations

import logging
from copy import copy as shallow_copy
from typing import Any

import torch
from accelerate import PartialState
from transformers import AutoConfig, AutoModelForCausalLM
from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled
from trl import GRPOConfig, ModelConfig, get_quantization_config

from grpo_rlvr import gpu_rules
from grpo_rlvr.config.sections import ConfigError, RunConfig
from grpo_rlvr.versions import attention_choice

log = logging.getLogger(__name__)


def attention_implementation(requested: str | None) -> str:
    """`versions.attention_choice`, logged: the same answer `grpo-rlvr env` gives."""
    name, why = attention_choice(requested)
    log.info("attention: %s (%s)", name, why)
    return name


def torch_dtype(name: str | None) -> torch.dtype | str | None:
    """ModelConfig's dtype names -> torch dtypes; "auto" and None pass through."""
    return name if name in (None, "auto") else getattr(torch, name)


def load_model(path: str, model_args: ModelConfig, args: GRPOConfig) -> torch.nn.Module:
    """The policy: full precision in `dtype`, or 4/8-bit via bitsandbytes prepared for QLoRA training."""
    kwargs: dict[str, Any] = {
        "revision": model_args.model_revision,
        "dtype": torch_dtype(model_args.dtype),
        "attn_implementation": attention_implementation(model_args.attn_implementation),
        "trust_remote_code": args.trust_remote_code,
        **(args.model_init_kwargs or {}),
    }
    quantization = get_quantization_config(model_args)
    if quantization is not None:
        kwargs["quantization_config"] = quantization
        kwargs["device_map"] = {"": PartialState().local_process_index} if torch.cuda.is_available() else None
    if is_deepspeed_zero3_enabled() and (problem := gpu_rules.zero3_load_kwargs(kwargs, quantization)):
        raise ConfigError(*problem)
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if quantization is not None:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=args.gradient_checkpointing,
            gradient_checkpointing_kwargs=args.gradient_checkpointing_kwargs,
        )
    return model


def check_vllm_head(path: str, config: RunConfig) -> None:
    """`gpu_rules.tied_head_problem` on the model's config, before the weights load."""
    model_config = AutoConfig.from_pretrained(
        path, revision=config.model.model_revision, trust_remote_code=config.training.trust_remote_code
    )
    modules = config.model.lora_modules_to_save
    if problem := gpu_rules.tied_head_problem(model_config, modules, config.training.use_vllm):
        raise ConfigError(*problem)


def check_lora_targets(peft_config: Any, path: str, model_args: ModelConfig, args: GRPOConfig) -> None:
    """Every `lora_target_modules` entry must name a module of the model, found on the architecture
    built on the meta device (no weights): a typo otherwise fails only after the model has loaded."""
    from peft.tuners.tuners_utils import check_target_module_exists
    from peft.utils.constants import INCLUDE_LINEAR_LAYERS_SHORTHAND

    targets = peft_config.target_modules
    if targets is None or targets == INCLUDE_LINEAR_LAYERS_SHORTHAND:
        return  # PEFT's own default for the architecture, or every linear layer
    model_config = AutoConfig.from_pretrained(
        path, revision=model_args.model_revision, trust_remote_code=args.trust_remote_code
    )
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(model_config, trust_remote_code=args.trust_remote_code)
    names = [name for name, _ in skeleton.named_modules() if name]
    entries = [targets] if isinstance(targets, str) else sorted(targets)
    for entry in entries:
        single = shallow_copy(peft_config)
        single.target_modules = entry if isinstance(targets, str) else {entry}
        if not any(check_target_module_exists(single, name) for name in names):
            leaves = sorted(
                {name.rpartition(".")[2] for name in names if not name.rpartition(".")[2].isdigit()}
            )
            raise ConfigError(
                "lora_target_modules",
                f"{entry!r} matches no module of {model_config.model_type}; its module names: {leaves}",
            )


def match_saved_modules(model: torch.nn.Module) -> None:
    """Fully trained modules (`lora_modules_to_save`) keep the dtype of the layer they copy.

    For a quantized base TRL casts every trainable parameter to bf16 (meant for LoRA A/B), so the trained
    copy of `lm_head` would be bf16 behind fp32 norms and fail in `generate` ("float != BFloat16")."""
    for module in model.modules():
        original, copies = getattr(module, "original_module", None), getattr(module, "modules_to_save", None)
        if original is None or copies is None:
            continue
        dtype = next(original.parameters()).dtype
        for copy in copies.values():
            copy.to(dtype)
