"""Every command-line option explains itself, and the help speaks about the product."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from grpo_rlvr.cli import build_parser

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import launch_sagemaker
import local_opt_ml


def undocumented(parser: argparse.ArgumentParser, name: str) -> list[str]:
    """`command option` for every argument (in every subcommand) without help text."""
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                missing += undocumented(sub, f"{name} {sub_name}")
        elif not isinstance(action, argparse._HelpAction) and not action.help:
            missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    return missing


@pytest.mark.parametrize(
    ("name", "parser"),
    [
        ("grpo-rlvr", build_parser()),
        ("launch_sagemaker.py", launch_sagemaker.build_parser()),
        ("local_opt_ml.py", local_opt_ml.build_parser()),
    ],
)
def test_every_option_has_help(name: str, parser: argparse.ArgumentParser) -> None:
    assert undocumented(parser, name) == []


def test_a_missing_help_is_found() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documented", help="yes")
    sub = parser.add_subparsers().add_parser("run")
    sub.add_argument("--bare")
    assert undocumented(parser, "tool") == ["tool run --bare"]


def test_top_level_and_train_help(capsys: pytest.CaptureFixture) -> None:
    parser = build_parser()
    assert "Parsing only" not in parser.format_help()
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "outputs/checkpoints" in out and "outputs/model" in out and "outputs/summary" in out
