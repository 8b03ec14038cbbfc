"""What the pinned GPU stack cannot run, found before any model loads, and what a model load under
DeepSpeed ZeRO-3 must do differently.

Each rule is read from the pinned libraries' source (TRL 1.16, vLLM 0.31, transformers 5.17, PEFT 0.21,
DeepSpeed 0.19):
- TRL's colocated vLLM is built with `quantization="bitsandbytes"` for a 4-bit policy (and refuses an
  8-bit one); vLLM 0.31 registers no `bitsandbytes` method, so the trainer would fail while starting.
- TRL pushes the policy's weights into vLLM one at a time under vLLM's names. A model with tied
  embeddings is tied in vLLM too, so a separately trained `lm_head` (PEFT's `modules_to_save`) has no
  place there: vLLM refuses it at the first weight sync.
- transformers refuses a `device_map` under ZeRO-3, and ZeRO-3 partitions a 4-bit model only when its
  packed weights are stored in the compute dtype (`bnb_4bit_quant_storage`).

The rules return (key, message) pairs; `config` and `train` raise them as the ConfigError they are.
"""

from __future__ import annotations

from typing import Any

HEAD_MODULES = ("lm_head", "embed_tokens")  # the two ends of a tied-embedding model


def vllm_quantization(load_in_4bit: bool, load_in_8bit: bool) -> str | None:
    """The `quantization` TRL 1.16 hands to vLLM's LLM for a policy loaded this way."""
    return "bitsandbytes" if load_in_4bit else "in-flight 8-bit" if load_in_8bit else None


def vllm_engine_settings(model_args: Any, training: Any) -> dict[str, Any]:
    """The settings TRL 1.16's colocated generation hands to vLLM's `LLM` for this config (with the
    fixed ones TRL always passes): what the image's vLLM must accept."""
    return {
        "quantization": vllm_quantization(model_args.load_in_4bit, model_args.load_in_8bit),
        "model_impl": training.vllm_model_impl,
        "distributed_executor_backend": "external_launcher",
        "logprobs_mode": "processed_logprobs",
        "enable_sleep_mode": training.vllm_enable_sleep_mode,
    }


def vllm_problem(model_args: Any, training: Any) -> tuple[str, str] | None:
    """A quantized policy with vLLM generation: (key, message), else None."""
    if not (training.use_vllm and (model_args.load_in_4bit or model_args.load_in_8bit)):
        return None
    bits = "load_in_4bit" if model_args.load_in_4bit else "load_in_8bit"
    return (
        bits,
        f"{bits}: true with use_vllm: true cannot run: TRL builds a colocated vLLM engine with bitsandbytes "
        "quantization, which this image's vLLM does not provide (a vLLM server would be sent packed "
        "quantized weights), and every weight sync would round the merged LoRA update into re-quantized "
        "weights. Use one of: "
        f"{bits}: false with use_vllm: true (LoRA on a bf16 base; a 0.5B-7B model fits one GPU), or "
        "use_vllm: false to keep the quantized base (QLoRA) and generate with transformers",
    )


def tied_head_problem(
    model_config: Any, modules_to_save: list[str] | None, use_vllm: bool
) -> tuple[str, str] | None:
    """A tied-embedding model whose head or embeddings train in full, synced into vLLM: (key, message)."""
    trained = sorted({m for m in modules_to_save or () for h in HEAD_MODULES if m.split(".")[-1] == h})
    if not (use_vllm and trained and getattr(model_config, "tie_word_embeddings", False)):
        return None
    return (
        "lora_modules_to_save",
        f"{trained} with use_vllm: true: {model_config.model_type} ties lm_head to embed_tokens, and vLLM "
        "keeps them tied, so a separately trained copy cannot be synced into it (vLLM refuses lm_head at the "
        "first weight sync). Use one of: use_vllm: false (generation with transformers; the merged model "
        "is saved untied, with tie_word_embeddings: false), or leave lm_head and embed_tokens out of "
        "lora_modules_to_save",
    )


def zero3_load_kwargs(kwargs: dict[str, Any], quantization: Any) -> tuple[str, str] | None:
    """Adapt `from_pretrained` arguments to DeepSpeed ZeRO-3 in place: no `device_map` (ZeRO-3 places
    the weights), a 4-bit model's packed weights stored in the compute dtype so they partition like the
    rest. A recipe that sets another storage dtype is (key, message)."""
    kwargs.pop("device_map", None)
    if quantization is None or not quantization.load_in_4bit:
        return None
    compute = quantization.bnb_4bit_compute_dtype
    stored = quantization.bnb_4bit_quant_storage
    if str(stored) not in ("torch.uint8", str(compute)):  # uint8: transformers' default, i.e. unset
        return (
            "bnb_4bit_quant_storage",
            f"{stored} under DeepSpeed ZeRO-3: the 4-bit weights must be stored in the compute dtype "
            f"({compute}, from `dtype`) to be partitioned; leave bnb_4bit_quant_storage unset",
        )
    quantization.bnb_4bit_quant_storage = compute
    return None
