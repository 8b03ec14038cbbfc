"""Every command-line option explains itself, and the help speaks about the product."""

from __future__ import annotations

import argparse
import re
import subprocess
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


ROOT = Path(__file__).resolve().parents[1]


def test_version(capsys: pytest.CaptureFixture) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"grpo-rlvr {version('grpo-rlvr')}\n"


def test_help_shows_the_defaults(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "tokens generated per answer (default: 512; humaneval: " in out
    assert "(default: None)" not in out and "(default: False)" not in out
    launch_help = " ".join(launch_sagemaker.build_parser().format_help().split())
    assert "training instance type (default: ml.g6e.xlarge)" in launch_help
    assert "stop the job after this long (default: 24.0)" in launch_help


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_make_help_lists_every_target() -> None:
    done = _make("help")
    assert done.returncode == 0
    listed = {line.split()[1] for line in done.stdout.splitlines() if line.strip().startswith("make ")}
    phony = next(line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith(".PHONY:"))
    assert set(phony.split()[1:]) <= listed
    assert _make().stdout == done.stdout  # plain `make` shows the same


def test_image_test_makes_the_environment_first(tmp_path: Path) -> None:
    """On a fresh clone (no .venv) `make image-test` creates the environment its tests run with."""
    done = _make("-n", "image-test", f"VENV={tmp_path / '.venv'}")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    create = next(i for i, line in enumerate(lines) if "scripts/dev_env.py" in line)
    run = next(i for i, line in enumerate(lines) if "scripts/image_test.sh" in line)
    assert create < run and f"PY={tmp_path / '.venv'}/bin/python" in lines[run]


def test_no_package_registry_address_is_written_into_the_project() -> None:
    """Downloads go through package clients by name (pip, apt), never a registry's URL in a file."""
    from pip._internal.models.index import PyPI

    # The registries' own hosts, as the package clients know them (pip's index and file hosts, apt's
    # sources), so this file names none itself.
    sources = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]
    apt_hosts = {h for f in sources if f.is_file() for h in re.findall(r"https?://([^/\s]+)", f.read_text())}
    registries = {PyPI.netloc, PyPI.file_storage_domain, *apt_hosts}
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    found = []
    for name in tracked.stdout.split():
        path = ROOT / name
        if path.suffix in {".lock", ".png", ".parquet", ".jsonl"} or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        found += [f"{name}: {r}" for r in registries if r in text]
    assert found == []
