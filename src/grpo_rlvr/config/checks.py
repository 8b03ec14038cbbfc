"""Checks that need more than one setting, the reward registry or the file system, and the values derived
from them once (the prompt format, the reward functions, the default eval shots); `check_device`, which
a run calls before it loads anything."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import TYPE_CHECKING

from grpo_rlvr import cuda, gpu_rules
from grpo_rlvr.config.sections import (
    ConfigError,
    DataArguments,
    RewardArguments,
    RunArguments,
    RunConfig,
    did_you_mean,
    shown,
)
from grpo_rlvr.data import PACKAGED_GSM8K
from grpo_rlvr.files import is_local_path, local_path
from grpo_rlvr.prompt_format import DEFAULT, PromptFormat
from grpo_rlvr.tiny import BUILTIN_PREFIX, BUILTINS, builtin_names

if TYPE_CHECKING:
    from trl import GRPOConfig, ModelConfig

    from grpo_rlvr.cuda import CudaStatus

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
# Integrations transformers' availability list leaves out: only the trainer can tell whether they work.
UNLISTED_INTEGRATIONS = ("flyte", "kubeflow")
NEEDS_VAL = "set val_dataset_path or val_fraction"


def local_path_exists(key: str, path: str | Path) -> bool:
    """Whether a local path exists; a name the file system cannot even look up is the key's error."""
    try:
        return local_path(path).exists()
    except OSError as err:  # a name too long (ENAMETOOLONG), or a component that is no folder
        raise ConfigError(key, f"{shown(path)} is not a usable path: {err.strerror}") from err
    except ValueError as err:  # an embedded NUL byte
        raise ConfigError(key, f"{shown(path)} is not a usable path: {err}") from err


def check_device(config: RunConfig, status: CudaStatus | None = None) -> None:
    """A recipe that does not ask for the CPU trains on a GPU: where CUDA is not usable, refuse, saying
    what was found, before anything is downloaded or loaded (never a silent CPU run)."""
    if config.cpu_on_purpose:
        return
    problem = (status or cuda.probe()).problem
    if problem is not None:
        found = f"this recipe trains on a GPU, but CUDA is not usable here: {problem}"
        raise ConfigError("use_cpu", f"{found}; {cuda.CPU_ON_PURPOSE}")


def validated(
    recipe: str,
    path: Path,
    training: GRPOConfig,
    model: ModelConfig,
    data: DataArguments,
    rewards: RewardArguments,
    run: RunArguments,
) -> RunConfig:
    """The checks that need more than one field, or the registry, or the file system; then the config,
    with every derived value (prompt format, reward functions, default eval shots) computed here, once."""
    if (model.load_in_4bit or model.load_in_8bit) and not model.use_peft:
        raise ConfigError("use_peft", "a 4/8-bit base cannot be trained directly: set use_peft: true (QLoRA)")
    if problem := gpu_rules.vllm_problem(model, training):
        raise ConfigError(*problem)
    chosen_format = prompt_format(data)
    funcs = reward_functions(rewards, chosen_format)
    has_val = bool(data.val_dataset_path or data.val_fraction)
    if run.eval_at_end and not has_val:
        raise ConfigError("eval_at_end", f"needs validation rows: {NEEDS_VAL}")
    if training.eval_strategy != "no" and not has_val:
        raise ConfigError("eval_strategy", f"needs validation rows: {NEEDS_VAL}, or set it to no")
    _check_report_to(training.report_to)
    if run.eval_shots is None:
        run = dataclasses.replace(run, eval_shots=[data.num_shots])
    if training.reward_weights is not None and len(training.reward_weights) != len(funcs):
        raise ConfigError(
            "reward_weights",
            f"{len(training.reward_weights)} weights for {len(funcs)} rewards {rewards.rewards}",
        )
    if training.use_vllm and training.vllm_max_model_length is not None:
        needed = data.max_prompt_tokens + (training.max_completion_length or 0)
        if training.vllm_max_model_length < needed:
            raise ConfigError(
                "vllm_max_model_length",
                f"{training.vllm_max_model_length} < max_prompt_tokens + "
                f"max_completion_length = {needed}: vLLM would reject the longest prompts",
            )
    return RunConfig(recipe, path, training, model, data, rewards, run, funcs, chosen_format)


def _check_report_to(report_to: list[str]) -> None:
    """Every integration named is one transformers knows and is installed here (the trainer would fail
    on it only after the model has loaded)."""
    from transformers.integrations import INTEGRATION_TO_CALLBACK, get_available_reporting_integrations

    installed = get_available_reporting_integrations()
    for name in report_to:
        if name not in INTEGRATION_TO_CALLBACK:
            known = did_you_mean(name, INTEGRATION_TO_CALLBACK)
            raise ConfigError("report_to", f"unknown integration {name!r}{known}")
        if name not in installed and name not in UNLISTED_INTEGRATIONS:
            raise ConfigError(
                "report_to",
                f"{name} is not installed in this environment: install it, or remove it from report_to "
                f"(installed: {', '.join(installed) or 'none'})",
            )


def check_model_path(name: str | None) -> None:
    if not name:
        raise ConfigError(
            "model_name_or_path",
            f"required: a hub id (org/name), a local folder or a built-in ({builtin_names()})",
        )
    if name.startswith(BUILTIN_PREFIX):
        if name.removeprefix(BUILTIN_PREFIX) not in BUILTINS:
            raise ConfigError(
                "model_name_or_path", f"unknown built-in {name!r}; available: {builtin_names()}"
            )
        return
    if local_path_exists("model_name_or_path", name):
        if not (local_path(name) / "config.json").is_file():
            raise ConfigError(
                "model_name_or_path", f"{shown(name)} has no config.json: not a transformers model folder"
            )
        return
    _check_hub_id("model_name_or_path", name, f"local path {shown(name)} does not exist")


def check_data_path(key: str, source: str | None) -> None:
    if source and source != PACKAGED_GSM8K and not local_path_exists(key, source):
        _check_hub_id(key, source, f"{shown(source)} does not exist")


def _check_hub_id(key: str, name: str, missing: str) -> None:
    """A name that is no local path must be a valid hub id (org/name, at most 96 characters)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if is_local_path(name) or not _HUB_ID.fullmatch(name):
        raise ConfigError(key, f"{missing} (a hub id looks like org/name)")
    try:
        validate_repo_id(name)
    except HFValidationError as err:
        raise ConfigError(
            key, f"{missing}, and it is no valid hub id (org/name: at most 96 letters, digits, '-', '_', '.')"
        ) from err


def prompt_format(data: DataArguments) -> PromptFormat:
    """The recipe's `prompt_format` over the default, checked, and read back by the extractor."""
    from grpo_rlvr.answers import extract

    settings = data.prompt_format or {}
    fields = [f.name for f in dataclasses.fields(PromptFormat)]
    for name in settings:
        if name not in fields:
            raise ConfigError("prompt_format", f"unknown field {name!r}" + did_you_mean(name, fields))
    try:
        chosen = PromptFormat.from_settings(settings)
        chosen.check()
    except (TypeError, ValueError) as err:
        raise ConfigError("prompt_format", str(err)) from err
    probe = chosen.answer_line.format(1234)
    answer = extract(probe, chosen.canonical)
    if answer.value != 1234 or not answer.canonical:
        raise ConfigError("prompt_format", f"answer_line: the extractor cannot read the number in {probe!r}")
    try:
        chosen.check_shots([data.num_shots], data.num_shots)
    except ValueError:
        raise ConfigError(
            "num_shots", f"{data.num_shots} shots but prompt_format has {len(chosen.exemplars)} exemplars"
        ) from None
    return chosen


_LOADED_REWARD_MODULES: set[Path] = set()  # a module registers its rewards once per process


def reward_functions(rewards: RewardArguments, prompt_format: PromptFormat = DEFAULT) -> list:
    """Registry names -> reward callables, after a user reward module (if any) has registered its own;
    every `reward_kwargs` option must be one the reward takes."""
    from grpo_rlvr import rewards as registry
    from grpo_rlvr.rewards.user import load_reward_module

    module = None
    if rewards.reward_module:
        local_path_exists("reward_module", rewards.reward_module)  # a name too long is a setting to fix
        module = Path(rewards.reward_module).resolve()
    if module and module not in _LOADED_REWARD_MODULES:
        try:
            load_reward_module(module)
        except ValueError as err:  # RewardModuleError names the file and the cause
            raise ConfigError("reward_module", str(err)) from err
        _LOADED_REWARD_MODULES.add(module)
    try:
        funcs = registry.resolve(rewards.rewards, rewards.reward_kwargs, prompt_format)
    except ValueError as err:
        raise ConfigError("rewards", str(err)) from err
    for name, options in (rewards.reward_kwargs or {}).items():
        known = registry.reward_options(registry.REGISTRY[name])
        for option in options:
            if option not in known:
                raise ConfigError(
                    "reward_kwargs",
                    f"unknown option {option!r} of reward {name!r}"
                    + did_you_mean(option, known)
                    + f"; its options: {known or 'none'}",
                )
    return funcs
