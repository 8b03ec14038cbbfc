"""The models an evaluation compares: a `ModelSpec` (a model, optionally plus a PEFT adapter) checked
before anything loads, its tokenizer and weights (an adapter merged in), and the prompts rendered for it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grpo_rlvr.data import prompt_text
from grpo_rlvr.datafiles import DataError
from grpo_rlvr.files import is_local_path, local_path
from grpo_rlvr.merging import merged_model
from grpo_rlvr.tasks import Prompt
from grpo_rlvr.tiny import resolve_model_path


@dataclass(frozen=True)
class ModelSpec:
    """A model to evaluate: local folder, hub id or `builtin:` name, optionally plus a PEFT adapter."""

    model: str
    adapter: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        """`MODEL` or `MODEL+ADAPTER` (split at the first `+`); an existing path is taken whole."""
        if "+" not in text or Path(text).exists():
            return cls(text)
        model, adapter = text.split("+", 1)
        if not model or not adapter:
            raise ValueError(f"model spec {text!r}: write MODEL or MODEL+ADAPTER")
        return cls(model, adapter)

    @property
    def label(self) -> str:
        return self.model if self.adapter is None else f"{self.model}+{self.adapter}"

    def check_paths(self) -> None:
        """Fail before any model loads (not an hour into a comparison) when a local path is missing, or
        is a folder that holds no whole model (a training checkpoint's adapter), saying what to pass."""
        for name in (self.model, self.adapter):
            if name and is_local_path(name) and not local_path(name).exists():
                raise FileNotFoundError(f"model path does not exist: {name}")
        folder = local_path(self.model)
        if is_local_path(self.model) and folder.is_dir() and not (folder / "config.json").is_file():
            raise ValueError(_not_a_model(self.model, folder))


def _not_a_model(name: str, folder: Path) -> str:
    adapter_config = folder / "adapter_config.json"
    if adapter_config.is_file():  # a LoRA checkpoint: the adapter alone, without its base model
        try:
            base = json.loads(adapter_config.read_text(encoding="utf-8")).get("base_model_name_or_path")
        except (OSError, ValueError, AttributeError):
            base = None
        return (
            f"--model {name} is a LoRA adapter (such as a training checkpoint), not a whole model: pass "
            f"--model {base or 'BASE_MODEL'}+{name}, or the merged model a run writes to its model_dir "
            "(/opt/ml/model in the container)"
        )
    return (
        f"--model {name} holds no config.json, so it is no transformers model folder: pass the model_dir a "
        "run wrote (/opt/ml/model in the container), a hub id, or BASE_MODEL+ADAPTER_FOLDER"
    )


def _not_loadable(spec: ModelSpec, err: OSError) -> FileNotFoundError:
    """A missing folder, or a hub id the hub cannot provide, as the error the CLI reports."""
    return FileNotFoundError(f"cannot load model {spec.label!r}: {err}")


def load_tokenizer(spec: ModelSpec) -> Any:
    """The model's tokenizer (an adapter's base's), left-padding, with EOS as pad where it has none."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(spec.model), padding_side="left")
    except OSError as err:
        raise _not_loadable(spec, err) from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_merged(spec: ModelSpec, dtype: Any) -> tuple[Any, Any]:
    """Model and tokenizer; a PEFT adapter is merged into the weights (plain layers are faster)."""
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(spec)
    path = resolve_model_path(spec.model)
    try:
        if spec.adapter:
            model = merged_model(path, spec.adapter, dtype)
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except OSError as err:
        raise _not_loadable(spec, err) from err
    return model, tokenizer


def render_prompts(spec: ModelSpec, prompts: dict[int, list[Prompt]]) -> dict[int, list[str]]:
    """Each shot count's prompts as text for `spec`: chat turns through its own tokenizer's chat template
    (`data.prompt_text`, as TRL renders them in training), so both backends get the same text. Runs
    before any model loads, so a model without a chat template fails here, not inside generation."""
    chat = any(not isinstance(p, str) for part in prompts.values() for p in part)
    tokenizer = load_tokenizer(spec) if chat else None
    if chat and not tokenizer.chat_template:
        raise DataError(
            f"model {spec.label!r} has no chat template, so the chat prompt format cannot be rendered for "
            "it: evaluate it in a text prompt format"
        )
    return {k: [prompt_text(p, tokenizer) for p in part] for k, part in prompts.items()}
