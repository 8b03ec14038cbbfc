"""One GRPO run, top to bottom: data -> rewards -> model -> trainer -> train -> save -> summary."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState
from accelerate.utils.memory import clear_device_cache
from transformers import AutoTokenizer, TrainerCallback
from trl import get_peft_config

from grpo_rlvr.checkpoints import (
    TrainingInterrupted,
    resume_point,
    weight_settings,
)
from grpo_rlvr.config.checks import check_device
from grpo_rlvr.config.sections import ConfigError, RunConfig
from grpo_rlvr.data import as_dataset
from grpo_rlvr.history import use_numeric_progress, write_history
from grpo_rlvr.tiny import BUILTIN_PREFIX, resolve_model_path
from grpo_rlvr.training.arguments import trainer_arguments
from grpo_rlvr.training.callbacks import (
    GracefulStop,
    MarkCompleteCheckpoints,
    RotateCompleteCheckpoints,
    StopOnNonFinite,
    check_checkpoint,
)
from grpo_rlvr.training.generation import StopAtAnswerTrainer, add_end_tokens, check_tokenizer
from grpo_rlvr.training.model import check_lora_targets, check_vllm_head, load_model, match_saved_modules
from grpo_rlvr.training.model_card import BaseModelCards
from grpo_rlvr.training.outputs import (
    ADAPTER_DIR,
    check_output_folders,
    evaluate_at_end,
    reward_means,
    save_model,
    write_summary,
)
from grpo_rlvr.training.rows import check_reward_columns, evaluation_rows, prepare_data
from grpo_rlvr.versions import package_versions

log = logging.getLogger(__name__)


class RunTrainer(BaseModelCards, StopAtAnswerTrainer):
    """The run's trainer: completions end at the stop rule, and its model cards name the base model."""


def run(config: RunConfig, callbacks: Sequence[TrainerCallback] = ()) -> dict[str, Any]:
    """Train, save and summarise one run; returns the run summary (written by the main process only)."""
    started = time.time()
    check_device(config)  # a GPU recipe where CUDA is not usable: refused before any download
    args = config.training  # the recipe's GRPOConfig, never changed: the trainer gets its own copy
    model_path = resolve_model_path(config.model.model_name_or_path)
    if config.model.model_name_or_path.startswith(BUILTIN_PREFIX):
        log.info(
            "%s is a random model: it scores 0 on GSM8K, so rewards and loss of 0 are expected",
            config.model.model_name_or_path,
        )
    if not torch.cuda.is_available():  # else DeepSpeed warns that it "was unable to detect" a GPU
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    model_dir, summary_dir = Path(config.run.model_dir), Path(config.run.summary_dir)
    check_output_folders(config)
    stop = GracefulStop()
    with stop.catching():
        # Data: validated rows, k-shot prompts, none cut.
        tokenizer = AutoTokenizer.from_pretrained(
            model_path, revision=config.model.model_revision, trust_remote_code=args.trust_remote_code,
            padding_side="left", truncation_side="left",
        )  # fmt: skip
        end_ids = check_tokenizer(config.data, config.prompt_format, tokenizer)
        train_rows, val_rows, data_info = prepare_data(
            config.data, tokenizer, args.seed, config.prompt_format
        )

        if args.eval_strategy != "no" and not val_rows:
            raise ConfigError("eval_strategy", "no validation rows are left: add some, or set it to no")
        train_dataset = as_dataset(train_rows)  # built now: a failure here costs no model load
        eval_dataset = as_dataset(val_rows) if val_rows else None

        # Rewards: registry names -> callables; every column they read must be in every row.
        funcs = config.reward_funcs
        check_reward_columns(funcs, train_rows + val_rows)
        eval_rows = evaluation_rows(val_rows, config.run.eval_limit) if config.run.eval_at_end else None

        # Resume point: the recipe's checkpoint, else the newest complete, unchanged one in output_dir;
        # either must have been written with this run's weight settings.
        settings = weight_settings(config.model)
        if args.resume_from_checkpoint:
            check_checkpoint(args.resume_from_checkpoint, settings)
        resume = args.resume_from_checkpoint or resume_point(args.output_dir, settings)
        if val_rows and args.eval_strategy == "no" and not config.run.eval_at_end:
            log.warning("%d validation rows are not used: set eval_strategy (e.g. steps)", len(val_rows))

        stop.raise_if_requested(resume)  # a SIGTERM while loading data: the model would take minutes

        # Model: the LoRA targets are matched against the architecture first, built without weights.
        peft_config = get_peft_config(config.model)
        if peft_config is not None:
            check_lora_targets(peft_config, model_path, config.model, args)
        if args.use_vllm and config.model.lora_modules_to_save:
            check_vllm_head(model_path, config)
        model = load_model(model_path, config.model, args)

        # Trainer: completions end at the model's EOS, the recipe's end tokens and (by default) the stop rule
        add_end_tokens(model, end_ids)
        trainer = RunTrainer(
            model=model,
            base_model=config.model.model_name_or_path,
            reward_funcs=funcs,
            args=trainer_arguments(config, end_ids),
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=[
                MarkCompleteCheckpoints(settings),
                RotateCompleteCheckpoints(args.save_total_limit),
                StopOnNonFinite(),
                stop,
                *callbacks,
            ],
        )
        match_saved_modules(trainer.model)
        use_numeric_progress(trainer)

        # Train
        stop.raise_if_requested(resume)  # SIGTERM while loading: nothing new to save
        log.info("training from %s", resume or "step 0")
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        if stop.requested:
            step = trainer.state.global_step
            raise TrainingInterrupted(step, Path(args.output_dir) / f"checkpoint-{step}", stop.signum)
        # Every process says where it ended: on several hosts, each host's log shows they ran in step.
        accelerator = trainer.accelerator
        log.info(
            "process %d of %d trained to step %d",
            accelerator.process_index, accelerator.num_processes, trainer.state.global_step,
        )  # fmt: skip

    # Save (every process takes part: ZeRO-3 gathers the weights), then the summary as the marker.
    save_model(trainer, tokenizer, config, model_path)
    summary = {
        "status": "completed",
        "recipe": config.recipe,
        "recipe_path": str(config.recipe_path),
        "model_dir": str(model_dir),
        "adapter_dir": str(model_dir / ADAPTER_DIR) if config.model.use_peft else None,
        "full_model": not config.model.use_peft or config.run.merge_adapter,
        "global_step": trainer.state.global_step,
        "resumed_from": str(resume) if resume else None,
        "data_issues": data_info.pop("issues"),  # every dropped row counted, the first ones by file:line
        "data": data_info,
        "rewards": reward_means(trainer.state.log_history, trainer.reward_func_names),
        "wall_time_s": round(time.time() - started, 1),
        "versions": package_versions(),
        "config": config.resolved(),
    }
    if not trainer.is_world_process_zero():
        return summary
    summary["files"] = write_history(trainer.state.log_history, summary_dir)  # in summary_dir
    write_summary(summary, model_dir, summary_dir)
    if eval_rows is not None:
        trainer.accelerator.free_memory()  # the policy, optimizer (and a colocated vLLM) make room
        del trainer, model
        clear_device_cache(garbage_collection=True)
        summary["evaluation"] = evaluate_at_end(config, eval_rows, summary["full_model"])
        write_summary(summary, model_dir, summary_dir)
    return summary


def execute(config: RunConfig, print_config: bool = False) -> int:
    """What `grpo-rlvr train` does with a validated recipe: print it or run it."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if print_config:
        print(json.dumps(config.resolved(), indent=2))
        return 0
    try:
        summary = run(config)
    except TrainingInterrupted as stopped:
        print(f"grpo-rlvr train: {stopped}", file=sys.stderr)
        return 128 + stopped.signum  # the shell's code for "terminated by" that signal
    if PartialState().is_main_process:
        print(
            f"model: {summary['model_dir']} (step {summary['global_step']}); "
            f"summary: {config.run.summary_dir}"
        )
    return 0
