"""Evaluation that can be trusted (GSM8K, HumanEval): batched greedy generation, grading, intervals,
tables, plots.

The result this project starts from ("11% -> 41% on 100 samples") read the last integer of prompt +
1,024 greedy tokens, on 10-50 rows, and scored base and tuned models differently. Here every model gets
the same prompts (`data.build_prompt` in the run's `PromptFormat`; with a chat format, its chat turns
rendered by each model's own chat template, as training renders them), greedy decoding that stops where
the answer ends (EOS, the run's end tokens, or the start of an invented next question, the format's
stop string), the extractor training and `grade` use (`grading.grade_one`, which also cuts any invented
continuation), the whole split unless `limit` says otherwise, and a 95% Wilson interval next to every
accuracy.

`evaluate_examples` is the API (the CLI and end-of-training evaluation both call it); a `Generator`
(`generation.py`) turns prompts into completions (`HFGenerator` on CPU or GPU, `VLLMGenerator` on GPU); a
`tasks.Task` builds the prompts, names the stop strings and grades (GSM8K by default; HumanEval's pass@1
runs each completed function against its tests in the code_exec sandbox).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grpo_rlvr.data import PACKAGED_GSM8K, load_examples
from grpo_rlvr.datafiles import DATA_SUFFIXES, write_jsonl
from grpo_rlvr.evaluation.generation import GeneratorSettings, make_generator
from grpo_rlvr.evaluation.models import ModelSpec, render_prompts
from grpo_rlvr.evaluation.reports import plot_accuracy, render_table
from grpo_rlvr.evaluation.scoring import compare, summarize
from grpo_rlvr.files import is_local_path, local_path
from grpo_rlvr.prompt_format import DEFAULT, PromptFormat
from grpo_rlvr.tasks import GSM8KTask, Task
from grpo_rlvr.versions import package_versions

log = logging.getLogger(__name__)

BACKENDS = ("hf", "vllm")
PREDICTIONS, METRICS, TABLE, PLOT, TIMING = (
    "predictions.jsonl",
    "metrics.json",
    "results.md",
    "accuracy_vs_shots.png",
    "timing.json",  # kept apart so the other files are byte-identical between identical runs
)


def parse_shots(text: str) -> list[int]:
    """`0,2,4,8` -> [0, 2, 4, 8] (sorted, unique); a clear error for anything else."""
    try:
        shots = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise ValueError(f"--shots must be comma-separated integers such as 0,2,4,8, got {text!r}") from None
    try:
        DEFAULT.check_shots(shots, repr(text))
    except ValueError as err:
        raise ValueError(f"--shots values {err}") from None
    return shots


def default_out_dir() -> Path:
    """SageMaker's output/data folder in the container (uploaded with the job), else ./eval."""
    from grpo_rlvr.sagemaker import BASE_DIR_ENV, DEFAULT_BASE_DIR, Paths

    if os.environ.get(BASE_DIR_ENV) or Path(DEFAULT_BASE_DIR).is_dir():
        return Paths.from_env(os.environ).output_data_dir
    return Path("eval")


def load_eval_examples(
    source: str | Path | None, split: str = "test", limit: int | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The examples to evaluate (the first `limit` in source order) and a record of where they came from.

    `split` picks the hub split, or the file `<split>.jsonl|.json|.parquet` inside a folder (such as
    a copy of GSM8K); a file, or a folder without such a file (a SageMaker channel), is used whole.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be at least 1, got {limit}")
    source = str(source or PACKAGED_GSM8K)
    path = local_path(source)
    local = is_local_path(source)  # load_examples' rule for local vs hub
    split_file = next((f for f in (path / f"{split}{s}" for s in DATA_SUFFIXES) if f.is_file()), None)
    if path.is_dir() and split_file:
        source = str(split_file)
    examples, report = load_examples(source, split=split)
    info = {
        "source": source,
        "split": split if split_file or not local else None,
        "loaded": report.summary(),
        "limit": limit,
    }
    return examples[:limit], info


def evaluate_examples(
    models: Sequence[ModelSpec | str],
    examples: Sequence[dict[str, Any]],
    out_dir: Path | str,
    *,
    shots: Sequence[int] = (0,),
    backend: str = "hf",
    batch_size: int | None = None,
    max_new_tokens: int | None = None,
    compare_base_trained: bool = False,
    data_info: dict[str, Any] | None = None,
    prompt_format: PromptFormat = DEFAULT,
    end_tokens: Sequence[str] = (),
    task: Task | None = None,
) -> dict[str, Any]:
    """Evaluate every model at every shot count on `examples`: GSM8K rows (`question` + gold answer)
    in `prompt_format`, or another `task`'s rows (HumanEval problems). `max_new_tokens` defaults to
    the task's.

    Writes predictions.jsonl, metrics.json, results.md, accuracy_vs_shots.png and timing.json to
    `out_dir` and returns the metrics. `compare_base_trained` needs exactly two models (base, trained).
    Prompts, stop strings and the canonical answer line come from `prompt_format` and generation also
    ends at `end_tokens` (both the training run's), so a model is graded in the format it was trained in.
    """
    from accelerate.utils.memory import clear_device_cache

    task = task or GSM8KTask(prompt_format)
    max_new_tokens = task.max_new_tokens if max_new_tokens is None else max_new_tokens
    specs = [m if isinstance(m, ModelSpec) else ModelSpec.parse(m) for m in models]
    labels = [s.label for s in specs]
    if not specs or len(set(labels)) != len(labels):
        raise ValueError(f"need one or more distinct models, got {labels}")
    if compare_base_trained and len(specs) != 2:
        raise ValueError(f"a comparison needs exactly two models (base, trained), got {len(specs)}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if (batch_size is not None and batch_size < 1) or max_new_tokens < 1:
        raise ValueError(
            f"batch size and max new tokens must be at least 1, got {batch_size}, {max_new_tokens}"
        )
    shots = sorted(set(shots))
    prompts = {k: task.prompts(examples, k) for k in shots}
    stop = task.stop
    settings = GeneratorSettings(max_new_tokens, batch_size, stop, tuple(end_tokens))
    task.check(examples)
    for spec in specs:
        spec.check_paths()
    texts = {spec.label: render_prompts(spec, prompts) for spec in specs}

    rows: list[dict[str, Any]] = []
    model_info, seconds = [], {}
    for spec in specs:
        generator = make_generator(spec, backend, settings)
        model_info.append(
            {"label": spec.label, "model": spec.model, "adapter": spec.adapter} | generator.info
        )
        for k in shots:
            start = time.perf_counter()
            generations = generator.generate(texts[spec.label][k])
            elapsed = time.perf_counter() - start
            seconds[f"{spec.label} | {k}-shot"] = round(elapsed, 3)
            graded = task.grade(examples, [gen.completion for gen in generations])
            for i, (example, gen, grade) in enumerate(zip(examples, generations, graded, strict=True)):
                rows.append(
                    {
                        "id": example.get("id", i),
                        "model": spec.label,
                        "shots": k,
                        "prompt_tokens": gen.prompt_tokens,
                        "completion_tokens": gen.completion_tokens,
                        "finish": gen.finish,
                        "completion": gen.completion,
                        **grade,
                    }
                )
            log.info("%s %d-shot: %d %s in %.1f s", spec.label, k, len(generations), task.noun, elapsed)
        del generator
        clear_device_cache(garbage_collection=True)  # the next model gets the memory this one held

    results = summarize(rows, labels, shots, task)
    metrics: dict[str, Any] = {
        "task": task.name,
        "data": {"source": None, "split": None, **(data_info or {}), "examples": len(examples)},
        "prompt": task.describe(),
        "backend": backend,
        "decoding": {
            "greedy": True,
            "max_new_tokens": max_new_tokens,
            "stop": list(stop),
            "end_tokens": list(end_tokens),
        },
        "models": model_info,
        "versions": package_versions(),
        "results": results,
    }
    if compare_base_trained:
        metrics["comparison"] = {
            "base": labels[0],
            "trained": labels[1],
            "by_shots": compare(rows, results, labels[0], labels[1]),
        }
    out_dir = Path(out_dir)
    write_jsonl(rows, out_dir / PREDICTIONS)  # creates the folder
    (out_dir / METRICS).write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / TABLE).write_text(render_table(metrics, task), encoding="utf-8")
    plot_accuracy(results, out_dir / PLOT, task)
    (out_dir / TIMING).write_text(json.dumps({"seconds": seconds}, indent=2) + "\n", encoding="utf-8")
    return metrics
