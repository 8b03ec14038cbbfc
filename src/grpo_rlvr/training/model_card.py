"""Model cards (README.md) that name the base model as the recipe gave it.

TRL writes its card into `output_dir` at every checkpoint and names as `base_model` the model config's
`_name_or_path` unless that is a local folder; PEFT writes an adapter card naming the folder the base was
loaded from. A built-in model is loaded from a local folder it was built into, so neither card would name
it. Here every checkpoint folder and the saved model get a card naming the recipe's `model_name_or_path`:
TRL's card for a full model, PEFT's card for an adapter. A local folder is not named by TRL's card
(a card's `base_model` is a Hub id); the adapter card keeps naming the folder, as PEFT writes it.
The config's `_name_or_path` stays the folder loaded: PEFT's `adapter_config.json` records it, and merging
and evaluation load the base from there.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

CARD_NAME = "README.md"
ADAPTER_TAG = "base_model:adapter:"  # PEFT's tag naming an adapter's base (the Hub lists adapters by it)


class BaseModelCards:
    """Mixin for a TRL trainer: its cards name `base_model`, also in every checkpoint folder."""

    def __init__(self, *args: Any, base_model: str, **kwargs: Any) -> None:
        self.base_model = base_model
        super().__init__(*args, **kwargs)

    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        with _named_as(self.model.config, self.base_model):
            super().create_model_card(*args, **kwargs)  # type: ignore[misc]

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        super()._save_checkpoint(model, trial)  # type: ignore[misc]  # TRL writes its card first
        if self.args.should_save:  # before any callback: the completion marker lists the card too
            step = self.state.global_step
            self.write_model_card(Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{step}")

    def write_model_card(self, folder: Path, model_name: str | None = None) -> None:
        """`folder`'s card: PEFT's adapter card with the base model named, else TRL's card for
        `model_name` (None: the card TRL has just written into `output_dir` for a checkpoint)."""
        card = folder / CARD_NAME
        if card.exists():
            name_base_model(card, self.base_model)
            return
        if model_name is not None:
            self.create_model_card(model_name=model_name)
        shutil.copyfile(Path(self.args.output_dir) / CARD_NAME, card)


def name_base_model(card_path: Path, base_model: str) -> None:
    """An adapter card names `base_model` (in its metadata and PEFT's adapter tag), unless it is a local
    folder: then the card keeps the folder PEFT named."""
    if os.path.isdir(base_model):
        return
    card = ModelCard.load(card_path)
    card.data.base_model = base_model
    tags = [tag for tag in card.data.tags or [] if not tag.startswith(ADAPTER_TAG)]
    card.data.tags = [*tags, f"{ADAPTER_TAG}{base_model}"]
    card.save(card_path)


@contextmanager
def _named_as(config: Any, name: str) -> Iterator[None]:
    """TRL's card reads the base model's name from `config._name_or_path`: the recipe's name for the card
    alone, then the folder loaded again for everything else."""
    loaded_from = config._name_or_path
    config._name_or_path = name
    try:
        yield
    finally:
        config._name_or_path = loaded_from
