"""docs/your-data.md and the starter reward of docs/rewards.md, run as written: the rows, `prepare`,
the reward module and a short CPU training run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from grpo_rlvr.cli import main as cli
from grpo_rlvr.rewards import REGISTRY
from grpo_rlvr.rewards.user import load_reward_module

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _block(doc: str, marker: str) -> str:
    """The fenced block right after `<!-- marker -->` in docs/`doc`."""
    text = (DOCS / doc).read_text(encoding="utf-8")
    found = re.search(rf"<!-- {marker} -->\n```\w*\n(.*?)```", text, re.S)
    assert found, f"docs/{doc} lost its {marker} block"
    return found.group(1)


pytestmark = pytest.mark.usefixtures("clean_registry")


def test_the_starter_reward_is_five_lines_and_scores_as_described(tmp_path: Path) -> None:
    code = _block("rewards.md", "starter-reward")
    assert len([line for line in code.splitlines() if line.strip()]) <= 5
    (tmp_path / "my_reward.py").write_text(code)
    assert load_reward_module(tmp_path / "my_reward.py") == ["mentions_label"]
    reward = REGISTRY["mentions_label"]
    chat = [{"role": "assistant", "content": "It is Jupiter."}]
    assert reward(["It is Jupiter.", "Mars", chat], label=["jupiter", "Jupiter", "Jupiter"]) == [
        1.0,
        0.0,
        1.0,
    ]


def test_the_walk_through_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    rows = _block("your-data.md", "your-data-rows")
    assert all(json.loads(line)["label"] for line in rows.splitlines())
    Path("my_data.jsonl").write_text(rows)
    Path("my_reward.py").write_text(_block("rewards.md", "starter-reward"))

    assert (
        cli(["prepare", "--source", "my_data.jsonl", "--val-fraction", "0.25", "--out", "opt_ml/input/data"])
        == 0
    )
    assert "4 rows, none dropped" in capsys.readouterr().out
    train_rows = Path("opt_ml/input/data/train/data.jsonl").read_text().splitlines()
    assert len(train_rows) == 3 and all("label" in json.loads(row) for row in train_rows)

    args = ["train", "--recipe", "smoke-cpu", "dataset_path=opt_ml/input/data/train",
            "rewards=[mentions_label]", "reward_module=my_reward.py", "num_shots=0",
            "max_steps=1", "save_steps=1"]  # fmt: skip
    assert "num_shots=0 max_steps=4" in (DOCS / "your-data.md").read_text()  # the documented command
    assert cli(args) == 0
    summary = json.loads(Path("outputs/summary/run_summary.json").read_text())
    assert summary["global_step"] == 1 and summary["data"]["train_rows"] == 3
    assert summary["config"]["rewards"]["rewards"] == ["mentions_label"]
