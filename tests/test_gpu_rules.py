"""What the pinned GPU stack cannot run is refused before any model loads, naming the keys and what
works instead; a model load under ZeRO-3 takes no device_map and stores 4-bit weights in the compute dtype."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, BitsAndBytesConfig

from grpo_rlvr import cli, gpu_rules
from grpo_rlvr.config.loading import load_config
from grpo_rlvr.config.sections import ConfigError
from grpo_rlvr.tiny import resolve_model_path

SEED, DEFAULT = "qwen2.5-0.5b-gsm8k-seed", "qwen2.5-0.5b-gsm8k"


@pytest.mark.parametrize(
    ("recipe", "overrides", "key"),
    [
        pytest.param(SEED, ["use_vllm=true"], "load_in_4bit", id="seed-with-vllm"),
        pytest.param(DEFAULT, ["load_in_4bit=true"], "load_in_4bit", id="default-in-4-bit"),
        pytest.param(DEFAULT, ["load_in_8bit=true"], "load_in_8bit", id="default-in-8-bit"),
        pytest.param(DEFAULT, ["load_in_4bit=true", "vllm_mode=server"], "load_in_4bit", id="server"),
    ],
)
def test_quantized_policy_with_vllm_is_refused_naming_both_and_what_works(
    recipe: str, overrides: list[str], key: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(recipe, overrides)
    message = str(refused.value)
    assert refused.value.key == key and "use_vllm: true" in message
    assert f"{key}: false with use_vllm: true" in message and "use_vllm: false to keep" in message


def test_the_cli_refuses_it_with_exit_2_before_any_model(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["train", "--recipe", SEED, "use_vllm=true", "--print-config"]) == 2
    assert "load_in_4bit: true with use_vllm: true cannot run" in capsys.readouterr().err


def test_the_baked_recipes_hand_vllm_no_quantization() -> None:
    for name in (SEED, DEFAULT):
        config = load_config(name)
        if config.training.use_vllm:
            assert gpu_rules.vllm_quantization(config.model.load_in_4bit, config.model.load_in_8bit) is None


def test_tied_head_rule_needs_all_three_tied_trained_apart_and_vllm(tiny_model: str) -> None:
    tied = AutoConfig.from_pretrained(resolve_model_path("builtin:tiny-qwen2"))
    assert tied.tie_word_embeddings
    assert gpu_rules.tied_head_problem(tied, ["embed_tokens"], use_vllm=True)[0] == "lora_modules_to_save"
    assert gpu_rules.tied_head_problem(tied, ["lm_head"], use_vllm=False) is None
    assert gpu_rules.tied_head_problem(tied, ["norm"], use_vllm=True) is None
    tied.tie_word_embeddings = False
    assert gpu_rules.tied_head_problem(tied, ["lm_head", "embed_tokens"], use_vllm=True) is None


def test_zero3_load_drops_the_device_map_and_stores_4_bit_weights_in_the_compute_dtype() -> None:
    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype="bfloat16")
    kwargs = {"device_map": {"": 0}, "quantization_config": quantization}
    assert gpu_rules.zero3_load_kwargs(kwargs, quantization) is None
    assert "device_map" not in kwargs and quantization.bnb_4bit_quant_storage == torch.bfloat16

    plain: dict = {"device_map": None}
    assert gpu_rules.zero3_load_kwargs(plain, None) is None and plain == {}

    other = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_compute_dtype="bfloat16", bnb_4bit_quant_storage="float16"
    )
    key, message = gpu_rules.zero3_load_kwargs({}, other)
    assert key == "bnb_4bit_quant_storage" and "torch.bfloat16" in message


def test_the_seed_recipe_validates_for_its_eight_process_zero3_command() -> None:
    """The header's `accelerate launch --config_file recipes/accelerate/zero3.yaml --num_processes 8`."""
    config = load_config(SEED, num_processes=8)
    assert config.model.load_in_4bit and not config.training.use_vllm
    assert config.model.dtype == "bfloat16"  # the compute dtype the 4-bit weights are stored in
