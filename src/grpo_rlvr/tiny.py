"""Tiny Qwen2-architecture models with random weights and a tokenizer trained offline.

`make smoke`, the tests and the CPU benchmarks need a real model directory without a hub. Recipes name
one `builtin:<name>` (`BUILTINS`); it is built once (seeded, so byte-identical weights every time) into
the cache folder and then loaded like any local checkpoint. The tokenizer is a byte-level BPE trained
with Qwen2's own normalizer and pre-tokenizer on our worked examples in the default prompt format
(`prompt_format.DEFAULT`), then wrapped in `Qwen2Tokenizer`, so that transformers' Qwen2 loader
rebuilds exactly the pipeline it was trained with.

`tiny-qwen2` is the smallest that runs the whole pipeline. `mini-qwen2` is wider and deeper, and its
tokenizer has also seen the synthetic word problems (`grpo_rlvr.synthetic`): the model
`make reproduce-mini` warms up and trains.

Processes that start together (torchrun ranks, parallel tests) share the cache: one builds under a file
lock while the others wait, then find the finished folder.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from grpo_rlvr.files import is_local_path
from grpo_rlvr.hub import check_model

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import Qwen2Tokenizer

log = logging.getLogger(__name__)

BUILTIN_PREFIX = "builtin:"
TINY_NAME = "tiny-qwen2"  # the default built-in
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def cache_dir() -> Path:
    return Path(os.environ.get("GRPO_RLVR_CACHE", Path.home() / ".cache" / "grpo-rlvr"))


def resolve_model_path(name_or_path: str) -> str:
    """`builtin:<name>` -> a built local folder; anything else is returned unchanged, a hub id once the hub
    has answered for it (`hub.check_model`: seconds, where a loader without network retries for minutes)."""
    if not name_or_path.startswith(BUILTIN_PREFIX):
        if not is_local_path(name_or_path):
            check_model(name_or_path)
        return name_or_path
    name = name_or_path.removeprefix(BUILTIN_PREFIX)
    if name not in BUILTINS:
        raise ValueError(f"unknown built-in model {name_or_path!r}; available: {builtin_names()}")
    target = cache_dir() / f"{name}-v{BUILTINS[name].version}"
    if not (target / "config.json").exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with _exclusive(target.parent / f".{target.name}.lock"):
            if not (target / "config.json").exists():  # not built by the process we waited for
                log.info("building %s%s into %s", BUILTIN_PREFIX, name, target)
                with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
                    build_tiny_model(Path(tmp) / "model", BUILTINS[name])
                    shutil.rmtree(target, ignore_errors=True)  # a folder left without config.json
                    os.rename(Path(tmp) / "model", target)  # readers see all files or none
    return str(target)


def builtin_names() -> str:
    return ", ".join(BUILTIN_PREFIX + name for name in BUILTINS)


@contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive `flock` on `lock_file`; the kernel releases it if the process dies."""
    with open(lock_file, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _corpus() -> list[str]:
    """Every worked example as the default prompt format writes it, then numbers."""
    from grpo_rlvr.data import build_prompt, training_solution
    from grpo_rlvr.prompt_format import DEFAULT, MAX_SHOTS

    texts = [build_prompt(q, MAX_SHOTS) + " " + training_solution(a) for q, a in DEFAULT.exemplars]
    texts += [" ".join(str(n) for n in range(i, i + 50)) for i in range(0, 2000, 50)]
    return texts


def _corpus_with_word_problems() -> list[str]:
    """Our worked examples plus synthetic word problems: their names and objects become whole tokens."""
    from grpo_rlvr import synthetic
    from grpo_rlvr.data import worked_example

    return _corpus() + [
        worked_example(r["question"], r["answer"]) for r in synthetic.problems(2000, seed=12345)
    ]


@dataclass(frozen=True)
class TinySpec:
    """A built-in model's shape and its tokenizer's training text; bump `version` on any change."""

    version: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int = 2048
    corpus: Callable[[], list[str]] = _corpus


BUILTINS = {
    TINY_NAME: TinySpec(2, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2),
    "mini-qwen2": TinySpec(2, hidden_size=64, intermediate_size=256, num_hidden_layers=3,
                           num_attention_heads=4, num_key_value_heads=2, vocab_size=1024,
                           corpus=_corpus_with_word_problems),
}  # fmt: skip


def train_tiny_bpe(spec: TinySpec = BUILTINS[TINY_NAME]) -> Tokenizer:
    """A byte-level BPE trained on the spec's corpus with Qwen2's normalizer and pre-tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    reference = Qwen2Tokenizer()  # an empty Qwen2 tokenizer: take its normalizer/pre-tokenizer as they are
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = reference.backend_tokenizer.normalizer
    bpe.pre_tokenizer = reference.backend_tokenizer.pre_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(spec.corpus(), trainer)
    return bpe


def build_tiny_tokenizer(spec: TinySpec = BUILTINS[TINY_NAME]) -> Qwen2Tokenizer:
    """The trained BPE wrapped as the `Qwen2Tokenizer` that transformers rebuilds for `model_type: qwen2`."""
    from transformers import Qwen2Tokenizer

    bpe = train_tiny_bpe(spec)
    merges = [tuple(pair) for pair in json.loads(bpe.model.__getstate__())["merges"]]
    tokenizer = Qwen2Tokenizer(vocab=bpe.get_vocab(), merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS[1:]})
    return tokenizer


def build_tiny_model(out_dir: Path, spec: TinySpec = BUILTINS[TINY_NAME], seed: int = 0) -> Path:
    """Write a seeded random Qwen2 of the spec's shape, with its tokenizer."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_tiny_tokenizer(spec)
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=None,  # Qwen2's tokenizer has no BOS: a config naming one draws a warning in training
        eos_token_id=eos,
        pad_token_id=eos,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=eos)
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
