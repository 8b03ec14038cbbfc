"""Logs and plots people read: numbers printed as numbers, a panel per logged quantity with titles that
say what is averaged, and no notice on every run that flags nothing wrong."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from transformers.trainer_callback import CallbackHandler, PrinterCallback, ProgressCallback

from grpo_rlvr.history import (
    NumericPrinterCallback,
    NumericProgressCallback,
    panels,
    use_numeric_progress,
    write_history,
)
from grpo_rlvr.sagemaker_job import metric_definitions

LOGS = {"loss": 0.0123456789, "reward": 0.75, "reward_std": 0.25, "grad_norm": 1.0e-5, "step_time": 2.0}
LOGS |= {"learning_rate": 1.84e-4, "completions/mean_length": 41.5, "epoch": 0.5}


class Bar:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, line: str) -> None:
        self.lines.append(line)


def test_each_logging_step_prints_numbers_not_quoted_strings() -> None:
    callback = NumericProgressCallback()
    callback.training_bar = Bar()
    state = SimpleNamespace(is_world_process_zero=True)
    callback.on_log(None, state, None, logs={**LOGS, "total_flos": 3.0e12, "note": "text"})
    (line,) = callback.training_bar.lines
    printed = ast.literal_eval(line)
    assert printed == {**LOGS, "loss": 0.01235, "note": "text"}
    assert "'0." not in line  # no number in quotes
    for metric in metric_definitions():
        (found,) = re.findall(metric["Regex"], line)
        assert float(found) == printed[metric["Regex"].split("'")[1]]


def test_with_disable_tqdm_each_logging_step_prints_numbers_too(capsys: pytest.CaptureFixture) -> None:
    state = SimpleNamespace(is_local_process_zero=True)
    PrinterCallback().on_log(None, state, None, logs=dict(LOGS))
    assert "'loss': '0.01235'" in capsys.readouterr().out  # transformers' own printer quotes numbers
    NumericPrinterCallback().on_log(None, state, None, logs={**LOGS, "total_flos": 3.0e12})
    line = capsys.readouterr().out
    assert ast.literal_eval(line) == {**LOGS, "loss": 0.01235} and "'0." not in line
    for metric in metric_definitions():
        (found,) = re.findall(metric["Regex"], line)
        assert float(found) == ast.literal_eval(line)[metric["Regex"].split("'")[1]]


def test_the_trainer_progress_bar_and_plain_printer_are_swapped_for_numeric_ones() -> None:
    for plain, numeric in (
        (ProgressCallback, NumericProgressCallback),
        (PrinterCallback, NumericPrinterCallback),
    ):
        handler = CallbackHandler([plain()], None, None, None, None)
        use_numeric_progress(
            SimpleNamespace(pop_callback=handler.pop_callback, add_callback=handler.add_callback)
        )
        assert [type(c) for c in handler.callbacks] == [numeric]


HISTORY = [
    {"step": s, "loss": 0.1 / s, "reward": 0.2 * s, "rewards/gsm8k_format/mean": 0.5,
     "rewards/gsm8k_correctness/mean": 0.1 * s, "completions/mean_length": 40.0 + s,
     "completions/clipped_ratio": 0.5 / s, "kl": 0.01 * s, "entropy": 1.0 - 0.1 * s}
    for s in (1, 2, 3)
]  # fmt: skip


def test_a_panel_per_reward_and_per_quantity_with_what_is_averaged(tmp_path: Path) -> None:
    titles = [title for title, _ in panels(HISTORY)]
    assert titles == [
        "reward: weighted sum, mean per completion",
        "gsm8k_correctness: mean reward per completion",
        "gsm8k_format: mean reward per completion",
        "completion length: mean tokens per completion",
        "clipped: share of completions cut at max_completion_length",
        "KL to the reference and entropy: mean per token",
        "loss",
    ]
    assert dict(panels(HISTORY))["KL to the reference and entropy: mean per token"] == ("kl", "entropy")
    # Without a reference model TRL logs no KL; the panel shows entropy alone; an unlogged panel goes.
    without = [{k: v for k, v in e.items() if k not in ("kl", "completions/clipped_ratio")} for e in HISTORY]
    assert "clipped: share of completions cut at max_completion_length" not in dict(panels(without))
    assert "KL to the reference and entropy: mean per token" in dict(panels(without))
    write_history(HISTORY, tmp_path)
    png = (tmp_path / "training_curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1260, 1000)  # 7 panels: 3 a row, 3 rows


NOTICE_PROBE = """
import logging, sys
if sys.argv[1] == "package":
    import grpo_rlvr
logging.basicConfig(level=logging.WARNING)
logging.getLogger("bitsandbytes.backends.cpu.ops").warning(
    "Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure", "no kernels")
logging.getLogger("bitsandbytes.backends.cpu.ops").warning("a real bitsandbytes problem")
from deepspeed.accelerator import get_accelerator
print(get_accelerator()._name)
"""


def _probe(mode: str) -> str:
    env = {"PATH": "/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", NOTICE_PROBE, mode], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "cpu"
    return done.stdout + done.stderr  # DeepSpeed logs to stdout


def test_notices_that_flag_nothing_are_silenced_and_real_warnings_kept() -> None:
    quiet, loud = _probe("package"), _probe("bare")
    for notice in ("Failed to load CPU gemm_4bit_forward", "Setting accelerator to CPU"):
        assert notice in loud  # what the libraries print without the package
        assert notice not in quiet
    assert "a real bitsandbytes problem" in quiet
