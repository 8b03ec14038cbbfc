"""What a reader sees: the Markdown summary (`results.md`) and the accuracy-vs-shots plot."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from grpo_rlvr.tasks import GSM8K, Task

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SERIES_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e")
_DODGE = 0.12  # horizontal offset between series, so equal accuracies do not hide each other


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def render_table(metrics: dict[str, Any], task: Task = GSM8K) -> str:
    """The Markdown summary: model x shots with n and interval, plus trained - base when comparing."""
    data, dec = metrics["data"], metrics["decoding"]
    lines = [
        f"# {task.title} evaluation",
        "",
        f"{data['examples']} {task.noun}"
        + (f" from `{data['source']}`" if data["source"] else "")
        + (f" (split {data['split']})" if data["split"] else "")
        + f"; greedy decoding, at most {dec['max_new_tokens']} new tokens, stopping at "
        + ", ".join(["EOS", *(f"`{t}`" for t in dec["end_tokens"])])
        + f" or {task.stop_phrase()}; backend {metrics['backend']}. Intervals: 95% Wilson.",
        "",
        f"| model | shots | {task.metric} | correct / n | 95% interval |",
        "|---|---:|---:|---:|---|",
    ]
    lines += [
        f"| {r['model']} | {r['shots']} | {_pct(r['accuracy'])} | {r['correct']} / {r['n']} | "
        f"[{_pct(r['ci95'][0])}, {_pct(r['ci95'][1])}] |"
        for r in metrics["results"]
    ]
    if "comparison" in metrics:
        c = metrics["comparison"]
        lines += [
            "",
            f"## trained - base (base: {c['base']}, trained: {c['trained']})",
            "",
            "| shots | base | trained | difference | intervals overlap | McNemar p (paired) |",
            "|---:|---:|---:|---:|---|---:|",
        ]
        lines += [
            f"| {r['shots']} | {_pct(r['base'])} | {_pct(r['trained'])} | {100 * r['difference']:+.1f} pt | "
            f"{'yes' if r['intervals_overlap'] else 'no'} | {r['mcnemar_p']:.4g} |"
            for r in c["by_shots"]
        ]
    return "\n".join(lines) + "\n"


def plot_accuracy(results: list[dict[str, Any]], path: Path | None = None, task: Task = GSM8K) -> Figure:
    """Accuracy vs shots, one series per model, Wilson error bars; saved to `path` when given.

    A bare `Figure` (no pyplot): no global backend or figure registry, nothing to close.
    """
    from matplotlib.figure import Figure

    labels = list(dict.fromkeys(r["model"] for r in results))
    fig = Figure(figsize=(7, 4.5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    for i, label in enumerate(labels):
        part = [r for r in results if r["model"] == label]
        acc = [100 * r["accuracy"] for r in part]
        low = [a - 100 * r["ci95"][0] for a, r in zip(acc, part, strict=True)]
        high = [100 * r["ci95"][1] - a for a, r in zip(acc, part, strict=True)]
        x = [r["shots"] + (i - (len(labels) - 1) / 2) * _DODGE for r in part]
        color = SERIES_COLORS[i % len(SERIES_COLORS)]
        ax.errorbar(x, acc, yerr=[low, high], label=label, color=color, marker="o", capsize=4, linewidth=2)
    ax.set_xticks(sorted({r["shots"] for r in results}))
    ax.set_xlabel("worked examples in the prompt (shots)")
    ax.set_ylabel(f"{task.metric} (%), 95% Wilson interval")
    ax.set_title(f"{task.title}, n = {max(r['n'] for r in results)} {task.noun}")
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", fontsize="small")  # below the axes: long paths hide no data
    if path is not None:
        fig.savefig(path)
    return fig
