"""Everything checkable fails before anything is paid for: a mistyped recipe or key before any file is
written or request sent, with train's own message; what needs the data or the file system before the
model loads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from grpo_rlvr.checkpoints import TrainingInterrupted
from grpo_rlvr.cli import main as cli
from grpo_rlvr.config.loading import load_config
from grpo_rlvr.config.sections import ConfigError
from grpo_rlvr.data import packaged_gsm8k
from grpo_rlvr.files import unwritable
from grpo_rlvr.training import grpo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import launch_sagemaker  # noqa: E402
import local_opt_ml  # noqa: E402

LAUNCH = [
    "--image-uri", "123456789012.dkr.ecr.us-east-1.amazonaws.com/grpo-rlvr:abc",
    "--role", "arn:aws:iam::123456789012:role/SageMakerExecution",
    "--output-path", "s3://bucket/runs/", "--dry-run",
]  # fmt: skip
MISTAKES = [
    (["--recipe", "qwen2.5-0.5b-gsm8", "--hp", "learning_rate=1e-5"], "qwen2.5-0.5b-gsm8", []),
    (["--recipe", "smoke-cpu", "--hp", "learnin_rate=1e-5"], "smoke-cpu", ["learnin_rate=1e-5"]),
]


def _train_error(recipe: str, overrides: list[str], capsys: pytest.CaptureFixture) -> str:
    assert cli(["train", "--recipe", recipe, *overrides, "--print-config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("grpo-rlvr train: error: ")
    return err.removeprefix("grpo-rlvr train: error: ").strip()


@pytest.mark.parametrize(("args", "recipe", "overrides"), MISTAKES, ids=["recipe", "key"])
def test_launch_sagemaker_dry_run_refuses_with_trains_message(
    args: list[str], recipe: str, overrides: list[str], capsys: pytest.CaptureFixture
) -> None:
    expected = _train_error(recipe, overrides, capsys)
    assert "did you mean" in expected or "no recipe file" in expected
    assert launch_sagemaker.main([*LAUNCH, *args]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # no request printed (or sent)
    assert err.strip() == f"launch_sagemaker: error: {expected}"


@pytest.mark.parametrize(("args", "recipe", "overrides"), MISTAKES, ids=["recipe", "key"])
def test_local_opt_ml_refuses_before_writing(
    args: list[str], recipe: str, overrides: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    expected = _train_error(recipe, overrides, capsys)
    (tmp_path / "input" / "data" / "train").mkdir(parents=True)
    assert local_opt_ml.main(["--opt-ml", str(tmp_path), *args]) == 2
    assert capsys.readouterr().err.strip() == f"local_opt_ml: error: {expected}"
    assert not (tmp_path / "input" / "config").exists()


def test_make_data_with_a_mistyped_recipe_writes_nothing(tmp_path: Path) -> None:
    done = subprocess.run(
        ["make", "data", "RECIPE=qwen9-gsm8k", f"OPT_ML={tmp_path / 'opt_ml'}", f"PY={sys.executable}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode != 0
    assert "local_opt_ml: error: recipe: no recipe file or baked recipe named 'qwen9-gsm8k'" in done.stderr
    assert not (tmp_path / "opt_ml").exists()


def test_a_mistyped_recipe_fails_before_torch_loads() -> None:
    """Recipe errors come in seconds: the check reads recipes/ without importing torch or TRL."""
    probe = (
        "import sys; from grpo_rlvr.sagemaker_job import check_recipe\n"
        "try:\n    check_recipe('qwen9-gsm8k', [])\n"
        "except ValueError as err:\n    print(err)\n"
        "print(sorted(m for m in ('torch', 'trl', 'transformers') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    message, loaded = done.stdout.strip().splitlines()
    assert message.startswith("recipe: no recipe file or baked recipe named 'qwen9-gsm8k'")
    assert loaded == "[]"


# --- what a run checks before the model loads ----------------------------------------------------


def _recipe_values(tmp_path: Path, **values: object) -> list[str]:
    """smoke-cpu on 16 GSM8K rows, every output under tmp_path, as key=value overrides."""
    rows = tmp_path / "rows.jsonl"
    if not rows.exists():
        with packaged_gsm8k("train").open(encoding="utf-8") as f:
            rows.write_text("".join(f.readline() for _ in range(16)), encoding="utf-8")
    base = {
        "dataset_path": str(rows),
        "output_dir": str(tmp_path / "checkpoints"),
        "model_dir": str(tmp_path / "model"),
        "summary_dir": str(tmp_path / "output"),
        "max_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
    }
    return [f"{key}={value}" for key, value in {**base, **values}.items()]


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def load_model(*_: object) -> None:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(grpo, "load_model", load_model)


@pytest.mark.parametrize("key", ["output_dir", "model_dir", "summary_dir"])
def test_an_unwritable_output_folder_fails_before_the_model_loads(
    key: str, tmp_path: Path, tiny_model: str, no_model: None
) -> None:
    (tmp_path / "a-file").write_text("in the way")
    blocked = tmp_path / "a-file" / "sub"
    config = load_config("smoke-cpu", _recipe_values(tmp_path, **{key: blocked}))
    with pytest.raises(ConfigError) as caught:
        grpo.run(config)
    assert caught.value.key == key
    assert f"{blocked} cannot be written (Not a directory): choose a writable folder" in str(caught.value)
    # The folders probed before it were written to and removed again: the tree is as it was.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "rows.jsonl"]


def test_the_write_probe_creates_and_removes_what_it_made(tmp_path: Path) -> None:
    assert unwritable(tmp_path / "a" / "b" / "c") is None
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "x").write_text("x")
    assert unwritable(tmp_path / "kept") is None
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["x"]
    assert (
        unwritable(tmp_path / "kept" / "x" / "y")
        == f"{tmp_path}/kept/x/y cannot be written (Not a directory)"
    )
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["x"]


def test_evaluation_without_validation_rows_fails_before_the_model_loads(
    tmp_path: Path, tiny_model: str, no_model: None
) -> None:
    with pytest.raises(ConfigError, match=r"^eval_strategy: needs validation rows: set val_dataset_path"):
        load_config("smoke-cpu", _recipe_values(tmp_path, eval_strategy="steps", eval_steps=1))
    # 1% of 16 rows rounds to none: known only once the data is loaded, still before the model.
    config = load_config("smoke-cpu", _recipe_values(tmp_path, eval_strategy="steps", val_fraction=0.01))
    with pytest.raises(ConfigError, match=r"^eval_strategy: no validation rows are left"):
        grpo.run(config)
    config = load_config("smoke-cpu", _recipe_values(tmp_path, eval_strategy="steps", val_fraction=0.25))
    with pytest.raises(AssertionError, match="the model was loaded"):  # 4 rows: on to the model
        grpo.run(config)


def test_a_report_to_integration_that_is_missing_or_unknown_fails_at_load(tmp_path: Path) -> None:
    from transformers.integrations import get_available_reporting_integrations

    assert "tensorboard" not in get_available_reporting_integrations()  # not in the image's lock
    with pytest.raises(ConfigError, match=r"^report_to: tensorboard is not installed in this environment"):
        load_config("smoke-cpu", _recipe_values(tmp_path, report_to="[mlflow, tensorboard]"))
    with pytest.raises(
        ConfigError, match=r"^report_to: unknown integration 'mlfow' \(did you mean 'mlflow'\?\)"
    ):
        load_config("smoke-cpu", _recipe_values(tmp_path, report_to="mlfow"))
    assert load_config("smoke-cpu", _recipe_values(tmp_path, report_to="mlflow")).training.report_to == [
        "mlflow"
    ]


def test_a_sigterm_while_data_loads_stops_before_the_model_loads(
    tmp_path: Path, tiny_model: str, no_model: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepare = grpo.prepare_data

    def terminated_while_loading(*args: object) -> object:
        os.kill(os.getpid(), signal.SIGTERM)  # the handler only sets a flag: loading goes on
        return prepare(*args)

    monkeypatch.setattr(grpo, "prepare_data", terminated_while_loading)
    with pytest.raises(TrainingInterrupted) as caught:
        grpo.run(load_config("smoke-cpu", _recipe_values(tmp_path)))
    assert (caught.value.step, caught.value.signum) == (0, signal.SIGTERM)


def test_a_column_that_changes_type_trains(tmp_path: Path, tiny_model: str) -> None:
    rows = tmp_path / "rows.jsonl"
    with packaged_gsm8k("train").open(encoding="utf-8") as f:
        lines = [json.loads(f.readline()) for _ in range(16)]
    metas: list[object] = [1, "two", {"three": [3]}, None]
    rows.write_text("".join(json.dumps({**row, "meta": metas[i % 4]}) + "\n" for i, row in enumerate(lines)))
    summary = grpo.run(load_config("smoke-cpu", _recipe_values(tmp_path)))
    assert summary["global_step"] == 1
    assert summary["data"]["train_rows"] == 16
