"""What a launch decides before anything runs: the recipe and its overrides (hyperparameters, channels,
launch arguments), the processes (GPUs, or `cpu_processes`, x hosts) and the accelerate config; then
the validated `RunConfig`."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grpo_rlvr import sagemaker
from grpo_rlvr.config.loading import load_config, recipe_folders
from grpo_rlvr.config.sections import RunConfig
from grpo_rlvr.overrides import NotKeyValue, parse_overrides
from grpo_rlvr.redact import Redactor
from grpo_rlvr.sagemaker import ContractError, Paths, Resources

log = logging.getLogger("grpo_rlvr.launch")

RECIPE_ENV = "GRPO_RLVR_RECIPE"
DEFAULT_RECIPE = "qwen2.5-0.5b-gsm8k"
DEFAULT_ACCELERATE_CONFIG = "ddp"
# Hyperparameters for the launcher itself, not recipe keys.
RECIPE_KEY = "recipe"
ACCELERATE_CONFIG_KEY = "accelerate_config"
CPU_PROCESSES_KEY = "cpu_processes"  # processes per host where there is no GPU (default 1)


@dataclass(frozen=True)
class Plan:
    """Everything the launch decided, before anything runs."""

    recipe: str
    overrides: dict[str, Any]
    resources: Resources
    gpus: int
    accelerate_config: str | None
    cpu_processes: int = 1  # per host, where there is no GPU

    @property
    def processes(self) -> int:
        return (self.gpus or self.cpu_processes) * len(self.resources.hosts)


def make_plan(paths: Paths, cli_overrides: Sequence[str], redactor: Redactor) -> tuple[Plan, RunConfig]:
    """Read the contract, then validate recipe + overrides (before any model loads).

    Hyperparameters arrive as SageMaker's strings (`sagemaker.decode_value`); launch arguments are
    `key=value` text in the grammar `grpo-rlvr train` reads (`overrides.parse_overrides`).
    """
    hyperparameters = sagemaker.read_hyperparameters(paths)
    try:
        hyperparameters |= parse_overrides(cli_overrides)
    except NotKeyValue as err:
        raise ContractError(f"write launch arguments as key=value, not {err.item!r}") from err
    log.info("hyperparameters: %s", json.dumps(redactor.value(hyperparameters)))
    sagemaker.check_no_contract_keys(hyperparameters)
    resources = sagemaker.read_resources(paths)
    channels = sagemaker.read_channels(paths)
    recipe = str(hyperparameters.pop(RECIPE_KEY, None) or os.environ.get(RECIPE_ENV) or DEFAULT_RECIPE)
    accelerate_config = hyperparameters.pop(ACCELERATE_CONFIG_KEY, None)
    cpu_processes = _cpu_processes(hyperparameters.pop(CPU_PROCESSES_KEY, None))
    overrides = {**hyperparameters, **sagemaker.contract_overrides(paths, channels)}
    if len(resources.hosts) > 1:
        # Every host has its own /opt/ml/checkpoints: each needs a whole checkpoint to resume from.
        overrides.setdefault("save_on_each_node", True)
    accelerate_name = None if accelerate_config is None else str(accelerate_config)
    plan = Plan(recipe, overrides, resources, gpu_count(), accelerate_name, cpu_processes)
    if plan.gpus and cpu_processes != 1:
        raise ContractError(
            f"fix hyperparameter `{CPU_PROCESSES_KEY}`: this host has {plan.gpus} GPU(s), one process each; "
            f"{CPU_PROCESSES_KEY} is for hosts without a GPU"
        )
    if plan.processes > 1 or accelerate_name is not None:
        accelerate_config_path(plan.accelerate_config)  # a wrong name fails now, not after the model loads
    return plan, load_config(plan.recipe, overrides, num_processes=plan.processes)


def _cpu_processes(value: Any) -> int:
    """The `cpu_processes` launch setting: a whole number of processes, at least 1."""
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ContractError(
            f"fix hyperparameter `{CPU_PROCESSES_KEY}`: a whole number of at least 1, not {value!r}"
        )
    return value


def gpu_count() -> int:
    """GPUs on this host, as training will see them."""
    import torch

    return torch.cuda.device_count()


def accelerate_config_path(name: str | None) -> Path:
    """A config from `recipes/accelerate/` (baked or the repo's) by name, or a path; by default DDP."""
    chosen = name or DEFAULT_ACCELERATE_CONFIG
    if Path(chosen).suffix in (".yaml", ".yml"):
        candidates = [Path(chosen)]
    else:
        candidates = [root / "accelerate" / f"{chosen}.yaml" for root in recipe_folders()]
    for path in candidates:
        if path.is_file():
            return path
    known = sorted({p.stem for c in candidates for p in c.parent.glob("*.yaml")})
    raise ContractError(
        f"fix hyperparameter `{ACCELERATE_CONFIG_KEY}`: no accelerate config {chosen!r}; "
        f"known: {', '.join(known) or 'none'}"
    )
