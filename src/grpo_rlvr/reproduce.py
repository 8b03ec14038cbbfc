"""A miniature reproduction, on a CPU in minutes: GRPO on the real GSM8K rewards makes a model better.

1. Data: synthetic GSM8K-style word problems (`grpo_rlvr.synthetic`): warm-up, training and held-out
   test questions, no question in two of them.
2. Base model: `builtin:mini-qwen2` (random weights) taught by a short supervised warm-up (TRL's
   `SFTTrainer`) on documents of worked problems in the training answer format, as a pretrained model
   has seen text. It learns the format and part of the arithmetic: its accuracy is between 0 and 100%.
   Like a pretrained model, it continues after its answer with an invented next `Question:`.
3. GRPO with `gsm8k_format` + `gsm8k_correctness` through `train.run` (recipe `mini-grpo-cpu`).
4. `grpo-rlvr evaluate --compare` base vs trained on the held-out questions: accuracies with 95%
   Wilson intervals and the exact McNemar test on the paired per-question results.

The run passes when the trained model beats the base at p < `P_MAX`; it writes `results.md`,
`metrics.json` and `training.png` into the output folder (the evaluation's own files in `eval/`).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from grpo_rlvr.data import worked_example

WARMUP_DOC_PROBLEMS = 4  # worked problems per warm-up document, separated as shots in a prompt are


def warmup_documents(rows: list[dict[str, str]], seed: int) -> list[dict[str, str]]:
    """Rows -> `{"text": …}` documents of `WARMUP_DOC_PROBLEMS` worked problems each, shuffled."""
    order = list(rows)
    random.Random(seed).shuffle(order)
    size = WARMUP_DOC_PROBLEMS
    return [
        {"text": "".join(worked_example(**row) for row in order[i : i + size]).rstrip("\n")}
        for i in range(0, len(order), size)
    ]


def warm_up(
    model: str, rows: list[dict[str, str]], out_dir: Path, *, steps: int, learning_rate: float, seed: int
) -> dict[str, Any]:
    """Supervised warm-up of `model` on `rows` with TRL's SFTTrainer; the model is saved to `out_dir`."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from grpo_rlvr.tiny import resolve_model_path

    path = resolve_model_path(model)
    args = SFTConfig(
        output_dir=str(out_dir / "checkpoints"),
        max_steps=steps,
        per_device_train_batch_size=16,
        learning_rate=learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, steps // 20),
        weight_decay=0.0,
        logging_steps=max(1, steps // 10),
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        seed=seed,
        disable_tqdm=True,
        dataset_num_proc=None,
    )
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(path),
        args=args,
        train_dataset=Dataset.from_list(warmup_documents(rows, seed)),
        processing_class=AutoTokenizer.from_pretrained(path),
    )
    result = trainer.train()
    trainer.save_model(str(out_dir))
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return {"steps": result.global_step, "loss_first": losses[0], "loss_final": losses[-1]}
