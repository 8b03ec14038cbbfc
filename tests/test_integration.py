"""End to end on CPU: a user reward from a `rewards` channel trains through the real launcher, the example
code and keyword recipes train and log their reward, a reward's missing column fails before any model
loads, and `make smoke` takes the container's path."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bad_inputs import SMOKE_HYPERPARAMETERS, make_tree
from test_launch import LAUNCH
from transformers import AutoModelForCausalLM

from grpo_rlvr import checkpoints, cli
from grpo_rlvr.sagemaker import Paths

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
# (recipe, its reward, the example data it trains on, the column that reward reads)
EXAMPLES = [
    ("code-exec-cpu", "code_exec", "code_tasks.jsonl", "tests"),
    ("keywords-cpu", "keywords", "keyword_tasks.jsonl", "keywords"),
]
USER_REWARD = "digit_share"
SCORES_ENV = "DIGIT_SHARE_LOG"
# A dense toy reward, as a user would drop it into the `rewards` channel. It also appends every batch of
# scores it returns to $DIGIT_SHARE_LOG, so the test can tell its own numbers from anyone else's.
USER_REWARD_MODULE = f'''
import json
import os


def {USER_REWARD}(completions, **kwargs):
    """Share of the completion's characters that are digits."""
    scores = [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]
    with open(os.environ["{SCORES_ENV}"], "a", encoding="utf-8") as f:
        f.write(json.dumps(scores) + "\\n")
    return scores
'''


def run_launcher(base: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    """`grpo-rlvr launch` as the image runs it, on the /opt/ml-shaped `base`: (exit code, its whole log)."""
    done = subprocess.run(
        LAUNCH,
        env={**os.environ, "SAGEMAKER_BASE_DIR": str(base), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    return done.returncode, done.stdout


def test_user_reward_from_a_rewards_channel_is_trained_on_and_logged(tmp_path: Path, tiny_model: str) -> None:
    base = tmp_path / "opt_ml"
    channel = base / "input" / "data" / "rewards"
    hyperparameters = {
        **SMOKE_HYPERPARAMETERS,
        "save_steps": "2",  # a checkpoint at the last step: its trainer_state.json holds the log history
        "reward_module": str(channel),  # /opt/ml/input/data/rewards in the container
        "rewards": json.dumps(["gsm8k_format", USER_REWARD]),
    }
    make_tree(base, hyperparameters)
    channel.mkdir(parents=True)
    (channel / "my_reward.py").write_text(USER_REWARD_MODULE, encoding="utf-8")
    scores_log = tmp_path / "scores.jsonl"

    code, output = run_launcher(base, {SCORES_ENV: str(scores_log)})

    assert code == 0, output[-3000:]
    key = f"rewards/{USER_REWARD}/mean"
    assert output.count(f"'{key}'") == 2  # the trainer's log line of each step
    batches = [json.loads(line) for line in scores_log.read_text().splitlines()]
    assert [len(b) for b in batches] == [8, 8]  # one call a step: 2 prompts x 4 generations
    paths = Paths(base)
    history = json.loads((paths.checkpoint_dir / "checkpoint-2" / "trainer_state.json").read_text())
    logged = [(entry["step"], entry[key]) for entry in history["log_history"] if key in entry]
    assert logged == [
        (1, pytest.approx(statistics.mean(batches[0]))),
        (2, pytest.approx(statistics.mean(batches[1]))),
    ]
    summary = json.loads((paths.model_dir / checkpoints.SUMMARY_NAME).read_text())
    assert summary["rewards"][USER_REWARD] == {"first": logged[0][1], "final": logged[1][1]}
    assert summary["config"]["rewards"]["reward_module"] == str(channel)
    assert not paths.failure_file.exists()


@pytest.fixture
def at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example recipes name their data relative to the repo root, as their comments say."""
    monkeypatch.chdir(REPO)


def _outputs(tmp_path: Path) -> list[str]:
    return [
        f"output_dir={tmp_path / 'checkpoints'}",
        f"model_dir={tmp_path / 'model'}",
        f"summary_dir={tmp_path / 'summary'}",
    ]


@pytest.mark.usefixtures("at_repo_root")
@pytest.mark.parametrize(("recipe", "reward"), [example[:2] for example in EXAMPLES])
def test_example_recipe_trains_two_steps_and_logs_its_reward(
    recipe: str, reward: str, tmp_path: Path, tiny_model: str, capsys: pytest.CaptureFixture
) -> None:
    argv = ["--recipe", f"recipes/{recipe}.yaml", "max_steps=2", "disable_tqdm=true", *_outputs(tmp_path)]
    assert cli.main(["train", *argv]) == 0
    assert capsys.readouterr().out.count(f"'rewards/{reward}/mean'") == 2  # the log line of each step
    summary = json.loads((tmp_path / "model" / checkpoints.SUMMARY_NAME).read_text())
    assert summary["global_step"] == 2
    assert summary["data"]["train_rows"] == 8
    assert list(summary["rewards"]) == [reward]  # only from a logged `rewards/<name>/mean`
    assert all(0.0 <= value <= 1.0 for value in summary["rewards"][reward].values())
    assert summary["config"]["rewards"]["reward_kwargs"][reward]  # the recipe's options reached the run
    assert (tmp_path / "model" / "model.safetensors").is_file()


@pytest.mark.usefixtures("at_repo_root")
@pytest.mark.parametrize(("recipe", "reward", "data", "column"), EXAMPLES)
def test_a_column_the_reward_reads_missing_from_one_row_fails_before_the_model_loads(
    recipe: str,
    reward: str,
    data: str,
    column: str,
    tmp_path: Path,
    tiny_model: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    def no_model(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_model)
    rows = [json.loads(line) for line in (DATA / data).read_text().splitlines()]
    del rows[-1][column]  # every other row has it: the check must look at every row
    broken = tmp_path / "rows.jsonl"
    broken.write_text("".join(json.dumps(row) + "\n" for row in rows))

    code = cli.main(
        ["train", "--recipe", f"recipes/{recipe}.yaml", f"dataset_path={broken}", *_outputs(tmp_path)]
    )

    assert code == 2
    assert f"reward {reward} reads column(s) ['{column}'], missing from the data" in capsys.readouterr().err
    assert not (tmp_path / "model").exists() and not (tmp_path / "checkpoints").exists()


def _make_smoke(opt_ml: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", *flags, "smoke", f"OPT_ML={opt_ml}", f"PY={sys.executable}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_make_smoke_trains_through_the_launcher_into_opt_ml_smoke(tmp_path: Path, tiny_model: str) -> None:
    """The container's path (channels + config JSONs -> `launch`), only $(OPT_ML)/smoke cleared first."""
    opt_ml = tmp_path / "opt_ml"
    stale = opt_ml / "smoke" / "model" / "stale.safetensors"
    stale.parent.mkdir(parents=True)
    stale.write_text("from an earlier run")
    beside = opt_ml / "model" / "keep.txt"  # `make data`'s tree beside it: not the smoke run's to touch
    beside.parent.mkdir(parents=True)
    beside.write_text("mine")

    done = _make_smoke(str(opt_ml))

    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    smoke = Paths(opt_ml / "smoke")
    assert f'SAGEMAKER_BASE_DIR="{smoke.base}" {sys.executable} -m grpo_rlvr.cli launch' in done.stdout
    assert f"model and run_summary.json in {smoke.model_dir}" in done.stdout
    assert json.loads((smoke.config_dir / "hyperparameters.json").read_text()) == {"recipe": "smoke-cpu"}
    summary = json.loads((smoke.model_dir / checkpoints.SUMMARY_NAME).read_text())
    assert summary["recipe"] == "smoke-cpu" and summary["global_step"] == 6
    assert summary["config"]["data"]["dataset_path"] == str(smoke.data_dir / "train")  # from the channel
    assert summary["config"]["training"]["output_dir"] == str(smoke.checkpoint_dir)
    assert checkpoints.is_complete(smoke.checkpoint_dir / "checkpoint-6")
    assert not stale.exists() and beside.read_text() == "mine"
    # A healthy run says why its rewards are 0, and shows no alarming notice.
    output = done.stdout + done.stderr
    assert "builtin:tiny-qwen2 is a random model: it scores 0 on GSM8K" in output
    for alarming in ("kernels-community", "unable to detect", "validation rows are not used", "WARNING"):
        assert alarming not in output, alarming

    # A stopped run leaves output/failure saying "start again to resume": `make smoke` again resumes.
    smoke.failure_file.write_text("stopped")
    again = _make_smoke(str(opt_ml))
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert "smoke: resuming the stopped run" in again.stdout
    assert f"training from {smoke.checkpoint_dir / 'checkpoint-6'}" in again.stdout + again.stderr
    assert not smoke.failure_file.exists()


def test_make_smoke_refuses_an_empty_opt_ml() -> None:
    """With OPT_ML empty `rm -rf $(OPT_ML)/smoke` would be /smoke: make stops before any command."""
    done = _make_smoke("", "--dry-run")
    assert done.returncode != 0
    assert "OPT_ML is empty" in done.stderr
    assert "rm -rf" not in done.stdout
