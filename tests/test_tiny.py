"""The built-in tiny model: one build however many processes ask at once, the same bytes every build, and
a tokenizer that transformers reloads exactly as it was trained."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from grpo_rlvr import tiny

RACERS = 3
# Each racer imports everything, says it is ready, and resolves the model only once all are ready.
RACER = """
import logging, sys, time
from pathlib import Path
from transformers import AutoConfig, AutoTokenizer
from grpo_rlvr.tiny import resolve_model_path

logging.basicConfig(level=logging.INFO)
Path(sys.argv[1]).touch()
while not Path(sys.argv[2]).exists():
    time.sleep(0.01)
path = resolve_model_path("builtin:tiny-qwen2")
assert AutoConfig.from_pretrained(path).model_type == "qwen2"
print(path, AutoTokenizer.from_pretrained(path)("Question: 12 + 7?")["input_ids"])
"""
TEXTS = [
    "Question: Natalia sold clips to 48 of her friends in April.\nSolution: Let's think step by step.",
    "  leading spaces\t\ttabs\n\n\nnewlines 1234567 3.14 -42 $1,000",
    "naïve café 東京 🙂 ÀÉÎ",
    "<|im_start|>user\n7*8=56<|im_end|><|endoftext|>",
]


@pytest.fixture(scope="module")
def raced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[subprocess.CompletedProcess]]:
    """RACERS processes resolving `builtin:tiny-qwen2` into one empty cache at the same moment."""
    root = tmp_path_factory.mktemp("race")
    cache, go = root / "cache", root / "go"
    env = {**os.environ, "GRPO_RLVR_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(root / f"ready{i}"), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(RACERS)
    ]
    try:
        deadline = time.monotonic() + 120
        while not all((root / f"ready{i}").exists() for i in range(RACERS)):
            running = all(r.poll() is None for r in racers)
            assert running and time.monotonic() < deadline, "a racer died or never got ready"
            time.sleep(0.05)
        go.touch()
        done = []
        for racer in racers:
            out, err = racer.communicate(timeout=120)
            done.append(subprocess.CompletedProcess(racer.args, racer.returncode, out, err))
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
    return cache, done


def test_concurrent_processes_build_once_and_all_load_it(
    raced: tuple[Path, list[subprocess.CompletedProcess]],
) -> None:
    cache, done = raced
    assert [d.returncode for d in done] == [0] * RACERS, [d.stderr[-2000:] for d in done]
    target = cache / f"{tiny.TINY_NAME}-v{tiny.BUILTINS[tiny.TINY_NAME].version}"
    printed = {d.stdout.splitlines()[-1] for d in done}  # the last line: libraries may print before it
    assert len(printed) == 1 and printed.pop().startswith(f"{target} [")
    assert sum("building builtin:tiny-qwen2" in d.stderr for d in done) == 1  # the others waited
    assert sorted(p.name for p in cache.iterdir()) == [f".{target.name}.lock", target.name]  # no leftovers


def test_two_builds_in_different_caches_are_byte_identical(
    raced: tuple[Path, list[subprocess.CompletedProcess]], tiny_model: str
) -> None:
    """The racers' build (another process, another cache) equals this session's, file for file."""
    cache, _ = raced
    ours, theirs = Path(tiny_model), cache / Path(tiny_model).name
    names = sorted(p.name for p in ours.iterdir())
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(names)
    assert sorted(p.name for p in theirs.iterdir()) == names
    assert all((ours / n).read_bytes() == (theirs / n).read_bytes() for n in names)


def test_reloaded_tokenizer_encodes_as_the_trained_bpe(tiny_model: str) -> None:
    """transformers rebuilds Qwen2's normalizer and pre-tokenizer on load: ids must still match training."""
    trained = tiny.train_tiny_bpe()
    reloaded = AutoTokenizer.from_pretrained(tiny_model)
    for text in TEXTS:
        ids = reloaded(text, add_special_tokens=False)["input_ids"]
        assert ids == trained.encode(text).ids, text
        assert reloaded.decode(ids) == text
    assert reloaded.convert_tokens_to_ids(tiny.SPECIAL_TOKENS) == [0, 1, 2]
