"""A mistyped recipe or key fails before any file is written or request sent, with train's own message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from grpo_rlvr.cli import main as cli

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
