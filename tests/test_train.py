"""GRPO training end to end on CPU: it learns, it saves loadable models, it resumes, it stops cleanly on
SIGTERM, two processes agree, and every recipe error fails before a model loads."""

import dataclasses
import json
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from grpo_rlvr import checkpoints, cli
from grpo_rlvr.config import checks
from grpo_rlvr.config.loading import load_config
from grpo_rlvr.config.sections import ConfigError
from grpo_rlvr.rewards import REGISTRY
from grpo_rlvr.sagemaker_job import metric_definitions
from grpo_rlvr.training import callbacks, generation, grpo, outputs

REPO = Path(__file__).resolve().parents[1]

TOY = "toy_sevens"
# The toy task: a dense, verifiable reward a random policy scores ~0 on and a trained one ~1 on.
TOY_REWARD = f'''
def {TOY}(completions, **kwargs):
    """Share of the completion's characters that are the digit 7."""
    return [c.count("7") / max(len(c), 1) for c in completions]
'''
BASE = {
    "num_shots": 0,
    "rewards": [TOY],
    "per_device_train_batch_size": 16,
    "num_generations": 8,
    "max_completion_length": 12,
    "learning_rate": 1e-2,
    "lr_scheduler_type": "constant",
    "logging_steps": 1,
    "save_strategy": "no",
    "gradient_checkpointing": False,
    "disable_tqdm": True,
    "seed": 0,
}
LORA = {"use_peft": True, "lora_r": 16, "lora_alpha": 32, "lora_target_modules": "all-linear"}


@pytest.fixture(scope="module")
def toy_reward(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The toy reward as a user reward module (so child processes load it too); unregistered after."""
    path = tmp_path_factory.mktemp("rewards") / "toy.py"
    path.write_text(TOY_REWARD)
    yield str(path)
    REGISTRY.pop(TOY, None)
    checks._LOADED_REWARD_MODULES.discard(path.resolve())


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("data") / "prompts.jsonl"
    path.write_text(
        "".join(json.dumps({"prompt": f"Numbers: {i} {i + 1} {i + 2}"}) + "\n" for i in range(64))
    )
    return str(path)


@pytest.fixture(scope="module")
def sharp_model(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny model with its own, sharper output layer.

    A random model's tied 0.02-scale embeddings bound every logit to about ±1.3, so only training the
    embeddings themselves (full fine-tune) can move its output distribution. LoRA never touches the output
    layer (TRL refuses it), so a LoRA run needs a head that, like a pretrained model's, can express a
    peaked distribution: an untied head with weights of scale 0.2.
    """
    from transformers import AutoConfig

    model_config = AutoConfig.from_pretrained(tiny_model)
    model_config.tie_word_embeddings = False
    model = AutoModelForCausalLM.from_pretrained(tiny_model, config=model_config)
    torch.manual_seed(1)
    with torch.no_grad():
        model.lm_head.weight.copy_(torch.randn_like(model.lm_head.weight) * 0.2)
    out = tmp_path_factory.mktemp("sharp")
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(out)
    return str(out)


def make_recipe(tmp_path: Path, **values: Any) -> Path:
    """A recipe file whose outputs all go under tmp_path."""
    recipe = {
        "use_cpu": True,  # trained on the CPU on purpose: without it a recipe wants a GPU
        "output_dir": str(tmp_path / "checkpoints"),
        "model_dir": str(tmp_path / "model"),
        "summary_dir": str(tmp_path / "output"),
        **values,
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


class History(TrainerCallback):
    """Every logged entry, as the trainer logged it."""

    def __init__(self) -> None:
        self.logs: list[dict[str, float]] = []

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **_: Any) -> None:
        self.logs.append({**(logs or {}), "step": state.global_step})

    def series(self, key: str) -> list[float]:
        return [entry[key] for entry in self.logs if key in entry]

    def steps(self, key: str) -> list[int]:
        return [entry["step"] for entry in self.logs if key in entry]


def toy_recipe(tmp_path: Path, model: str, data: str, reward: str, **values: Any) -> Path:
    toy = {"model_name_or_path": model, "dataset_path": data, "reward_module": reward, **BASE}
    return make_recipe(tmp_path, **{**toy, **values})


def reload_and_generate(model_dir: Path) -> str:
    """The saved model loads with plain transformers and generates up to its own stop tokens."""
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    inputs = tokenizer("Numbers: 1 2 3", return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1] :])


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_grpo_raises_a_toy_reward_and_saves_a_model_that_generates(
    mode: str, tmp_path: Path, sharp_model: str, toy_data: str, toy_reward: str
) -> None:
    steps = 20  # a random policy writes its first 7 after ~10 steps; then the reward climbs within ~3
    values = {"max_steps": steps, **(LORA if mode == "lora" else {"learning_rate": 3e-3})}
    history = History()
    summary = grpo.run(
        load_config(toy_recipe(tmp_path, sharp_model, toy_data, toy_reward, **values)), [history]
    )

    rewards = history.series(f"rewards/{TOY}/mean")
    assert len(rewards) == steps
    first, last = sum(rewards[:3]) / 3, sum(rewards[-3:]) / 3
    assert last - first > 0.4, rewards
    assert summary["rewards"][TOY] == {"first": rewards[0], "final": rewards[-1]}
    assert summary["global_step"] == steps

    model_dir = tmp_path / "model"
    base = load_file(Path(sharp_model) / "model.safetensors")
    merged = load_file(model_dir / "model.safetensors")
    changed = [k for k in base if not torch.equal(base[k], merged[k])]
    if mode == "lora":
        adapter = load_file(model_dir / "adapter" / "adapter_model.safetensors")
        assert all(adapter[k].abs().max() > 0 for k in adapter if "lora_B" in k)  # B starts at zero
        assert changed and all("proj" in k for k in changed)  # merged projections; head and norms as before
    else:
        assert "lm_head.weight" in changed and len(changed) > len(base) // 2
    assert json.loads((model_dir / "run_summary.json").read_text())["global_step"] == steps
    assert (tmp_path / "output" / "run_summary.json").read_text() == (
        model_dir / "run_summary.json"
    ).read_text()
    assert not (model_dir / ".partial").exists()
    reload_and_generate(model_dir)


def test_qlora_4bit_trains_and_merges_into_a_full_precision_model(
    tmp_path: Path, tiny_model: str, toy_data: str, toy_reward: str
) -> None:
    recipe = toy_recipe(
        tmp_path, "builtin:tiny-qwen2", toy_data, toy_reward, max_steps=3, load_in_4bit=True, **LORA
    )
    summary = grpo.run(load_config(recipe))

    model_dir = tmp_path / "model"
    assert summary["global_step"] == 3 and summary["full_model"]
    adapter = load_file(model_dir / "adapter" / "adapter_model.safetensors")
    assert any(adapter[k].abs().max() > 0 for k in adapter if "lora_B" in k)
    merged_config = json.loads((model_dir / "config.json").read_text())
    assert "quantization_config" not in merged_config  # merged into fp32 weights, not 4-bit ones
    merged = load_file(model_dir / "model.safetensors")
    assert all(t.dtype == torch.float32 for t in merged.values())
    # The adapter is in the weights: W + (alpha / r) B A for every adapted module. The adapter is kept in
    # QLoRA's bf16 compute dtype, so its product is compared to bf16 precision.
    base = load_file(Path(tiny_model) / "model.safetensors")
    prefix, scale = "base_model.model.", LORA["lora_alpha"] / LORA["lora_r"]
    adapted = {k.removeprefix(prefix).removesuffix(".lora_A.weight") for k in adapter if ".lora_A." in k}
    assert len(adapted) >= 7
    for module in adapted:
        lora_b, lora_a = (adapter[f"{prefix}{module}.lora_{ab}.weight"].float() for ab in "BA")
        change = merged[f"{module}.weight"] - base[f"{module}.weight"]
        torch.testing.assert_close(change, scale * lora_b @ lora_a, rtol=1e-2, atol=1e-6)
    assert max((merged[f"{m}.weight"] - base[f"{m}.weight"]).abs().max() for m in adapted) > 1e-3
    assert json.loads((model_dir / "generation_config.json").read_text())["eos_token_id"] == [
        AutoTokenizer.from_pretrained(tiny_model).eos_token_id
    ]
    reload_and_generate(model_dir)


def test_resume_starts_after_the_newest_complete_checkpoint(
    tmp_path: Path, sharp_model: str, toy_data: str, toy_reward: str
) -> None:
    def run(max_steps: int) -> tuple[dict, list[int]]:
        history = History()
        recipe = toy_recipe(
            tmp_path,
            sharp_model,
            toy_data,
            toy_reward,
            max_steps=max_steps,
            save_strategy="steps",
            save_steps=1,
        )
        return grpo.run(load_config(recipe), [history]), history.steps("loss")

    saved = tmp_path / "checkpoints"
    summary, _ = run(2)
    assert summary["resumed_from"] is None
    assert all(checkpoints.is_complete(saved / f"checkpoint-{n}") for n in (1, 2))
    # TRL's card in every checkpoint; a local folder is no Hub id, so it names no base model.
    for folder in (saved / "checkpoint-1", saved / "checkpoint-2", tmp_path / "model"):
        card = ModelCard.load(folder / "README.md").data
        assert card.library_name == "transformers" and card.base_model is None

    (saved / "checkpoint-2" / "optimizer.pt").unlink()  # as if killed while writing it
    summary, logged = run(3)
    assert summary["resumed_from"] == str(saved / "checkpoint-1")
    assert logged == [2, 3] and summary["global_step"] == 3

    summary, logged = run(4)
    assert summary["resumed_from"] == str(saved / "checkpoint-3")
    assert logged == [4] and summary["global_step"] == 4


def test_checkpoint_completeness_needs_the_marker_and_every_listed_file(tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoint-5"
    checkpoint.mkdir()
    (checkpoint / "trainer_state.json").write_text("{}")
    assert not checkpoints.is_complete(checkpoint)  # no marker: written before the save finished
    checkpoints.mark_complete(checkpoint, 5, {})
    assert checkpoints.is_complete(checkpoint)
    assert checkpoints.latest_complete_checkpoint(tmp_path) == checkpoint
    (checkpoint / "trainer_state.json").write_text("{}  ")  # truncated or rewritten since
    assert not checkpoints.is_complete(checkpoint)
    assert checkpoints.latest_complete_checkpoint(tmp_path) is None


def test_a_save_that_fails_leaves_no_model_that_looks_complete(
    tmp_path: Path, sharp_model: str, toy_data: str, toy_reward: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = tmp_path / "model" / "run_summary.json"
    stale.parent.mkdir()
    stale.write_text("{}")  # an earlier run's marker

    def disk_full(*_: Any) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(outputs, "merge_adapter", disk_full)
    with pytest.raises(OSError, match="No space left"):
        grpo.run(load_config(toy_recipe(tmp_path, sharp_model, toy_data, toy_reward, max_steps=1, **LORA)))
    assert not stale.exists()
    assert not (tmp_path / "model" / "config.json").exists()
    assert not (tmp_path / "output" / "run_summary.json").exists()


class SignalAt(TrainerCallback):
    """Sends this process a real signal (SIGTERM by default) at the end of one step."""

    def __init__(self, step: int, signum: int = signal.SIGTERM) -> None:
        self.step = step
        self.signum = signum

    def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        if state.global_step == self.step:
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT-ctrl-c"])
def test_sigterm_writes_a_checkpoint_raises_and_writes_no_model(
    signum: int, tmp_path: Path, sharp_model: str, toy_data: str, toy_reward: str
) -> None:
    before = signal.getsignal(signum)
    recipe = toy_recipe(tmp_path, sharp_model, toy_data, toy_reward, max_steps=20, **LORA)
    with pytest.raises(checkpoints.TrainingInterrupted) as stopped:
        grpo.run(load_config(recipe), [SignalAt(2, signum)])
    assert stopped.value.signum == signum
    assert f"training stopped by {signal.Signals(signum).name} at step 3" in str(stopped.value)

    # The flag is raised after step 2's checks ran, so the stop lands at the end of step 3.
    assert stopped.value.step == 3
    assert stopped.value.checkpoint == tmp_path / "checkpoints" / "checkpoint-3"
    assert checkpoints.is_complete(stopped.value.checkpoint)
    assert checkpoints.latest_complete_checkpoint(tmp_path / "checkpoints") == stopped.value.checkpoint
    assert not (tmp_path / "model").exists()
    assert signal.getsignal(signum) is before


TWO_RANKS = """
import json, os, sys, hashlib
from transformers import TrainerCallback
from grpo_rlvr.training import grpo
from grpo_rlvr.config.loading import load_config

class RankLog(TrainerCallback):
    def __init__(self):
        self.losses = []
    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append(logs["loss"])
    def on_train_end(self, args, state, control, model=None, **kwargs):
        digest = hashlib.sha256()
        for name, p in sorted(model.named_parameters()):
            if p.requires_grad:
                digest.update(p.detach().cpu().numpy().tobytes())
        self.weights = digest.hexdigest()

log = RankLog()
summary = grpo.run(load_config(sys.argv[1], sys.argv[3:]), [log])
rank = os.environ["RANK"]
with open(os.path.join(sys.argv[2], f"rank{rank}.json"), "w") as f:
    json.dump({"world": os.environ["WORLD_SIZE"], "losses": log.losses, "weights": log.weights,
               "step": summary["global_step"], "resumed_from": summary["resumed_from"]}, f)
"""


def run_two_ranks(recipe: Path, tmp_path: Path, *overrides: str) -> list[dict[str, Any]]:
    """`grpo.run` in 2 torchrun processes (gloo, CPU); what each rank saw, read from its JSON."""
    script = tmp_path / "two_ranks.py"
    script.write_text(TWO_RANKS)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = subprocess.run(
        [*torchrun, str(script), str(recipe), str(tmp_path), *overrides],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == ["2", "2"]
    assert ranks[0]["losses"] == ranks[1]["losses"] and ranks[0]["weights"] == ranks[1]["weights"]
    return ranks


def test_two_cpu_processes_train_in_step(
    tmp_path: Path, sharp_model: str, toy_data: str, toy_reward: str
) -> None:
    """torchrun with 2 processes (gloo): both ranks log the same losses and end with the same weights."""
    recipe = toy_recipe(
        tmp_path, sharp_model, toy_data, toy_reward, max_steps=3, per_device_train_batch_size=8,
        ddp_find_unused_parameters=False, **LORA,
    )  # fmt: skip
    ranks = run_two_ranks(recipe, tmp_path)
    assert [r["step"] for r in ranks] == [3, 3]
    assert len(ranks[0]["losses"]) == 3 and any(loss != 0 for loss in ranks[0]["losses"])
    assert (tmp_path / "model" / "run_summary.json").is_file()


def test_two_cpu_processes_resume_from_their_checkpoint(
    tmp_path: Path, sharp_model: str, toy_data: str, toy_reward: str
) -> None:
    """A 2-process CPU run restarted after its checkpoint loads each rank's optimizer and RNG state.

    accelerate gives multi-process CPU runs the device `cpu:0`, and transformers loads the optimizer
    with `map_location=args.device` when there are several processes: torch cannot map to `cpu:0`.
    """
    recipe = toy_recipe(
        tmp_path, sharp_model, toy_data, toy_reward, per_device_train_batch_size=8,
        ddp_find_unused_parameters=False, save_strategy="steps", save_steps=1, **LORA,
    )  # fmt: skip
    first = run_two_ranks(recipe, tmp_path, "max_steps=1")
    assert [r["step"] for r in first] == [1, 1]
    checkpoint = tmp_path / "checkpoints" / "checkpoint-1"
    assert checkpoints.is_complete(checkpoint) and (checkpoint / "rng_state_1.pth").is_file()

    resumed = run_two_ranks(recipe, tmp_path, "max_steps=2")
    assert [(r["step"], r["resumed_from"]) for r in resumed] == [(2, str(checkpoint))] * 2
    assert len(resumed[0]["losses"]) == 1  # step 2 only: step 1 came from the checkpoint


BAD_RECIPES = [
    pytest.param(
        {"learning_rat": 1e-5}, "learning_rat: unknown key (did you mean 'learning_rate'?)", id="unknown-key"
    ),
    pytest.param({"learning_rate": "fast"}, "learning_rate: must be a number, got 'fast'", id="wrong-type"),
    pytest.param(
        {"model_name_or_path": "./no/such/model"},
        "model_name_or_path: local path ./no/such/model does not exist",
        id="missing-model-path",
    ),
    pytest.param(
        {"rewards": [TOY, "nope"]}, "rewards: unknown reward(s) ['nope']", id="reward-not-registered"
    ),
    pytest.param(
        {"num_generations": 3}, "num_generations: 3 does not divide the generation batch", id="group-size"
    ),
    pytest.param({"num_shots": 9}, "num_shots: must be between 0 and 8, got 9", id="shots-out-of-range"),
    pytest.param(
        {"rewards": ["gsm8k_correctness"]},
        "reward gsm8k_correctness reads column(s) ['final_answer']",
        id="missing-reward-column",
    ),
    pytest.param(
        {"prompt_format": {"chat": True}},
        "prompt_format: chat needs a tokenizer with a chat template",
        id="chat-without-template",
    ),
    pytest.param(
        {"end_tokens": ["<|im_end|>", "<|not-a-token|>"]},
        "end_tokens: '<|not-a-token|>' is",
        id="end-token-not-one-token",
    ),
    pytest.param(
        {"eval_at_end": True, "val_fraction": 0.25},
        "eval_at_end: needs GSM8K validation rows (question + final_answer); 16 of 16 lack them",
        id="eval-at-end-on-prompt-rows",
    ),
]


@pytest.mark.parametrize(("bad", "message"), BAD_RECIPES)
def test_recipe_errors_fail_before_any_model_loads(
    bad: dict, message: str, tmp_path: Path, tiny_model: str, toy_data: str, toy_reward: str,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
) -> None:  # fmt: skip
    def no_model(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_model)
    recipe = toy_recipe(tmp_path, "builtin:tiny-qwen2", toy_data, toy_reward, **bad)
    assert cli.main(["train", "--recipe", str(recipe)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "model").exists()


def test_smoke_recipe_runs_through_the_cli_on_real_gsm8k(
    tmp_path: Path, tiny_model: str, gsm8k_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    """The CPU smoke recipe as `make smoke` runs it, cut to 2 steps: real rows, GSM8K rewards, outputs."""
    opt_ml = tmp_path / "opt_ml"
    argv = [
        "--recipe", str(REPO / "recipes" / "smoke-cpu.yaml"), f"dataset_path={gsm8k_dir / 'train.jsonl'}",
        f"output_dir={opt_ml / 'checkpoints'}", f"model_dir={opt_ml / 'model'}",
        f"summary_dir={opt_ml / 'output' / 'data'}", "max_steps=2", "save_steps=2", "disable_tqdm=true",
    ]  # fmt: skip
    assert cli.main(["train", *argv]) == 0
    out = capsys.readouterr().out
    assert f"model: {opt_ml / 'model'} (step 2)" in out
    summary = json.loads((opt_ml / "model" / "run_summary.json").read_text())
    # What SageMaker charts: each metric definition the launcher sends matches these real log lines.
    for metric in metric_definitions():
        values = [float(v) for v in re.findall(metric["Regex"], out)]
        assert len(values) == 2, metric  # one per logging step
    # The logged history and its curves, in the summary folder (/opt/ml/output/data in the container).
    output_data = opt_ml / "output" / "data"
    assert summary["files"] == {"log_history": "log_history.jsonl", "curves": "training_curves.png"}
    history = [json.loads(line) for line in (output_data / "log_history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history if "reward" in h] == [1, 2]
    assert (output_data / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert summary["data"]["train_rows"] == 64 and set(summary["rewards"]) == {
        "gsm8k_format",
        "gsm8k_correctness",
    }
    assert summary["config"]["data"]["num_shots"] == 2
    assert checkpoints.is_complete(opt_ml / "checkpoints" / "checkpoint-2")
    # Every card names the built-in as the recipe gave it: TRL's for the merged model, PEFT's for adapters
    # (whose config still names the folder the base was loaded from, as merging and evaluation read it).
    adapter_cards = [opt_ml / "model" / "adapter", opt_ml / "checkpoints" / "checkpoint-2"]
    for folder in (opt_ml / "model", *adapter_cards):
        card = ModelCard.load(folder / "README.md")
        assert card.data.base_model == "builtin:tiny-qwen2", folder
    assert ModelCard.load(opt_ml / "model" / "README.md").data.library_name == "transformers"
    for folder in adapter_cards:
        card = ModelCard.load(folder / "README.md").data
        assert card.library_name == "peft" and "base_model:adapter:builtin:tiny-qwen2" in card.tags
        adapter_base = json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"]
        assert adapter_base == str(tiny_model)


@pytest.mark.parametrize("merge", [True, False], ids=["merged-model", "adapter-only"])
def test_eval_at_end_grades_the_saved_model_on_the_validation_rows(
    merge: bool, tmp_path: Path, tiny_model: str, gsm8k_dir: Path
) -> None:
    """`eval_at_end` runs the evaluation on the saved model (or base + adapter) and reports accuracy."""
    recipe = make_recipe(
        tmp_path, model_name_or_path="builtin:tiny-qwen2", dataset_path=str(gsm8k_dir / "train.jsonl"),
        max_train_samples=8, val_dataset_path=str(gsm8k_dir / "test.jsonl"), max_val_samples=5, eval_limit=3,
        num_shots=0, **LORA, merge_adapter=merge, per_device_train_batch_size=4, num_generations=4,
        max_completion_length=8, max_steps=1, save_strategy="no", gradient_checkpointing=False,
        disable_tqdm=True, eval_at_end=True, eval_shots=[0, 1], eval_max_new_tokens=4,
    )  # fmt: skip
    summary = grpo.run(load_config(recipe))

    eval_dir = tmp_path / "output" / "eval"
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    assert summary["evaluation"] == {
        "dir": str(eval_dir),
        "results": [
            {k: r[k] for k in ("shots", "n", "correct", "accuracy", "ci95")} for r in metrics["results"]
        ],
    }
    assert [(r["shots"], r["n"]) for r in metrics["results"]] == [(0, 3), (1, 3)]
    for r in metrics["results"]:
        assert r["accuracy"] == r["correct"] / 3 and r["ci95"][0] <= r["accuracy"] < r["ci95"][1]
    model = metrics["models"][0]
    expected = (
        (str(tmp_path / "model"), None)
        if merge
        else ("builtin:tiny-qwen2", str(tmp_path / "model" / "adapter"))
    )
    assert (model["model"], model["adapter"]) == expected
    assert metrics["data"]["source"] == str(gsm8k_dir / "test.jsonl") and metrics["data"]["examples"] == 3
    assert "| 1 |" in (eval_dir / "results.md").read_text()
    assert len((eval_dir / "predictions.jsonl").read_text().splitlines()) == 6
    for folder in (tmp_path / "output", tmp_path / "model"):
        assert json.loads((folder / "run_summary.json").read_text())["evaluation"] == summary["evaluation"]


def test_print_config_shows_the_resolved_recipe_and_trains_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    recipe = make_recipe(
        tmp_path, model_name_or_path="Qwen/Qwen2.5-0.5B", num_shots=3, hub_token="hf_abcdefgh123"
    )
    assert cli.main(["train", "--recipe", str(recipe), "--print-config", "learning_rate=2e-5"]) == 0
    printed = capsys.readouterr().out
    resolved = json.loads(printed)
    assert resolved["data"]["num_shots"] == 3 and resolved["training"]["learning_rate"] == 2e-5
    assert "hf_abcdefgh123" not in printed
    assert not (tmp_path / "checkpoints").exists()


def test_an_interrupted_run_exits_143_with_the_checkpoint_to_resume_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def stopped(*_: Any) -> None:
        raise checkpoints.TrainingInterrupted(7, tmp_path / "checkpoint-7")

    monkeypatch.setattr(grpo, "run", stopped)
    recipe = make_recipe(tmp_path, model_name_or_path="Qwen/Qwen2.5-0.5B")
    assert cli.main(["train", "--recipe", str(recipe)]) == 128 + signal.SIGTERM
    assert f"step 7; resume from checkpoint {tmp_path / 'checkpoint-7'}" in capsys.readouterr().err


def test_lora_targets_that_match_nothing_fail_before_the_model_loads(
    tmp_path: Path, sharp_model: str, toy_data: str, toy_reward: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_load(*_: Any) -> None:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(grpo, "load_model", no_load)
    lora = {**LORA, "lora_target_modules": ["q_proj", "qkv_proj"]}
    recipe = toy_recipe(tmp_path, sharp_model, toy_data, toy_reward, max_steps=1, **lora)
    with pytest.raises(ConfigError) as caught:
        grpo.run(load_config(recipe))
    assert caught.value.key == "lora_target_modules"
    assert str(caught.value).startswith("lora_target_modules: 'qkv_proj' matches no module of qwen2;")
    assert "'q_proj'" in str(caught.value)  # the names it does have
    for targets in (["q_proj", "v_proj"], r".*\.mlp\.(up|down)_proj", "all-linear"):
        recipe = toy_recipe(
            tmp_path, sharp_model, toy_data, toy_reward, **{**LORA, "lora_target_modules": targets}
        )
        with pytest.raises(AssertionError, match="the model was loaded"):  # checked, then on to the model
            grpo.run(load_config(recipe))


@pytest.mark.parametrize(("key", "value"), [("loss", math.nan), ("grad_norm", math.inf), ("loss", -math.inf)])
def test_a_non_finite_loss_or_gradient_norm_as_logged_stops_at_that_step(key: str, value: float) -> None:
    """The logged values are checked on their own: in a run the weight check usually fires first."""
    from types import SimpleNamespace

    callback, state = callbacks.StopOnNonFinite(), SimpleNamespace(global_step=3)
    finite = {"loss": 0.5, "grad_norm": 1.0, "reward": 0.25}
    callback.on_log(None, state, None, logs=finite)  # nothing to stop for
    with pytest.raises(callbacks.NonFiniteError, match=rf"^{key} is {value} at step 3: lower learning_rate$"):
        callback.on_log(None, state, None, logs={**finite, key: value})


def test_a_non_finite_loss_or_weight_fails_the_run_and_publishes_no_model(
    tmp_path: Path, tiny_model: str, toy_data: str, toy_reward: str
) -> None:
    recipe = toy_recipe(
        tmp_path, tiny_model, toy_data, toy_reward, max_steps=4, learning_rate=1e38,
        save_strategy="steps", save_steps=1,
    )  # fmt: skip
    with pytest.raises(
        callbacks.NonFiniteError, match=r"^(loss|grad_norm|weight \S+) .* step \d: lower learning_rate"
    ):
        grpo.run(load_config(recipe))
    assert not (tmp_path / "model").exists() and not (tmp_path / "output").exists()
    for checkpoint in (tmp_path / "checkpoints").glob("checkpoint-*"):  # the ones before the failure
        outputs.check_finite_weights(checkpoint)


class PoisonAtEnd(TrainerCallback):
    """A NaN in a weight after the last step: only the check of the saved files can see it."""

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **_: Any) -> None:
        with torch.no_grad():
            next(model.parameters()).view(-1)[0] = float("nan")


def test_saved_weights_are_checked_before_the_model_is_published(
    tmp_path: Path, tiny_model: str, toy_data: str, toy_reward: str
) -> None:
    recipe = toy_recipe(tmp_path, tiny_model, toy_data, toy_reward, max_steps=1)
    with pytest.raises(
        callbacks.NonFiniteError, match=r"model\.safetensors holds NaN or inf: the model is not published"
    ):
        grpo.run(load_config(recipe), [PoisonAtEnd()])
    assert not (tmp_path / "model" / "run_summary.json").exists()
    assert not (tmp_path / "model" / "model.safetensors").exists()


def test_rotation_never_leaves_fewer_than_one_complete_checkpoint(
    tmp_path: Path, sharp_model: str, toy_data: str, toy_reward: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """save_total_limit: 1, and the run dies just before checkpoint-2's marker: checkpoint-1 remains."""
    listed = checkpoints._files
    calls = []

    def die_before_the_second_marker(folder: Path) -> dict[str, int]:
        calls.append(folder)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return listed(folder)

    values = {"save_strategy": "steps", "save_steps": 1, "save_total_limit": 1, **LORA}
    recipe = toy_recipe(tmp_path, sharp_model, toy_data, toy_reward, max_steps=3, **values)
    monkeypatch.setattr(checkpoints, "_files", die_before_the_second_marker)
    with pytest.raises(KeyboardInterrupt):
        grpo.run(load_config(recipe))
    saved = tmp_path / "checkpoints"
    assert checkpoints.latest_complete_checkpoint(saved) == saved / "checkpoint-1"

    monkeypatch.setattr(checkpoints, "_files", listed)
    summary = grpo.run(load_config(recipe))
    assert summary["resumed_from"] == str(saved / "checkpoint-1") and summary["global_step"] == 3
    assert [p.name for p in saved.glob("checkpoint-*")] == ["checkpoint-3"]  # rotation still applies


def test_run_leaves_the_config_unchanged_and_the_summary_records_it(
    tmp_path: Path, sharp_model: str, toy_data: str, toy_reward: str
) -> None:
    """Every value the trainer sees differently (rotation, end tokens, stop rule, model init options) goes
    to the trainer's own copy: the validated config, frozen, is what run_summary.json records."""
    values = {
        "save_strategy": "steps", "save_steps": 1, "save_total_limit": 1, "end_tokens": ["<|im_end|>"],
        "model_init_kwargs": {"low_cpu_mem_usage": True}, "eval_at_end": False, **LORA,
    }  # fmt: skip
    config = load_config(toy_recipe(tmp_path, sharp_model, toy_data, toy_reward, max_steps=2, **values))
    before = json.dumps(config.resolved(), sort_keys=True)
    training = dict(vars(config.training))
    summary = grpo.run(config)
    assert json.dumps(config.resolved(), sort_keys=True) == before
    assert {k: v for k, v in vars(config.training).items() if training.get(k) is not v} == {}
    args = config.training
    assert (args.save_total_limit, args.generation_kwargs, args.model_init_kwargs) == (
        1, None, {"low_cpu_mem_usage": True},
    )  # fmt: skip
    assert summary["config"] == json.loads(before) and summary["global_step"] == 2
    assert [p.name for p in (tmp_path / "checkpoints").glob("checkpoint-*")] == ["checkpoint-2"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.data.end_tokens = None  # type: ignore[misc]


def test_a_ctrl_c_run_exits_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def stopped(*_: Any) -> None:
        raise checkpoints.TrainingInterrupted(7, tmp_path / "checkpoint-7", signal.SIGINT)

    monkeypatch.setattr(grpo, "run", stopped)
    recipe = make_recipe(tmp_path, model_name_or_path="Qwen/Qwen2.5-0.5B")
    assert cli.main(["train", "--recipe", str(recipe)]) == 130
    assert "training stopped by SIGINT at step 7" in capsys.readouterr().err


# --- stop at the answer -------------------------------------------------------------------------------

# What a base model with shots writes: its answer, then an invented next problem (and never an EOS).
ANSWER_THEN_INVENTION = (
    " 3 + 4 = 7\n#### The final answer is 7\n\n"
    "Question: Numbers: 8 9 10\nSolution: 8 + 9 + 10 = 27, and 27 + 1 = 28"
)
STOP_PROMPTS = [f"Numbers: {i} {i + 1} {i + 2}" for i in range(0, 64, 16)]
STOP_RUN = {
    **BASE,
    "rewards": ["gsm8k_format"],
    "per_device_train_batch_size": 8,
    "num_generations": 4,
    "max_completion_length": 40,  # the answer and the stop string take 17 tokens, the invention more
    "mask_truncated_completions": True,
    "max_steps": 1,
}


@pytest.fixture(scope="module")
def stop_prompts(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("stop") / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in STOP_PROMPTS))
    return str(path)


@pytest.fixture(scope="module")
def inventing_model(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny model taught (full fine-tune on the prompts) to answer and then invent the next problem."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    batch = tokenizer([p + ANSWER_THEN_INVENTION for p in STOP_PROMPTS], return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=4e-3)
    torch.manual_seed(0)
    for _ in range(100):
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    out = tmp_path_factory.mktemp("inventing")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


def _one_step(tmp_path: Path, callbacks: list, **values: Any) -> dict[str, float]:
    """One GRPO step; the step's logged metrics."""
    history = History()
    grpo.run(load_config(make_recipe(tmp_path, **{**STOP_RUN, **values})), [history, *callbacks])
    return next(entry for entry in history.logs if "completions/clipped_ratio" in entry)


@pytest.mark.parametrize("stop", [True, False])
def test_generate_stops_at_the_answer_and_a_stopped_completion_counts_as_finished(
    stop: bool, tmp_path: Path, inventing_model: str, stop_prompts: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import GenerationMixin

    calls: list[tuple[Any, bool]] = []
    generate = GenerationMixin.generate

    def recording_generate(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append((kwargs["generation_config"].stop_strings, kwargs.get("tokenizer") is not None))
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(GenerationMixin, "generate", recording_generate)
    completions: list[list[int]] = []
    generate_single_turn = generation.StopAtAnswerTrainer._generate_single_turn  # recorded below

    def recording_generate_single_turn(self: Any, *args: Any, **kwargs: Any) -> Any:
        completion_ids, logprobs = generate_single_turn(self, *args, **kwargs)
        completions.extend(completion_ids)
        return completion_ids, logprobs

    monkeypatch.setattr(
        generation.StopAtAnswerTrainer, "_generate_single_turn", recording_generate_single_turn
    )
    logged = _one_step(
        tmp_path, [], model_name_or_path=inventing_model, dataset_path=stop_prompts, stop_at_answer=stop
    )
    assert calls == [(["\nQuestion:"], True) if stop else (None, False)]
    tokenizer = AutoTokenizer.from_pretrained(inventing_model)
    stopped = [ids for ids in completions if "\nQuestion:" in tokenizer.decode(ids)]
    if stop:  # ended at the stop string, with the EOS TRL reads as finished: kept in the loss
        # Every row that reached the stop ends with EOS, the one that finished last too (generate pads
        # only the rows that finished before it).
        assert len(stopped) >= len(completions) - 2
        assert all(ids[-1] == tokenizer.eos_token_id for ids in stopped)
        assert logged["completions/clipped_ratio"] <= 0.25
        assert logged["completions/mean_terminated_length"] < 30
        assert logged["completions/mean_length"] < 30
    else:  # every completion runs on to max_completion_length and is masked out of the loss
        assert logged["completions/clipped_ratio"] >= 0.75
        assert logged["completions/mean_length"] >= 37


@pytest.mark.parametrize("stop", [True, False])
def test_vllm_generation_gets_the_stop_and_a_stopped_completion_counts_as_finished(
    stop: bool, tmp_path: Path, tiny_model: str, stop_prompts: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vLLM cannot run here: TRL's colocated vLLM path runs on a stand-in engine that writes
    ANSWER_THEN_INVENTION and stops as vLLM does (at the token that completes a stop string, which
    stays in `token_ids`; or at `max_tokens`)."""
    from types import SimpleNamespace

    from trl.generation import vllm_generation

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    script = tokenizer(ANSWER_THEN_INVENTION)["input_ids"]
    sampling: list[dict[str, Any]] = []

    class SamplingParams:
        def __init__(self, **kwargs: Any) -> None:
            sampling.append(kwargs)
            self.stop, self.max_tokens = kwargs.get("stop") or [], kwargs["max_tokens"]

    class LLM:
        def generate(self, prompts: list[dict], sampling_params: SamplingParams, use_tqdm: bool) -> list:
            ids = script[: sampling_params.max_tokens]
            ends = [
                n
                for n in range(1, len(ids) + 1)
                if any(s in tokenizer.decode(ids[:n]) for s in sampling_params.stop)
            ]
            ids = ids[: ends[0]] if ends else ids
            logprobs = [{t: SimpleNamespace(logprob=-0.1, rank=1)} for t in ids]
            completion = SimpleNamespace(token_ids=ids, logprobs=logprobs)
            return [
                SimpleNamespace(prompt_token_ids=p["prompt_token_ids"], outputs=[completion]) for p in prompts
            ]

    monkeypatch.setattr(vllm_generation, "SamplingParams", SamplingParams, raising=False)
    monkeypatch.setattr(vllm_generation, "is_vllm_available", lambda: True)
    monkeypatch.setattr(
        vllm_generation.VLLMGeneration, "_init_vllm", lambda self: setattr(self, "llm", LLM())
    )
    monkeypatch.setattr(vllm_generation.VLLMGeneration, "sync_weights", lambda self: None)
    logged = _one_step(
        tmp_path,
        [],
        model_name_or_path=tiny_model,
        dataset_path=stop_prompts,
        use_vllm=True,
        vllm_mode="colocate",
        stop_at_answer=stop,
    )
    assert [s.get("stop") for s in sampling] == [["\nQuestion:"] if stop else None]
    stopped_at = len(tokenizer(ANSWER_THEN_INVENTION.split("Question:")[0] + "Question:")["input_ids"])
    if stop:  # the stop string's tokens, then the EOS that makes it finished
        assert logged["completions/clipped_ratio"] == 0.0
        assert logged["completions/mean_length"] == stopped_at + 1
    else:
        assert logged["completions/clipped_ratio"] == 1.0
        assert logged["completions/mean_length"] == 40


def test_seed_recipe_trains_qlora_with_head_and_embeddings_a_reference_model_and_chat_prompts(
    tmp_path: Path, chat_model: str, gsm8k_dir: Path
) -> None:
    """The seed recipe as published, on the tiny model, real GSM8K rows, one CPU step; then evaluated at
    the end in its own chat format."""
    history = History()
    overrides = {
        "model_name_or_path": chat_model,
        "dataset_path": str(gsm8k_dir / "train.jsonl"),
        "max_train_samples": 8,
        "max_val_samples": 2,
        "num_shots": 2,
        "per_device_train_batch_size": 8,
        "gradient_accumulation_steps": 1,
        "max_completion_length": 8,
        "max_steps": 1,
        "bf16": True,  # as on the GPU: bf16 weights and autocast (CPU autocast supports bf16)
        "use_cpu": True,
        "gradient_checkpointing": False,
        "save_strategy": "no",
        "report_to": "none",
        "output_dir": str(tmp_path / "checkpoints"),
        "model_dir": str(tmp_path / "model"),
        "summary_dir": str(tmp_path / "output"),
        "eval_at_end": True,
        "eval_max_new_tokens": 4,
    }
    config = load_config("qwen2.5-0.5b-gsm8k-seed", overrides)
    summary = grpo.run(config, [history])

    assert summary["global_step"] == 1 and summary["data"]["val_rows"] == 2  # the 90/10 split
    assert history.series("kl") == [0.0]  # beta > 0: the reference model's KL is computed (0 at step 1)
    end = AutoTokenizer.from_pretrained(chat_model).convert_tokens_to_ids("<|im_end|>")
    generation = json.loads((tmp_path / "model" / "generation_config.json").read_text())
    assert end in generation["eos_token_id"]  # the saved model stops at the chat end token
    adapter = load_file(tmp_path / "model" / "adapter" / "adapter_model.safetensors")
    assert any("lm_head" in k for k in adapter) and any("embed_tokens" in k for k in adapter)
    # The end-of-run evaluation: the validation rows in the recipe's chat format, ending at <|im_end|>.
    assert [(r["shots"], r["n"]) for r in summary["evaluation"]["results"]] == [(2, 2)]
    saved = json.loads((tmp_path / "model" / "run_summary.json").read_text())
    assert saved["evaluation"] == summary["evaluation"]
    metrics = json.loads((tmp_path / "output" / "eval" / "metrics.json").read_text())
    assert metrics["prompt"].startswith("chat") and metrics["decoding"]["end_tokens"] == ["<|im_end|>"]


def test_a_head_trained_apart_from_the_tied_embeddings_reads_the_same_in_every_loader(
    tmp_path: Path, tiny_model: str, toy_data: str, toy_reward: str
) -> None:
    """The tiny model ties lm_head to embed_tokens; trained apart (`lora_modules_to_save`), the merged
    model is saved untied, so transformers and any loader that honours `tie_word_embeddings` compute the
    same logits, from the trained head, not from the embeddings."""
    from safetensors.torch import load_file as load_weights

    assert json.loads((Path(tiny_model) / "config.json").read_text())["tie_word_embeddings"]
    both = {"lora_modules_to_save": ["lm_head", "embed_tokens"]}
    recipe = toy_recipe(tmp_path, tiny_model, toy_data, toy_reward, max_steps=2, **both, **LORA)
    grpo.run(load_config(recipe))

    model_dir = tmp_path / "model"
    saved_config = json.loads((model_dir / "config.json").read_text())
    weights = load_weights(model_dir / "model.safetensors")
    head, embeddings = weights["lm_head.weight"], weights["model.embed_tokens.weight"]
    assert not torch.equal(head, embeddings)  # trained apart: two matrices, or the test means nothing
    assert saved_config["tie_word_embeddings"] is False
    # A loader that honours tie_word_embeddings: the output matrix the config names, over the same body.
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    ids = AutoTokenizer.from_pretrained(model_dir)("Numbers: 1 2 3", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        hidden = model.model(ids).last_hidden_state
        honoured = hidden @ (embeddings if saved_config["tie_word_embeddings"] else head).T
        assert torch.allclose(model(ids).logits, honoured, atol=1e-5)
        assert not torch.allclose(model(ids).logits, hidden @ embeddings.T, atol=1e-3)


def test_a_head_trained_apart_with_colocated_vllm_is_refused_before_the_model_loads(
    tmp_path: Path, tiny_model: str, toy_data: str, toy_reward: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_load(*_: Any, **__: Any) -> None:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_load)
    head = {"lora_modules_to_save": ["lm_head"], "use_vllm": True}
    recipe = toy_recipe(tmp_path, tiny_model, toy_data, toy_reward, max_steps=1, **head, **LORA)
    with pytest.raises(ConfigError, match="ties lm_head to embed_tokens") as refused:
        grpo.run(load_config(recipe))
    assert refused.value.key == "lora_modules_to_save" and "use_vllm: false" in str(refused.value)
