"""What a run leaves behind: `model_dir` (adapter and merged model, written through a staging folder and
checked finite), `run_summary.json` last as the completion marker, and the evaluation at the end."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from accelerate import PartialState
from transformers import GenerationConfig

from grpo_rlvr.checkpoints import SUMMARY_NAME
from grpo_rlvr.config.sections import ConfigError, RunConfig
from grpo_rlvr.evaluation.evaluate import evaluate_examples
from grpo_rlvr.evaluation.models import ModelSpec
from grpo_rlvr.files import unwritable, write_atomic
from grpo_rlvr.merging import merged_model
from grpo_rlvr.training.callbacks import NonFiniteError
from grpo_rlvr.training.model import torch_dtype
from grpo_rlvr.training.model_card import BaseModelCards

log = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"
STAGING_DIR = ".partial"
EVAL_DIR = "eval"  # inside summary_dir


def check_output_folders(config: RunConfig) -> None:
    """Every folder the run writes can be written, probed by writing (once per host): a read-only mount
    would otherwise fail at the first checkpoint or at the end, after the model loaded and trained."""
    if not PartialState().is_local_main_process:
        return
    folders = {
        "output_dir": config.training.output_dir,
        "model_dir": config.run.model_dir,
        "summary_dir": config.run.summary_dir,
    }
    for key, folder in folders.items():
        if reason := unwritable(Path(folder)):
            raise ConfigError(key, f"{reason}: choose a writable folder")


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


def save_model(trainer: BaseModelCards, tokenizer: Any, config: RunConfig, base_path: str) -> None:
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
        if is_adapter:
            trainer.write_model_card(staging / ADAPTER_DIR)
        if (staging / "config.json").exists():
            trainer.write_model_card(staging, model_name=model_dir.resolve().name)
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
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    # Only the main process merges, after training: a ZeRO-3 partitioned load here would wait forever
    # for the other processes, so this load is an ordinary one.
    unset_hf_deepspeed_config()
    merged = merged_model(
        base_path,
        adapter_dir,
        dtype=torch_dtype(config.model.dtype),
        revision=config.model.model_revision,
        trust_remote_code=config.training.trust_remote_code,
    )
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
