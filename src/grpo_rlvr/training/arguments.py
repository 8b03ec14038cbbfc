"""The trainer's `GRPOConfig`: built once, as a new object, from the validated (and unchanged) config.

The recipe's `GRPOConfig` is what `run_summary.json` records; the few values the trainer must see
differently are set here, on a copy, and nowhere else.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
from trl import GRPOConfig

from grpo_rlvr.config.sections import RunConfig
from grpo_rlvr.training.generation import generation_kwargs


def trainer_arguments(config: RunConfig, end_ids: list[int]) -> GRPOConfig:
    """The recipe's GRPOConfig as the trainer must see it, in a new object (its containers copied too)."""
    args = copy.copy(config.training)
    for field in dataclasses.fields(args):
        value = getattr(args, field.name)
        if isinstance(value, dict | list):
            setattr(args, field.name, copy.deepcopy(value))  # TRL and transformers edit some in place
    # transformers would rotate before the new checkpoint is complete: `RotateCompleteCheckpoints`
    # applies the recipe's limit once the new one is marked.
    args.save_total_limit = None
    args.model_init_kwargs = None  # `model.load_model` applied them; TRL would warn that they are ignored
    args.generation_kwargs = generation_kwargs(config, end_ids)
    use_plain_cpu_device(args)
    return args


def use_plain_cpu_device(args: GRPOConfig) -> None:
    """Give a multi-process CPU run the device `cpu`, not accelerate's `cpu:0`, so it can resume.

    With several processes transformers loads the optimizer state with `map_location=args.device`, and
    `torch.load` cannot map to "cpu:0" (the same device as "cpu"). `TrainingArguments.device` reads the
    `_setup_devices` cached property, so its cached value is replaced; the accelerator keeps its own.
    """
    if args.device.type == "cpu" and args.device.index is not None:
        args.__dict__["_setup_devices"] = torch.device("cpu")
