"""Loading user reward modules from a channel-shaped folder, and every loading error's message."""

from __future__ import annotations

from pathlib import Path

import pytest

from grpo_rlvr.rewards import REGISTRY, required_columns, resolve
from grpo_rlvr.rewards.user import RewardModuleError, load_reward_module

MODULE = """
import re
from math import isclose  # imported: not a reward

def _helper(text):
    return len(re.findall(r"\\w+", text))

def brevity(completions, **kwargs):
    return [1.0 if _helper(c) <= 5 else 0.0 for c in completions]

def matches_label(completions, label, *, bonus=0.0, **kwargs):
    return [float(c.strip() == l) + bonus for c, l in zip(completions, label)]
"""


@pytest.fixture
def channel(tmp_path: Path) -> Path:
    folder = tmp_path / "input" / "data" / "rewards"
    folder.mkdir(parents=True)
    return folder


pytestmark = pytest.mark.usefixtures("clean_registry")


def test_loads_public_functions_from_a_channel_folder(channel: Path) -> None:
    (channel / "my_reward.py").write_text(MODULE)
    assert load_reward_module(channel) == ["brevity", "matches_label"]
    assert "isclose" not in REGISTRY and "_helper" not in REGISTRY
    assert required_columns(REGISTRY["matches_label"]) == ("label",)
    assert required_columns(REGISTRY["brevity"]) == ()
    brevity, label = resolve(["brevity", "matches_label"], {"matches_label": {"bonus": 0.5}})
    assert brevity(completions=["short answer", "a b c d e f"], prompts=["p", "p"]) == [1.0, 0.0]
    assert label(completions=["cat", "dog"], label=["cat", "cat"], trainer_state=None) == [1.5, 0.5]


def test_loads_a_given_file(channel: Path) -> None:
    (channel / "my_reward.py").write_text(MODULE)
    (channel / "other.py").write_text(
        "def other(completions, **kwargs):\n    return [0.0] * len(completions)\n"
    )
    assert load_reward_module(channel / "other.py") == ["other"]


@pytest.mark.parametrize(
    ("files", "target", "message"),
    [
        ({}, "missing.py", r"missing\.py: no such file or directory"),
        ({}, ".", r"must hold exactly one \.py file, found none"),
        ({"a.py": MODULE, "b.py": MODULE}, ".", r"exactly one \.py file, found \['a\.py', 'b\.py'\]"),
        ({"bad.py": "def f(:\n"}, "bad.py", r"bad\.py failed to import: SyntaxError"),
        ({"imp.py": "import no_such_module\n"}, "imp.py", r"imp\.py failed to import: ModuleNotFoundError"),
        ({"boom.py": "raise RuntimeError('x')\n"}, "boom.py", r"boom\.py failed to import: RuntimeError"),
        ({"empty.py": "from os import sep\nX = 1\n"}, "empty.py", r"empty\.py defines no public reward"),
        ({"clash.py": "def keywords(completions, **kw):\n    return []\n"}, "clash.py",
         r"clash\.py: \['keywords'\] clash with registered rewards"),
        ({"sig.py": "def strict(completions, label):\n    return []\n"}, "sig.py",
         r"sig\.py: strict\(\) must accept `completions` and `\*\*kwargs`"),
    ],
)  # fmt: skip
def test_loading_errors_name_the_file_and_cause(
    channel: Path, files: dict[str, str], target: str, message: str
) -> None:
    for name, text in files.items():
        (channel / name).write_text(text)
    before = set(REGISTRY)
    with pytest.raises(RewardModuleError, match=message):
        load_reward_module(channel / target)
    assert set(REGISTRY) == before  # nothing half-registered


def test_loading_twice_is_a_clash(channel: Path) -> None:
    (channel / "my_reward.py").write_text(MODULE)
    load_reward_module(channel)
    with pytest.raises(RewardModuleError, match=r"\['brevity', 'matches_label'\] clash"):
        load_reward_module(channel)
