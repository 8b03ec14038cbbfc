"""A tiny Qwen2-architecture model with random weights and a tokenizer trained offline.

`make smoke`, the tests and the CPU benchmarks need a real model directory without a hub. Recipes name
it `builtin:tiny-qwen2`; it is built once (seeded, so byte-identical weights every time) into the cache
folder and then loaded like any local checkpoint. The tokenizer is a byte-level BPE trained with
Qwen2's own normalizer and pre-tokenizer on our worked examples in the default prompt format
(`prompt_format.DEFAULT`), then wrapped in `Qwen2Tokenizer`, so that transformers' Qwen2 loader
rebuilds exactly the pipeline it was trained with.

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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import Qwen2Tokenizer

log = logging.getLogger(__name__)

BUILTIN_PREFIX = "builtin:"
TINY_NAME = "tiny-qwen2"
TINY_VERSION = 1  # bump when the recipe below or the default prompt format changes, so caches are rebuilt
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def cache_dir() -> Path:
    return Path(os.environ.get("GRPO_RLVR_CACHE", Path.home() / ".cache" / "grpo-rlvr"))


def resolve_model_path(name_or_path: str) -> str:
    """`builtin:tiny-qwen2` -> a built local folder; anything else is returned unchanged."""
    if not name_or_path.startswith(BUILTIN_PREFIX):
        return name_or_path
    name = name_or_path.removeprefix(BUILTIN_PREFIX)
    if name != TINY_NAME:
        raise ValueError(f"unknown built-in model {name_or_path!r}; available: {BUILTIN_PREFIX}{TINY_NAME}")
    target = cache_dir() / f"{TINY_NAME}-v{TINY_VERSION}"
    if not (target / "config.json").exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with _exclusive(target.parent / f".{target.name}.lock"):
            if not (target / "config.json").exists():  # not built by the process we waited for
                log.info("building %s%s into %s", BUILTIN_PREFIX, TINY_NAME, target)
                with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
                    build_tiny_model(Path(tmp) / "model")
                    shutil.rmtree(target, ignore_errors=True)  # a folder left without config.json
                    os.rename(Path(tmp) / "model", target)  # readers see all files or none
    return str(target)


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


def train_tiny_bpe(vocab_size: int = 2048) -> Tokenizer:
    """A byte-level BPE trained on our worked examples with Qwen2's normalizer and pre-tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    reference = Qwen2Tokenizer()  # an empty Qwen2 tokenizer: take its normalizer/pre-tokenizer as they are
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = reference.backend_tokenizer.normalizer
    bpe.pre_tokenizer = reference.backend_tokenizer.pre_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(), trainer)
    return bpe


def build_tiny_tokenizer(vocab_size: int = 2048) -> Qwen2Tokenizer:
    """The trained BPE wrapped as the `Qwen2Tokenizer` that transformers rebuilds for `model_type: qwen2`."""
    from transformers import Qwen2Tokenizer

    bpe = train_tiny_bpe(vocab_size)
    merges = [tuple(pair) for pair in json.loads(bpe.model.__getstate__())["merges"]]
    tokenizer = Qwen2Tokenizer(vocab=bpe.get_vocab(), merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS[1:]})
    return tokenizer


def build_tiny_model(out_dir: Path, seed: int = 0) -> Path:
    """Write a seeded random tiny Qwen2 (hidden 64, 2 layers, 4 heads, 2 KV heads) and its tokenizer."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_tiny_tokenizer()
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=eos, bos_token_id=eos)
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
