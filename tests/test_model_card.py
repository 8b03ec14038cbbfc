"""An adapter card names the recipe's base model; a local folder stays as PEFT named it.
(Training writes the cards: tests/test_train.py checks them in checkpoints and the saved model.)"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData

from grpo_rlvr.training.model_card import name_base_model


def peft_card(path: Path, base: str) -> Path:
    """A card as PEFT writes it beside an adapter: the loaded folder as base_model and in its tag."""
    data = ModelCardData(base_model=base, library_name="peft", tags=["lora", f"base_model:adapter:{base}"])
    ModelCard(f"---\n{data.to_yaml()}\n---\n\n# Model Card\n").save(path / "README.md")
    return path / "README.md"


def test_an_adapter_card_names_the_recipe_base_model_in_metadata_and_tag(tmp_path: Path) -> None:
    card = peft_card(tmp_path, "/cache/tiny-qwen2-v2")
    name_base_model(card, "Qwen/Qwen2.5-0.5B")
    data = ModelCard.load(card).data
    assert data.base_model == "Qwen/Qwen2.5-0.5B" and data.library_name == "peft"
    assert data.tags == ["lora", "base_model:adapter:Qwen/Qwen2.5-0.5B"]
    assert ModelCard.load(card).text.strip() == "# Model Card"


def test_a_local_base_folder_leaves_the_adapter_card_as_peft_wrote_it(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    card = peft_card(tmp_path, "/where/the/base/was/loaded/from")
    before = card.read_text()
    name_base_model(card, str(base))
    assert card.read_text() == before
