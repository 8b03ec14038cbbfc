"""The shared low-level helpers: signal handlers installed for a block only, writes never seen half-done."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from grpo_rlvr import signals
from grpo_rlvr.files import is_local_path, write_atomic


def test_handlers_are_restored_after_the_block_even_when_it_raises() -> None:
    before = {s: signal.getsignal(s) for s in signals.STOP_SIGNALS}
    seen: list[int] = []
    with pytest.raises(RuntimeError), signals.handling(lambda signum, _frame: seen.append(signum)):
        os.kill(os.getpid(), signal.SIGTERM)
        raise RuntimeError("the block failed")
    assert seen == [signal.SIGTERM]
    assert {s: signal.getsignal(s) for s in signals.STOP_SIGNALS} == before


def test_an_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "new" / "run_summary.json"
    write_atomic(target, "first\n")
    write_atomic(target, "second\n")
    assert target.read_text() == "second\n"
    assert [p.name for p in target.parent.iterdir()] == ["run_summary.json"]


@pytest.mark.parametrize(
    ("source", "local"),
    [
        ("~/d.jsonl", True),
        ("./d.jsonl", True),
        ("/d.jsonl", True),
        ("openai/gsm8k", False),
        ("d.jsonl", True),  # a data suffix: a file meant, never a hub id
        ("org/data", False),
    ],
)
def test_local_paths_and_hub_ids(source: str, local: bool) -> None:
    assert is_local_path(source) is local
