"""Shared fixtures: no hub access, a tiny offline model built once per session, the real GSM8K."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def gsm8k_dir() -> Path:
    """The real GSM8K JSONL files: the copy shipped with the package, checked against its SHA256SUMS."""
    from grpo_rlvr.data import packaged_gsm8k

    return packaged_gsm8k("train").parent


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Path of the seeded random tiny Qwen2 (`builtin:tiny-qwen2`), built into a session cache."""
    os.environ.setdefault("GRPO_RLVR_CACHE", str(tmp_path_factory.mktemp("grpo-rlvr-cache")))
    from grpo_rlvr.tiny import resolve_model_path

    return resolve_model_path("builtin:tiny-qwen2")


# Qwen's chat format (ChatML) for plain conversations: the tiny tokenizer has no chat template of its own.
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="session")
def chat_model(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny model whose tokenizer has a ChatML chat template (`<|im_end|>` closes every turn)."""
    import shutil

    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("chat-model") / "model"
    shutil.copytree(tiny_model, out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    tokenizer.chat_template = CHATML
    tokenizer.save_pretrained(out)
    return str(out)


@pytest.fixture
def clean_registry() -> Iterator[None]:
    """The reward registry as it was before the test: user modules register into it."""
    from grpo_rlvr.rewards import REGISTRY

    before = dict(REGISTRY)
    yield
    REGISTRY.clear()
    REGISTRY.update(before)
