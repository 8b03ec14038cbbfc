"""GRPO training from a validated `RunConfig`: data → rewards → model → trainer → train → save → summary.

Invariants this module keeps:
- Nothing that can be checked without a model fails after the model has loaded.
- Resuming uses the newest COMPLETE checkpoint in `output_dir` (`checkpoints.py`: a checkpoint counts
  once every process has finished writing it and the main process has listed its files in a marker).
  `save_total_limit` rotation runs only after the new checkpoint's marker is written and counts complete
  checkpoints only (`checkpoints.rotate`), so a kill at any point leaves at least one complete
  checkpoint; transformers' own rotation runs before any callback could mark the new one complete
  (on SageMaker a local delete deletes the S3 copy too).
- A NaN or infinite loss, gradient norm or trainable weight fails the run at the step it appears, and
  the saved weights are checked again before the model is published.
- SIGTERM sets a flag; at the next step end every process agrees to save a checkpoint and stop, and
  `run` raises `TrainingInterrupted` without writing a model.
- `model_dir` is written through a hidden staging folder and `run_summary.json` comes last: a model
  folder without that file is not a finished model.
- With `eval_at_end`, the main process then measures GSM8K accuracy on the validation rows with
  `evaluate.evaluate_examples` (the code `grpo-rlvr evaluate` runs) in the run's prompt format and end
  tokens into `summary_dir/eval` and adds the accuracies to `run_summary.json`. Rows it cannot evaluate
  fail the run before the model loads; a failing evaluation fails the run but leaves the finished model
  and its summary in place.

Layout of `model_dir` for a LoRA/QLoRA run: the merged full model (config, safetensors, tokenizer,
generation config) at the top, loadable with `AutoModelForCausalLM.from_pretrained(model_dir)`, and the
adapter in `model_dir/adapter/`. A QLoRA adapter is merged into the base reloaded in `dtype` (bf16 on
GPU, fp32 on CPU), never into the 4-bit weights, which would round the update away. A full fine-tune
writes the model alone.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from copy import copy as shallow_copy
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from accelerate import PartialState
from accelerate.utils.memory import clear_device_cache
from datasets import Dataset
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig, TrainerCallback
from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled
from trl import GRPOConfig, GRPOTrainer, ModelConfig, get_peft_config, get_quantization_config

from grpo_rlvr import data as gsm8k_data
from grpo_rlvr import gpu_rules, signals
from grpo_rlvr.checkpoints import (
    SUMMARY_NAME,
    TrainingInterrupted,
    checkpoint_step,
    is_complete,
    latest_complete_checkpoint,
    mark_complete,
    rotate,
)
from grpo_rlvr.config import ConfigError, DataArguments, RunConfig, check_device, load_config
from grpo_rlvr.evaluate import ModelSpec, evaluate_examples
from grpo_rlvr.files import write_atomic
from grpo_rlvr.history import write_history
from grpo_rlvr.prompt_format import PromptFormat
from grpo_rlvr.rewards import required_columns
from grpo_rlvr.tiny import BUILTIN_PREFIX, resolve_model_path
from grpo_rlvr.versions import attention_choice, package_versions

log = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"
STAGING_DIR = ".partial"
EVAL_DIR = "eval"  # inside summary_dir


class NonFiniteError(RuntimeError):
    """Training reached a NaN or infinite value; the message names the value and the step."""


def run(config: RunConfig, callbacks: Sequence[TrainerCallback] = ()) -> dict[str, Any]:
    """Train, save and summarise one run; returns the run summary (written by the main process only)."""
    started = time.time()
    check_device(config)  # a GPU recipe where CUDA is not usable: refused before any download
    args = config.training
    resolved = config.resolved()  # before the trainer adjusts anything
    model_path = resolve_model_path(config.model.model_name_or_path)
    if config.model.model_name_or_path.startswith(BUILTIN_PREFIX):
        log.info(
            "%s is a random model: it scores 0 on GSM8K, so rewards and loss of 0 are expected",
            config.model.model_name_or_path,
        )
    if not torch.cuda.is_available():  # else DeepSpeed warns that it "was unable to detect" a GPU
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    model_dir, summary_dir = Path(config.run.model_dir), Path(config.run.summary_dir)
    stop = GracefulStop()
    with stop.catching():
        # Data: validated rows, k-shot prompts, none cut.
        tokenizer = AutoTokenizer.from_pretrained(
            model_path, revision=config.model.model_revision, trust_remote_code=args.trust_remote_code,
            padding_side="left", truncation_side="left",
        )  # fmt: skip
        end_ids = end_token_ids(config.data, config.prompt_format, tokenizer)
        train_rows, val_rows, data_info = prepare_data(
            config.data, tokenizer, args.seed, config.prompt_format
        )

        # Rewards: registry names -> callables; every column they read must be in every row.
        funcs = config.reward_funcs
        check_reward_columns(funcs, train_rows + val_rows)
        eval_rows = evaluation_rows(val_rows, config.run.eval_limit) if config.run.eval_at_end else None

        # Resume point: the recipe's checkpoint, else the newest complete one in output_dir.
        if args.resume_from_checkpoint:
            check_checkpoint(args.resume_from_checkpoint)
        resume = args.resume_from_checkpoint or latest_complete_checkpoint(args.output_dir)
        if val_rows and args.eval_strategy == "no" and not config.run.eval_at_end:
            log.warning("%d validation rows are not used: set eval_strategy (e.g. steps)", len(val_rows))

        # Model: the LoRA targets are matched against the architecture first, built without weights.
        peft_config = get_peft_config(config.model)
        if peft_config is not None:
            check_lora_targets(peft_config, model_path, config.model, args)
        if args.use_vllm and config.model.lora_modules_to_save:
            check_vllm_head(model_path, config)
        model = load_model(model_path, config.model, args)
        use_plain_cpu_device(args)
        rotation = RotateCompleteCheckpoints(args.save_total_limit)
        args.save_total_limit = None  # transformers would rotate before the new checkpoint is complete

        # Trainer: completions end at the model's EOS, the recipe's end tokens and (by default) the stop rule
        add_end_tokens(model, args, end_ids)
        if config.data.stop_at_answer:
            add_stop_rule(args, config.prompt_format.stop_strings)
        trainer = StopAtAnswerTrainer(
            model=model,
            reward_funcs=funcs,
            args=args,
            train_dataset=Dataset.from_list(train_rows),
            eval_dataset=Dataset.from_list(val_rows) if val_rows else None,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=[MarkCompleteCheckpoints(), rotation, StopOnNonFinite(), stop, *callbacks],
        )
        match_saved_modules(trainer.model)

        # Train
        if stop.requested:  # SIGTERM while loading: nothing new to save
            raise TrainingInterrupted(checkpoint_step(resume) if resume else 0, resume, stop.signum)
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
        "config": resolved,
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


# --- data and rewards --------------------------------------------------------------------------------


def prepare_data(
    data: DataArguments, tokenizer: Any, seed: int, prompt_format: PromptFormat
) -> tuple[list, list, dict[str, Any]]:
    """Training and validation rows with prompts; over-long prompts dropped or failing, each named by its
    file:line in the log and the summary."""
    loaded: dict[str, str] = {}
    issues: dict[str, dict[str, Any]] = {}
    prompts_dropped = {"train": 0, "val": 0}

    def report(problems: list[str]) -> None:
        for problem in problems[: gsm8k_data.SHOWN_ISSUES]:
            log.warning("dropped %s", problem)
        if len(problems) > gsm8k_data.SHOWN_ISSUES:
            log.warning("... and %d more dropped rows", len(problems) - gsm8k_data.SHOWN_ISSUES)

    def load(part: str, source: str, split: str) -> list[tuple[dict[str, Any], str]]:
        examples, result = gsm8k_data.load_examples(source, hub_config=data.dataset_config, split=split)
        loaded[part], issues[part] = result.summary(), result.issues()
        log.info("%s data %s: %s", part, source, loaded[part])
        report(result.problems)
        return list(zip(examples, result.places, strict=True))

    rows = load("train", data.dataset_path, data.dataset_split)
    if data.val_dataset_path:
        val = load("val", data.val_dataset_path, data.val_dataset_split)
    else:
        rows, val = gsm8k_data.split_train_val(rows, data.val_fraction, seed)
    rows, val = rows[: data.max_train_samples], val[: data.max_val_samples]

    def with_prompts(part: str, placed: list[tuple[dict[str, Any], str]]) -> list[dict[str, Any]]:
        if not placed:
            return []
        prompted = gsm8k_data.add_prompts([e for e, _ in placed], data.num_shots, prompt_format)
        kept, dropped = gsm8k_data.enforce_prompt_limit(
            prompted, tokenizer, data.max_prompt_tokens, data.prompt_length_policy, [p for _, p in placed]
        )
        prompts_dropped[part] = len(dropped)
        if dropped:
            listed = issues.setdefault(part, {"count": 0, "first": []})
            listed["count"] += len(dropped)
            listed["first"] = (listed["first"] + dropped)[: gsm8k_data.SHOWN_ISSUES]
            report(dropped)
        return kept

    train_rows, val_rows = with_prompts("train", rows), with_prompts("val", val)
    return (
        train_rows,
        val_rows,
        {
            "loaded": loaded,
            "issues": issues,
            "train_rows": len(train_rows),
            "val_rows": len(val_rows),
            "prompts_dropped": prompts_dropped,
        },
    )


def check_reward_columns(funcs: list, rows: list[dict[str, Any]]) -> None:
    """Every column a reward reads must be in every row, or the run fails before the model loads."""
    for fn in funcs:
        missing = sorted({c for c in required_columns(fn) for row in rows if c not in row})
        if missing:
            raise ConfigError(
                "rewards",
                f"reward {fn.__name__} reads column(s) {missing}, missing from the data: "
                "add them to the dataset or choose other rewards",
            )


def evaluation_rows(val_rows: list[dict[str, Any]], limit: int | None) -> list[dict[str, Any]]:
    """The validation rows `eval_at_end` grades: GSM8K rows (question + gold answer), first `limit`.

    The training prompt is left out: `evaluate_examples` builds its own for every shot count.
    """
    if not val_rows:
        raise ConfigError("eval_at_end", "no validation rows left to evaluate (none loaded, or all dropped)")
    unusable = [i for i, row in enumerate(val_rows) if not {"question", "final_answer"} <= row.keys()]
    if unusable:
        raise ConfigError(
            "eval_at_end",
            f"needs GSM8K validation rows (question + final_answer); {len(unusable)} of {len(val_rows)} "
            f"lack them (first: validation row {unusable[0] + 1})",
        )
    return [{k: v for k, v in row.items() if k != "prompt"} for row in val_rows[:limit]]


def evaluate_at_end(config: RunConfig, rows: list[dict[str, Any]], full_model: bool) -> dict[str, Any]:
    """Accuracy of the saved model (or base + saved adapter) with 95% intervals, per shot count."""
    data, model_dir = config.data, Path(config.run.model_dir)
    if full_model:
        model = ModelSpec(str(model_dir))
    else:
        model = ModelSpec(config.model.model_name_or_path, str(model_dir / ADAPTER_DIR))
    held_out = (
        f"{data.dataset_path} (held out: val_fraction={data.val_fraction}, seed {config.training.seed})"
    )
    source = data.val_dataset_path or held_out
    hub_split = data.val_dataset_split if data.val_dataset_path and not Path(source).exists() else None
    out_dir = Path(config.run.summary_dir) / EVAL_DIR
    metrics = evaluate_examples(
        [model], rows, out_dir,
        shots=config.run.eval_shots,
        backend="vllm" if config.training.use_vllm else "hf",
        max_new_tokens=config.run.eval_max_new_tokens,
        data_info={"source": source, "split": hub_split, "limit": config.run.eval_limit},
        prompt_format=config.prompt_format,
        end_tokens=data.end_tokens or (),
    )  # fmt: skip
    keep = ("shots", "n", "correct", "accuracy", "ci95")
    return {"dir": str(out_dir), "results": [{k: r[k] for k in keep} for r in metrics["results"]]}


def reward_means(history: list[dict[str, Any]], names: list[str]) -> dict[str, dict[str, float]]:
    """First and last logged mean of each reward (TRL logs `rewards/<name>/mean`)."""
    means = {}
    for name in names:
        values = [entry[f"rewards/{name}/mean"] for entry in history if f"rewards/{name}/mean" in entry]
        if values:
            means[name] = {"first": values[0], "final": values[-1]}
    return means


# --- model --------------------------------------------------------------------------------------------


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
    args.model_init_kwargs = None  # applied here; TRL would otherwise warn that they are ignored
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


def use_plain_cpu_device(args: GRPOConfig) -> None:
    """Give a multi-process CPU run the device `cpu`, not accelerate's `cpu:0`, so it can resume.

    With several processes transformers loads the optimizer state with `map_location=args.device`, and
    `torch.load` cannot map to "cpu:0" (the same device as "cpu"). `TrainingArguments.device` reads the
    `_setup_devices` cached property, so its cached value is replaced; the accelerator keeps its own.
    """
    if args.device.type == "cpu" and args.device.index is not None:
        args.__dict__["_setup_devices"] = torch.device("cpu")


# --- generation: stop at the answer -------------------------------------------------------------------


def end_token_ids(data: DataArguments, prompt_format: PromptFormat, tokenizer: Any) -> list[int]:
    """The ids of the recipe's `end_tokens` (each must be one token), checked before the model loads."""
    if prompt_format.chat and not tokenizer.chat_template:
        raise ConfigError("prompt_format", "chat needs a tokenizer with a chat template; this one has none")
    try:
        return gsm8k_data.single_token_ids(data.end_tokens or (), tokenizer)
    except ValueError as err:
        raise ConfigError("end_tokens", str(err)) from err


def add_end_tokens(model: torch.nn.Module, args: GRPOConfig, ids: list[int]) -> None:
    """TRL ends completions (and counts them finished) at the model's generation-config EOS ids: add
    ours there; vLLM reads its end tokens from the model folder, so it gets them as `stop_token_ids`."""
    if not ids:
        return
    eos = model.generation_config.eos_token_id
    eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    model.generation_config.eos_token_id = [*eos, *(i for i in ids if i not in eos)]
    if args.use_vllm:
        args.generation_kwargs = {"stop_token_ids": ids, **(args.generation_kwargs or {})}


def add_stop_rule(args: GRPOConfig, stop_strings: Sequence[str]) -> None:
    """Training generation ends where evaluation's does (the prompt format's `stop_strings`), through
    TRL's own `generation_kwargs`: vLLM's SamplingParams read `stop`, transformers' GenerationConfig
    `stop_strings`. A value the recipe sets itself wins."""
    key = "stop" if args.use_vllm else "stop_strings"
    args.generation_kwargs = {key: list(stop_strings), **(args.generation_kwargs or {})}


class StopAtAnswerTrainer(GRPOTrainer):
    """TRL's GRPOTrainer, where a completion that ended at a stop string counts as finished.

    TRL counts a completion as finished only when its last token is an end token (EOS or pad): one that
    stopped at a stop string would be counted in `completions/clipped_ratio` and, with
    `mask_truncated_completions`, dropped from the loss, right answer and all. Such a completion ends here
    with the tokenizer's EOS, as transformers' `generate` already ends every stopped row but the batch's
    last (it pads finished rows, and the pad is EOS for Qwen); a vLLM sampling log-probability for that
    token is unknown (None), which TRL's importance-sampling correction reads as "no correction".
    transformers also needs the tokenizer to apply stop strings, and TRL does not pass it to `generate`.
    Without stop strings in `generation_kwargs` this trainer is TRL's own.
    """

    @property
    def stop_strings(self) -> list[str]:
        stops = (self.args.generation_kwargs or {}).get("stop" if self.use_vllm else "stop_strings")
        return [stops] if isinstance(stops, str) else list(stops or ())

    def _generate_single_turn(self, *args: Any, **kwargs: Any) -> tuple[list, list | None]:
        with self._generate_with_tokenizer():
            completion_ids, logprobs = super()._generate_single_turn(*args, **kwargs)
        return self._end_at_stop(completion_ids, logprobs)

    @contextmanager
    def _generate_with_tokenizer(self) -> Iterator[None]:
        """transformers' `generate` reads stop strings through the tokenizer: hand it over for one call."""
        if self.use_vllm or not self.stop_strings:
            yield
            return
        model = self.accelerator.unwrap_model(self.model_wrapped)
        model.generate = partial(model.generate, tokenizer=self._tokenizer)
        try:
            yield
        finally:
            del model.generate

    def _end_at_stop(self, completion_ids: list, logprobs: list | None) -> tuple[list, list | None]:
        """End each completion that reached a stop string (and no end token) with EOS; others unchanged."""
        stops, ends, pad = self.stop_strings, set(self.eos_token_ids), self._tokenizer.pad_token_id
        for i, ids in enumerate(completion_ids):
            if not stops or not ids or ids[-1] in ends:
                continue
            n = len(ids)
            while n and ids[n - 1] == pad:  # transformers pads a stopped row when pad is not EOS
                n -= 1
            text = self._tokenizer.decode(ids[:n])
            if any(stop in text for stop in stops):
                completion_ids[i] = [*ids[:n], self._tokenizer.eos_token_id]
                if logprobs is not None:
                    logprobs[i] = [*logprobs[i][:n], None]
        return completion_ids, logprobs


# --- checkpoints and graceful stop --------------------------------------------------------------------


def check_checkpoint(checkpoint: str | Path) -> None:
    if not is_complete(Path(checkpoint)):
        raise ConfigError("resume_from_checkpoint", f"{checkpoint} is not a complete checkpoint")


class MarkCompleteCheckpoints(TrainerCallback):
    """After every process has written its part of a checkpoint, list its files in the marker."""

    def on_save(self, args: GRPOConfig, state: Any, control: Any, **_: Any) -> None:
        PartialState().wait_for_everyone()  # DeepSpeed writes per-rank shards
        if args.should_save:
            mark_complete(Path(args.output_dir) / f"checkpoint-{state.global_step}", state.global_step)


class RotateCompleteCheckpoints(TrainerCallback):
    """`save_total_limit` applied after the new checkpoint's marker (so after MarkCompleteCheckpoints)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit

    def on_save(self, args: GRPOConfig, state: Any, control: Any, **_: Any) -> None:
        if self.limit and args.should_save:
            rotate(args.output_dir, self.limit, state.best_model_checkpoint)


class StopOnNonFinite(TrainerCallback):
    """A NaN or infinite loss or gradient norm (as logged), or trainable weight (after each optimizer
    step), fails the run at that step, before any checkpoint or model could hold it."""

    def on_log(self, args: GRPOConfig, state: Any, control: Any, logs: dict | None = None, **_: Any) -> None:
        for key, value in (logs or {}).items():
            if isinstance(value, float) and not math.isfinite(value) and key in ("loss", "grad_norm"):
                raise NonFiniteError(f"{key} is {value} at step {state.global_step}: lower learning_rate")

    def on_step_end(self, args: GRPOConfig, state: Any, control: Any, model: Any = None, **_: Any) -> None:
        # Under DeepSpeed ZeRO-3 a parameter is empty outside a gather; each process holds one partition of
        # it (`ds_tensor`). Every partition is checked where it lives, and all processes learn the verdict.
        trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        partitioned = any(hasattr(p, "ds_tensor") for _, p in trained)
        params = [(n, getattr(p, "ds_tensor", p).detach()) for n, p in trained]
        params = [(n, t) for n, t in params if t.numel()]
        found = bool(params) and not torch.stack([t.isfinite().all() for _, t in params]).all()
        if partitioned:
            found = _any_process(found)
        if found:
            where = next((n for n, t in params if not t.isfinite().all()), "a partition on another process")
            raise NonFiniteError(
                f"weight {where} holds NaN or inf after step {state.global_step}: lower learning_rate"
            )


class GracefulStop(TrainerCallback):
    """SIGTERM or SIGINT (Ctrl-C) sets a flag; at the next step end all processes save a checkpoint and
    stop together."""

    def __init__(self) -> None:
        self.requested = False
        self.signum: int = signal.SIGTERM  # which one arrived (other processes learn only that one did)

    def request(self, signum: int, _frame: Any) -> None:
        self.requested = True
        self.signum = signum

    @contextmanager
    def catching(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            log.warning("not the main thread: SIGTERM and SIGINT are left to the caller")
            yield
            return
        with signals.handling(self.request):
            yield

    def on_step_end(self, args: GRPOConfig, state: Any, control: Any, **_: Any) -> Any:
        if _any_process(self.requested):
            self.requested = True
            name = signal.Signals(self.signum).name
            log.warning("%s: saving a checkpoint at step %d and stopping", name, state.global_step)
            control.should_save = True
            control.should_training_stop = True
        return control


def _any_process(flag: bool) -> bool:
    """One process's SIGTERM stops them all at the same step, so the collective save cannot hang."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([int(flag)], device=PartialState().device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


# --- outputs ------------------------------------------------------------------------------------------


def save_model(trainer: GRPOTrainer, tokenizer: Any, config: RunConfig, base_path: str) -> None:
    """Write the adapter and/or the full model into `model_dir` through a staging folder."""
    model_dir = Path(config.run.model_dir)
    staging = model_dir / STAGING_DIR
    main = trainer.is_world_process_zero()
    if main:
        (model_dir / SUMMARY_NAME).unlink(missing_ok=True)  # the old marker goes first
        shutil.rmtree(staging, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    is_adapter = config.model.use_peft
    trainer.save_model(str(staging / ADAPTER_DIR if is_adapter else staging))  # collective; writes on main
    if main:
        if is_adapter and config.run.merge_adapter:
            merge_adapter(base_path, staging / ADAPTER_DIR, staging, config)
        for folder in (staging, staging / ADAPTER_DIR):
            (folder / "training_args.bin").unlink(missing_ok=True)  # training state, not part of a model
        check_finite_weights(staging)
        if (staging / "config.json").exists():
            tokenizer.save_pretrained(staging)
            write_generation_config(staging, trainer.eos_token_ids, tokenizer.pad_token_id)
        for entry in staging.iterdir():
            target = model_dir / entry.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(entry, target)
        staging.rmdir()
        log.info("model written to %s", model_dir)
    trainer.accelerator.wait_for_everyone()


def check_finite_weights(folder: Path) -> None:
    """Every saved floating-point weight finite, or NonFiniteError: the model is not published."""
    from safetensors import safe_open

    for file in sorted(folder.rglob("*.safetensors")):
        with safe_open(file, "pt") as weights:
            for name in weights.keys():  # noqa: SIM118 (a safetensors handle is no dict)
                tensor = weights.get_tensor(name)
                if tensor.is_floating_point() and not tensor.isfinite().all():
                    raise NonFiniteError(
                        f"saved weight {name} in {file.relative_to(folder)} holds NaN or inf: "
                        "the model is not published"
                    )


def merge_adapter(base_path: str, adapter_dir: Path, out_dir: Path, config: RunConfig) -> None:
    """Merge the saved adapter into a fresh full-precision base (also for QLoRA) and save it."""
    from peft import PeftModel
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    # Only the main process merges, after training: a ZeRO-3 partitioned load here would wait forever
    # for the other processes, so this load is an ordinary one.
    unset_hf_deepspeed_config()
    base = AutoModelForCausalLM.from_pretrained(
        base_path,
        revision=config.model.model_revision,
        dtype=torch_dtype(config.model.dtype),
        trust_remote_code=config.training.trust_remote_code,
    )
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    merged.save_pretrained(out_dir)


def write_generation_config(folder: Path, eos_ids: list[int], pad_id: int | None) -> None:
    """Generation stops at every end token training stopped at, and pads with the training pad."""
    try:
        generation = GenerationConfig.from_pretrained(folder)
    except OSError:
        generation = GenerationConfig()
    generation.eos_token_id = list(eos_ids)
    generation.pad_token_id = pad_id
    generation.save_pretrained(folder)


def write_summary(summary: dict[str, Any], model_dir: Path, summary_dir: Path) -> None:
    """`run_summary.json` into summary_dir, then into model_dir last, atomically: the completion marker."""
    text = json.dumps(summary, indent=2, default=str) + "\n"
    for folder in (summary_dir, model_dir):
        write_atomic(folder / SUMMARY_NAME, text)


# --- entry points -------------------------------------------------------------------------------------


def execute(recipe: str, overrides: Sequence[str], print_config: bool = False) -> int:
    """What `grpo-rlvr train` does: load the recipe, then print it or run it."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(recipe, overrides)
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
