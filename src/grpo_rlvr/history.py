"""A run's logged history as JSONL and its reward/loss curves as a PNG, beside run_summary.json.

In the container the summary folder is /opt/ml/output/data, which SageMaker uploads with the job, so
the numbers the trainer logged are there to read after the instance is gone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HISTORY_NAME = "log_history.jsonl"
CURVES_NAME = "training_curves.png"
CURVES = (("reward", "reward (mean over the group)"), ("loss", "loss"))


def write_history(log_history: Sequence[dict[str, Any]], folder: Path) -> dict[str, str]:
    """Write the trainer's log history and its curves into `folder`; returns {kind: file name}."""
    from matplotlib.figure import Figure

    folder.mkdir(parents=True, exist_ok=True)
    with (folder / HISTORY_NAME).open("w", encoding="utf-8") as f:
        for entry in log_history:
            f.write(json.dumps(entry) + "\n")
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    for axes, (key, title) in zip(fig.subplots(1, len(CURVES)), CURVES, strict=True):
        points = [(e["step"], e[key]) for e in log_history if key in e and "step" in e]
        axes.plot([s for s, _ in points], [v for _, v in points], marker="o", markersize=3)
        axes.set(title=title, xlabel="step")
        axes.grid(alpha=0.3)
    fig.savefig(folder / CURVES_NAME, dpi=100)
    return {"log_history": HISTORY_NAME, "curves": CURVES_NAME}
