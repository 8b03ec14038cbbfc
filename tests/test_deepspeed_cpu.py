"""DeepSpeed ZeRO-2 and ZeRO-3 for real, on the CPU: `grpo-rlvr launch` (the container's entry point) told
to run 2 CPU processes through our accelerate configs, with DeepSpeed's CPU accelerator (gloo).

GRPO with LoRA and a reference model (beta > 0), a checkpoint, a SIGTERM stop and a resume to the same
global step, a merged model that loads; DeepSpeed's engine leaves its own per-rank files in every
checkpoint, the proof it ran at that stage; and the non-finite weight check reads ZeRO-3's partitions.
The first run on a machine builds DeepSpeed's small CPU communication op (cached afterwards).
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from bad_inputs import SMOKE_HYPERPARAMETERS, make_tree
from test_launch import Launcher, _free_port
from transformers import AutoModelForCausalLM

from grpo_rlvr import checkpoints
from grpo_rlvr.sagemaker import Paths

HYPERPARAMETERS = {
    **SMOKE_HYPERPARAMETERS,
    "cpu_processes": "2",
    "beta": "0.04",  # a reference model: LoRA's base with the adapter switched off
    "num_shots": "0",
    "per_device_train_batch_size": "4",  # x 2 processes: 2 groups of 4 per step
    "max_completion_length": "8",
    "disable_tqdm": "true",
}


@pytest.fixture
def start() -> Iterator[Callable[[Path], Launcher]]:
    """Starts `grpo-rlvr launch` on an /opt/ml tree (a free port each); stops any left running."""
    started: list[Launcher] = []

    def start_one(base: Path) -> Launcher:
        env = {"GRPO_RLVR_HOST_ADDRS": "algo-1=127.0.0.1", "GRPO_RLVR_MAIN_PROCESS_PORT": str(_free_port())}
        started.append(Launcher(base, env))
        return started[-1]

    yield start_one
    for launcher in started:
        launcher.stop()


def _engine_files(checkpoint: Path) -> set[str]:
    """The files DeepSpeed's engine wrote into a checkpoint (its `global_step<N>` folder)."""
    (folder,) = checkpoint.glob("global_step*")
    return {p.name for p in folder.iterdir()}


def _loads(model_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    assert not hasattr(model, "peft_config") and sum(p.numel() for p in model.parameters()) > 0


def test_zero2_trains_lora_with_a_reference_model_and_merges(
    tmp_path: Path, tiny_model: str, start: Callable[[Path], Launcher]
) -> None:
    values = {**HYPERPARAMETERS, "accelerate_config": "zero2", "max_steps": "2", "save_steps": "2"}
    paths = Paths(make_tree(tmp_path / "opt_ml", values))
    code, output = start(paths.base).finish(timeout=900)
    assert code == 0, output[-4000:]
    assert "2 process(es)" in output
    # ZeRO-2: one copy of the weights, the optimizer state in one partition per process.
    assert _engine_files(paths.checkpoint_dir / "checkpoint-2") == {
        "mp_rank_00_model_states.pt",
        "zero_pp_rank_0_mp_rank_00_optim_states.pt",
        "zero_pp_rank_1_mp_rank_00_optim_states.pt",
    }
    summary = json.loads((paths.model_dir / "run_summary.json").read_text())
    assert summary["global_step"] == 2 and summary["full_model"]
    history = [json.loads(line) for line in (paths.output_data_dir / "log_history.jsonl").open()]
    assert any("kl" in entry for entry in history)  # the reference model's KL was computed
    _loads(paths.model_dir)


def test_zero3_stops_on_sigterm_and_resumes_to_the_same_step(
    tmp_path: Path, tiny_model: str, start: Callable[[Path], Launcher]
) -> None:
    values = {**HYPERPARAMETERS, "accelerate_config": "zero3", "max_steps": "4", "save_steps": "100"}
    paths = Paths(make_tree(tmp_path / "opt_ml", values))
    first = start(paths.base)
    first.wait_for("'loss'", count=1, timeout=600)  # training is under way on both processes
    first.process.send_signal(signal.SIGTERM)
    code, output = first.finish(timeout=300)
    assert code == 128 + signal.SIGTERM, output[-4000:]
    checkpoint = checkpoints.latest_complete_checkpoint(paths.checkpoint_dir)
    assert checkpoint is not None
    step = checkpoints.checkpoint_step(checkpoint)
    assert 1 <= step < 4
    # ZeRO-3: the weights too are partitioned, one model-state file per process.
    assert {
        "zero_pp_rank_0_mp_rank_00_model_states.pt",
        "zero_pp_rank_1_mp_rank_00_model_states.pt",
    } <= _engine_files(checkpoint)
    assert f"resume from step {step}" in paths.failure_file.read_text()

    code, output = start(paths.base).finish(timeout=900)
    assert code == 0, output[-4000:]
    assert f"training from {checkpoint}" in output
    summary = json.loads((paths.model_dir / "run_summary.json").read_text())
    assert (summary["global_step"], summary["resumed_from"]) == (4, str(checkpoint))
    assert json.loads((checkpoint / "trainer_state.json").read_text())["global_step"] == step
    _loads(paths.model_dir)  # gathered from the partitions (zero3_save_16bit_model) and merged


def test_zero3_non_finite_check_reads_the_partitions(
    tmp_path: Path, tiny_model: str, start: Callable[[Path], Launcher]
) -> None:
    """A learning rate that overflows every weight at the first step: under ZeRO-3 every parameter is
    empty outside a gather, so only a check of each process's partition sees it at that step."""
    values = {
        **HYPERPARAMETERS,
        "accelerate_config": "zero3",
        "max_steps": "1",
        "learning_rate": "1e45",
        "weight_decay": "0.1",  # AdamW scales each weight by (1 - lr * weight_decay): -inf in fp32
    }
    paths = Paths(make_tree(tmp_path / "opt_ml", values))
    code, output = start(paths.base).finish(timeout=900)
    assert code == 1, output[-4000:]
    failure = paths.failure_file.read_text()
    assert "NonFiniteError: weight" in failure and "holds NaN or inf after step 1" in failure
    assert not (paths.model_dir / "run_summary.json").exists()
