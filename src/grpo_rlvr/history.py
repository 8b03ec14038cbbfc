"""A run's logged history: each logging step printed with numbers as numbers, every step as JSONL, and
its curves as a PNG, beside run_summary.json.

In the container the summary folder is /opt/ml/output/data, which SageMaker uploads with the job, so
the numbers the trainer logged are there to read after the instance is gone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers.trainer_callback import PrinterCallback, ProgressCallback

HISTORY_NAME = "log_history.jsonl"
CURVES_NAME = "training_curves.png"
# What each point of a curve is: the trainer logs, every `logging_steps` steps, each metric averaged over
# the steps since the last log, and within a step over all processes' completions (or tokens).
WINDOW = "each point: the mean over one logging window (logging_steps steps, all processes)"
# (title, logged keys drawn on one panel); a panel whose keys were never logged is left out.
PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("reward: weighted sum, mean per completion", ("reward",)),
    ("completion length: mean tokens per completion", ("completions/mean_length",)),
    ("clipped: share of completions cut at max_completion_length", ("completions/clipped_ratio",)),
    ("KL to the reference and entropy: mean per token", ("kl", "entropy")),
    ("loss", ("loss",)),
)


class NumericProgressCallback(ProgressCallback):
    """transformers' progress bar, but each logging step's line holds numbers (`'loss': 0.0123`), not
    quoted strings (`'loss': '0.0123'`): what a reader, a log parser or a metric regex expects."""

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if state.is_world_process_zero and self.training_bar is not None:
            shown = {k: _readable(v) for k, v in (logs or {}).items() if k != "total_flos"}
            self.training_bar.write(str(shown))


class NumericPrinterCallback(PrinterCallback):
    """transformers' log printer (the trainer's with `disable_tqdm`), likewise printing numbers as
    numbers: transformers' own prints each float as a quoted string."""

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if state.is_local_process_zero and logs is not None:
            print({k: _readable(v) for k, v in logs.items() if k != "total_flos"})


def _readable(value: Any) -> Any:
    """A float cut to 4 significant digits, still a number; anything else as it is."""
    return float(f"{value:.4g}") if isinstance(value, float) else value


def use_numeric_progress(trainer: Any) -> None:
    """Swap the trainer's progress bar or, with `disable_tqdm`, its log printer for the numeric one."""
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(NumericProgressCallback)
    if trainer.pop_callback(PrinterCallback) is not None:
        trainer.add_callback(NumericPrinterCallback)


def write_history(log_history: Sequence[dict[str, Any]], folder: Path) -> dict[str, str]:
    """Write the trainer's log history and its curves into `folder`; returns {kind: file name}."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / HISTORY_NAME).open("w", encoding="utf-8") as f:
        for entry in log_history:
            f.write(json.dumps(entry) + "\n")
    fig = curves_figure(log_history)
    fig.savefig(folder / CURVES_NAME, dpi=100)
    return {"log_history": HISTORY_NAME, "curves": CURVES_NAME}


def panels(log_history: Sequence[dict[str, Any]]) -> list[tuple[str, tuple[str, ...]]]:
    """The panels to draw: the total reward, one per reward function (`rewards/<name>/mean`), then
    completion length, clipped share, KL/entropy and loss, each only when it was logged."""
    logged = {key for entry in log_history for key in entry}
    per_reward = sorted(k for k in logged if k.startswith("rewards/") and k.endswith("/mean"))
    chosen = [PANELS[0], *((f"{k.split('/')[1]}: mean reward per completion", (k,)) for k in per_reward)]
    chosen += PANELS[1:]
    return [(title, keys) for title, keys in chosen if logged & set(keys)]


def curves_figure(log_history: Sequence[dict[str, Any]]) -> Any:
    """A matplotlib Figure of `panels(log_history)` against the step, three panels a row."""
    from matplotlib.figure import Figure

    chosen = panels(log_history) or [PANELS[0]]
    columns = min(3, len(chosen))
    rows = -(-len(chosen) // columns)
    fig = Figure(figsize=(4.2 * columns, 3.2 * rows + 0.4), layout="constrained")
    grid = fig.subplots(rows, columns, squeeze=False)
    for axes, (title, keys) in zip(grid.flat, chosen, strict=False):
        for key in keys:
            points = [(e["step"], e[key]) for e in log_history if key in e and "step" in e]
            axes.plot([s for s, _ in points], [v for _, v in points], marker="o", markersize=3, label=key)
        if len(keys) > 1:
            axes.legend(fontsize="small")
        axes.set_title(title, fontsize="medium")
        axes.set(xlabel="step")
        axes.grid(alpha=0.3)
    for axes in list(grid.flat)[len(chosen) :]:
        axes.set_visible(False)
    fig.suptitle(WINDOW, fontsize="small")
    return fig
