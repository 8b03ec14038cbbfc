"""Wrapper overhead: `training.grpo.run` against bare TRL `GRPOTrainer`, identical settings, same process.

Both arms get the same `GRPOConfig` (loaded from the smoke recipe the same way), the same prompt rows,
the same reward callables, the same model folder loaded in the same dtype and attention, the same PEFT
config and seed, so they generate the same tokens. Only the steps after each run's first are timed
(`measure.StepTimer`); runs alternate A B B A ... so that drift of a shared machine falls on both.
On shared cores that ratio is noisier than a few percent, so the only loop code bare TRL lacks, the
callbacks training.grpo.run adds, is also timed call by call: a bound the A/B ratio cannot resolve.

`python bench/overhead.py bare [key=value ...]` runs the bare arm alone in a fresh process: the floor
`bench/startup.py` compares the launcher's start-up against.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from measure import StepTimer
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerControl, TrainerState
from trl import GRPOTrainer, get_peft_config

from grpo_rlvr.checkpoints import checkpoint_step, latest_complete_checkpoint, weight_settings
from grpo_rlvr.config.checks import reward_functions
from grpo_rlvr.config.loading import load_config
from grpo_rlvr.config.sections import RunConfig
from grpo_rlvr.overrides import parse_overrides
from grpo_rlvr.tiny import resolve_model_path
from grpo_rlvr.training import callbacks, grpo
from grpo_rlvr.training.rows import prepare_data

RECIPE = "smoke-cpu"
ARMS = {"A": "ours", "B": "bare"}


def smoke_config(workdir: Path, steps: int, overrides: Mapping[str, Any] = ()) -> RunConfig:
    """The smoke recipe with fresh output folders (training.grpo.run would resume from an old checkpoint)."""
    workdir.mkdir(parents=True, exist_ok=True)
    return load_config(
        RECIPE,
        {
            "max_steps": steps,
            "logging_steps": 1,  # StepTimer reads every step's metrics
            "output_dir": str(workdir / "checkpoints"),
            "model_dir": str(workdir / "model"),
            "summary_dir": str(workdir / "summary"),
            **dict(overrides),
        },
    )


def run_ours(config: RunConfig) -> StepTimer:
    timer = StepTimer()
    grpo.run(config, callbacks=[timer])
    return timer


def run_bare(config: RunConfig, rows: list[dict[str, Any]]) -> StepTimer:
    """What a user writes with TRL alone, given the same settings and prompt rows."""
    timer = StepTimer()
    path = resolve_model_path(config.model.model_name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left", truncation_side="left")
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=getattr(torch, config.model.dtype), attn_implementation="sdpa"
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward_functions(config.rewards, config.prompt_format),
        args=config.training,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=get_peft_config(config.model),
        callbacks=[timer],
    )
    trainer.train()
    return timer


def prompt_rows(config: RunConfig) -> list[dict[str, Any]]:
    """The rows training.grpo.run trains on for this config (the bare arm's data set-up, not timed)."""
    path = resolve_model_path(config.model.model_name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    rows, _, _ = prepare_data(config.data, tokenizer, config.training.seed, config.prompt_format)
    return rows


def _arm_stats(timers: list[StepTimer], walls: list[float]) -> dict[str, float | int]:
    return {
        "runs": len(timers),
        "steps_timed": sum(len(t.step_seconds()) for t in timers),
        "steps_per_s": _steps_per_s(timers),
        "median_step_s": statistics.median(s for t in timers for s in t.step_seconds()),
        # Set-up before the first step plus saving after the last, per run (not in steps/s).
        "outside_loop_s": statistics.fmean(
            w - (t.ends[-1] - t.begin) for t, w in zip(timers, walls, strict=True)
        ),
    }


def bench_overhead(
    steps: int = 8, rounds: int = 2, order: str = "ABBA", overrides: Mapping[str, Any] = ()
) -> dict[str, Any]:
    """Steps/s of ours (A) and bare TRL (B) in alternating runs of `steps` steps; ratio ours/bare."""
    if steps < 2 or set(order) != set(ARMS):
        raise ValueError("need steps >= 2 (the first is not timed) and an order using both A and B")
    timers: dict[str, list[StepTimer]] = {"A": [], "B": []}
    walls: dict[str, list[float]] = {"A": [], "B": []}
    per_round: list[float] = []
    last_config: dict[str, RunConfig] = {}
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        rows = prompt_rows(smoke_config(Path(tmp) / "rows", steps, overrides))
        log = Path(tmp) / "runs.log"
        with log.open("w") as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            for r in range(rounds):
                for i, arm in enumerate(order):
                    config = smoke_config(Path(tmp) / f"run-{r}-{i}-{ARMS[arm]}", steps, overrides)
                    start = time.perf_counter()
                    timer = run_ours(config) if arm == "A" else run_bare(config, rows)
                    last_config[arm] = config
                    walls[arm].append(time.perf_counter() - start)
                    timers[arm].append(timer)
                ours, bare = (timers[a][-order.count(a) :] for a in "AB")
                per_round.append(_steps_per_s(ours) / _steps_per_s(bare))
        callbacks = callback_cost(last_config["A"])  # before the temporary folder goes
    stats = {ARMS[a]: _arm_stats(timers[a], walls[a]) for a in "AB"}
    return {
        "order": order * rounds,
        "steps_per_run": steps,
        **stats,
        "ratio_ours_over_bare": stats["ours"]["steps_per_s"] / stats["bare"]["steps_per_s"],
        "ratio_of_medians": stats["bare"]["median_step_s"] / stats["ours"]["median_step_s"],
        "ratio_per_round": per_round,
        "callbacks": callbacks,
        "callbacks_share_of_step": callbacks["per_step_s"] / stats["ours"]["median_step_s"],
    }


def callback_cost(config: RunConfig, calls: int = 200) -> dict[str, float | None]:
    """Seconds per call of training.grpo.run's own callbacks, and per step: GracefulStop at every step end,
    MarkCompleteCheckpoints at every save (on the run's newest checkpoint; None when none was saved)."""
    args, control = config.training, TrainerControl()
    stop = callbacks.GracefulStop()
    step_end = timeit.timeit(lambda: stop.on_step_end(args, TrainerState(), control), number=calls) / calls
    checkpoint = latest_complete_checkpoint(args.output_dir)
    on_save = None
    if checkpoint is not None:
        state = TrainerState(global_step=checkpoint_step(checkpoint))
        mark = callbacks.MarkCompleteCheckpoints(weight_settings(config.model))
        on_save = timeit.timeit(lambda: mark.on_save(args, state, control), number=calls) / calls
    return {
        "on_step_end_s": step_end,
        "on_save_s": on_save,
        "per_step_s": step_end + (on_save or 0) / args.save_steps,
    }


def _steps_per_s(timers: list[StepTimer]) -> float:
    seconds = [s for t in timers for s in t.step_seconds()]
    return len(seconds) / sum(seconds)


def main(argv: list[str]) -> int:
    """`bare [key=value ...]`: one bare-TRL run of the smoke recipe in this (fresh) process."""
    if not argv or argv[0] != "bare":
        print(json.dumps(bench_overhead(), indent=2))
        return 0
    overrides = parse_overrides(argv[1:])
    with tempfile.TemporaryDirectory(prefix="bench-bare-") as tmp:
        config = smoke_config(Path(tmp), int(overrides.pop("max_steps", 1)), overrides)
        run_bare(config, prompt_rows(config))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
