"""SIGKILL at seeded random points (mid-step, mid-save, mid-rotation), many times in one run: every
relaunch resumes from a complete checkpoint at most `save_steps` old, and the run ends at the same step
with the same weights as one that was never killed (deterministic CPU training on the tiny model)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from grpo_rlvr import checkpoints

MAX_STEPS, SAVE_STEPS, KILLS = 12, 2, 8
REWARD = """
def sevens(completions, **kwargs):
    return [c.count("7") / max(len(c), 1) for c in completions]
"""
# A launcher that imports the libraries once, then starts each training run as a forked child with
# one fault armed: the child SIGKILLs itself at that point. Each child is a fresh process that reads
# everything from disk, as a relaunched container would; only the import time is shared.
DRIVER = """
import logging, os, shutil, signal, sys
from pathlib import Path
from transformers import Trainer, TrainerCallback
from grpo_rlvr.training import grpo
from grpo_rlvr.config.loading import load_config

def die():
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)

def run(recipe, phase, at, log_file):
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    done = {"step": 0}

    class Faults(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, **kwargs):  # gradients computed, not applied
            if phase == "step" and state.global_step + 1 == at:
                die()
        def on_step_end(self, args, state, control, **kwargs):
            done["step"] = state.global_step

    save_optimizer = Trainer._save_optimizer_and_scheduler
    def save_optimizer_then_die(self, output_dir):  # weights and optimizer written; trainer state not
        save_optimizer(self, output_dir)
        if phase == "save" and self.state.global_step == at:
            die()
    Trainer._save_optimizer_and_scheduler = save_optimizer_then_die

    rmtree = shutil.rmtree
    def rmtree_partly_then_die(path, *args, **kwargs):  # one file of the old checkpoint gone, then killed
        if phase == "rotation" and done["step"] == at:
            min(p for p in Path(path).iterdir() if p.is_file()).unlink()
            die()
        rmtree(path, *args, **kwargs)
    shutil.rmtree = rmtree_partly_then_die

    summary = grpo.run(load_config(recipe), [Faults()])
    print("final step", summary["global_step"], flush=True)

for line in sys.stdin:
    recipe, phase, at, log_file = line.split()
    pid = os.fork()
    if pid == 0:
        try:
            run(recipe, phase, int(at), log_file)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status), flush=True)
"""


def _recipe(folder: Path, model: str, data: Path, reward: Path) -> Path:
    values = {
        "model_name_or_path": model, "dataset_path": str(data), "reward_module": str(reward),
        "rewards": ["sevens"], "num_shots": 0, "per_device_train_batch_size": 4, "num_generations": 2,
        "max_completion_length": 6, "learning_rate": 1e-2, "lr_scheduler_type": "constant",
        "logging_steps": 1, "gradient_checkpointing": False, "disable_tqdm": True, "seed": 0, "use_cpu": True,
        "max_steps": MAX_STEPS, "save_strategy": "steps", "save_steps": SAVE_STEPS, "save_total_limit": 1,
        "output_dir": str(folder / "checkpoints"), "model_dir": str(folder / "model"),
        "summary_dir": str(folder / "output"),
    }  # fmt: skip
    path = folder / "recipe.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(values))
    return path


class Launcher:
    """Training runs, each a fresh child process of one driver; returns (exit code, its output)."""

    def __init__(self, folder: Path) -> None:
        script = folder / "driver.py"
        script.write_text(DRIVER)
        self.folder, self.runs = folder, 0
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen(
            [sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )

    def __call__(self, recipe: Path, phase: str = "none", step: int = 0) -> tuple[int, str]:
        self.runs += 1
        log = self.folder / f"run-{self.runs}.log"
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(f"{recipe} {phase} {step} {log}\n")
        self.process.stdin.flush()
        code = int(self.process.stdout.readline())
        return code, log.read_text()

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def _weights(model_dir: Path) -> str:
    return hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()


def _fault(rng: random.Random, resumed: int, phase: str) -> tuple[str, int]:
    """A seeded fault within the next two saves: mid-step anywhere, mid-save or mid-rotation at a save."""
    saves = [s for s in range(SAVE_STEPS, MAX_STEPS + 1, SAVE_STEPS) if s > resumed][:2]
    if phase == "rotation":  # removes the previous complete checkpoint (one must exist); not the last
        saves = [s for s in saves if SAVE_STEPS < s < MAX_STEPS]
    if phase == "step" or not saves:
        return "step", rng.randint(resumed + 1, min(resumed + SAVE_STEPS + 1, MAX_STEPS))
    return phase, rng.choice(saves)


def test_sigkill_anywhere_resumes_and_ends_with_the_uninterrupted_weights(
    tmp_path: Path, tiny_model: str
) -> None:
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Numbers: {i} {i + 1}"}) + "\n" for i in range(48)))
    reward = tmp_path / "sevens.py"
    reward.write_text(REWARD)
    launch = Launcher(tmp_path)
    try:
        code, output = launch(_recipe(tmp_path / "reference", tiny_model, data, reward))
        assert code == 0, output[-3000:]

        recipe = _recipe(tmp_path / "faulted", tiny_model, data, reward)
        saved = tmp_path / "faulted" / "checkpoints"
        rng, resumed, seen = random.Random(14), 0, []
        for planned in rng.sample(["step", "save", "rotation"] * 3, KILLS):
            phase, step = _fault(rng, resumed, planned)
            code, output = launch(recipe, phase, step)
            assert code == -signal.SIGKILL, (phase, step, output[-3000:])
            start = saved / f"checkpoint-{resumed}" if resumed else "step 0"
            assert f"training from {start}\n" in output  # it resumed where the last kill left it
            latest = checkpoints.latest_complete_checkpoint(saved)
            finished = step - 1 if phase == "step" else step  # steps whose update was applied
            resumed = int(latest.name.rpartition("-")[2]) if latest else 0
            assert finished - resumed <= SAVE_STEPS, (phase, step, resumed)
            seen.append((phase, step, resumed))
        assert {phase for phase, _, _ in seen} == {"step", "save", "rotation"}, seen

        code, output = launch(recipe)
        assert code == 0, output[-3000:]
    finally:
        launch.close()
    assert f"training from {saved / f'checkpoint-{resumed}' if resumed else 'step 0'}\n" in output
    assert f"final step {MAX_STEPS}" in output
    assert [p.name for p in saved.glob("checkpoint-*")] == [f"checkpoint-{MAX_STEPS}"]  # limit 1
    assert _weights(tmp_path / "faulted" / "model") == _weights(tmp_path / "reference" / "model"), seen


def test_checkpoints_are_ordered_by_step_past_checkpoint_9(tmp_path: Path) -> None:
    for step in (2, 9, 10, 11):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "weights.bin").write_bytes(b"w" * step)
        checkpoints.mark_complete(folder, step, {"model": "m"})
    assert [p.name for p in checkpoints.checkpoint_folders(tmp_path)] == [
        "checkpoint-2", "checkpoint-9", "checkpoint-10", "checkpoint-11"
    ]  # fmt: skip
    assert checkpoints.latest_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-11"
    checkpoints.rotate(tmp_path, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-10", "checkpoint-11"]
