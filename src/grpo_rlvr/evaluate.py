"""GSM8K evaluation that can be trusted: batched greedy generation, grading, intervals, tables, plots.

The result this project starts from ("11% -> 41% on 100 samples") read the last integer of prompt +
1,024 greedy tokens, on 10-50 rows, and scored base and tuned models differently. Here every model gets
the same prompts (`data.build_prompt` in the run's `PromptFormat`; with a chat format, its chat turns
rendered by each model's own chat template, as training renders them), greedy decoding that stops where
the answer ends (EOS, the run's end tokens, or the start of an invented next question, the format's
stop string), the extractor training and `grade` use (`grading.grade_one`, which also cuts any invented
continuation), the whole split unless `limit` says otherwise, and a 95% Wilson interval next to every
accuracy.

`evaluate_examples` is the API (the CLI and end-of-training evaluation both call it); a `Generator`
turns prompts into completions (`HFGenerator` on CPU or GPU, `VLLMGenerator` on GPU).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tqdm import tqdm

from grpo_rlvr.data import (
    DATA_SUFFIXES,
    PACKAGED_GSM8K,
    DataError,
    add_prompts,
    build_chat_prompt,
    build_prompt,
    end_token_ids,
    load_examples,
    prompt_text,
    write_jsonl,
)
from grpo_rlvr.files import is_local_path, local_path
from grpo_rlvr.grading import grade_one, wilson_interval
from grpo_rlvr.merging import merged_model
from grpo_rlvr.prompt_format import DEFAULT, MAX_NEW_TOKENS, PromptFormat
from grpo_rlvr.tiny import resolve_model_path
from grpo_rlvr.versions import package_versions

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

BACKENDS = ("hf", "vllm")
HF_BATCH_SIZE = 16
PREDICTIONS, METRICS, TABLE, PLOT, TIMING = (
    "predictions.jsonl",
    "metrics.json",
    "results.md",
    "accuracy_vs_shots.png",
    "timing.json",  # kept apart so the other files are byte-identical between identical runs
)
SERIES_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e")
_DODGE = 0.12  # horizontal offset between series, so equal accuracies do not hide each other


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


@dataclass(frozen=True)
class Generation:
    """One completion, already cut at the stop string, and why generation ended."""

    completion: str
    prompt_tokens: int
    completion_tokens: int
    finish: str  # "stop" (EOS or a stop string) or "length" (max_new_tokens reached)


@dataclass(frozen=True)
class GeneratorSettings:
    """How every backend decodes: greedy, at most `max_new_tokens`, ending at EOS, the run's end tokens or
    the prompt format's stop strings (cut from the text); `batch_size` None is the backend's own."""

    max_new_tokens: int = MAX_NEW_TOKENS
    batch_size: int | None = None
    stop: tuple[str, ...] = DEFAULT.stop_strings
    end_tokens: tuple[str, ...] = ()

    def end_ids(self, spec: ModelSpec, tokenizer: Any) -> list[int]:
        """The end tokens' ids for this model's tokenizer; a ValueError naming the model for one its
        tokenizer writes as several tokens."""
        try:
            return end_token_ids(self.end_tokens, tokenizer)
        except ValueError as err:
            raise ValueError(f"end_tokens for model {spec.label!r}: {err}") from err


class Generator(Protocol):
    info: dict[str, Any]  # device, dtype …: recorded in metrics.json

    def generate(self, prompts: list[str]) -> list[Generation]: ...


Prompt = str | list[dict[str, str]]  # text, or chat turns (`data.build_chat_prompt`)


def cut_at_stop(text: str, stop_strings: Sequence[str] = DEFAULT.stop_strings) -> str:
    """Text before the first stop string (vLLM leaves it out too, so both backends agree)."""
    cuts = [i for i in (text.find(s) for s in stop_strings) if i >= 0]
    return text[: min(cuts)] if cuts else text


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


class HFGenerator:
    """transformers `generate()`: left-padded batches, longest prompts first so padding stays small."""

    def __init__(self, spec: ModelSpec, settings: GeneratorSettings) -> None:
        import torch
        from transformers import GenerationConfig

        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        model, self.tokenizer = load_merged(spec, dtype)
        self.model = model.to(device).eval()
        self.batch_size = settings.batch_size or HF_BATCH_SIZE
        eos = self.model.generation_config.eos_token_id
        eos = self.tokenizer.eos_token_id if eos is None else eos
        self.eos_ids = (set(eos) if isinstance(eos, list) else {eos}) | set(
            settings.end_ids(spec, self.tokenizer)
        )
        # Every decoding setting explicit: unset ones would be taken from the model's generation_config.
        self.config = GenerationConfig(
            do_sample=False,
            num_beams=1,
            repetition_penalty=1.0,
            max_new_tokens=settings.max_new_tokens,
            stop_strings=list(settings.stop),
            eos_token_id=sorted(self.eos_ids),
            pad_token_id=self.tokenizer.pad_token_id,
        )
        self.stop = settings.stop
        self.info = {
            "device": device,
            "dtype": str(dtype).removeprefix("torch."),
            "batch_size": self.batch_size,
        }

    def generate(self, prompts: list[str]) -> list[Generation]:
        import torch

        # Special tokens as the tokenizer adds them by default, as vLLM does (none for Qwen2).
        lengths = [len(ids) for ids in self.tokenizer(prompts)["input_ids"]]
        order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
        results: dict[int, Generation] = {}
        # A full test split takes minutes on a CPU: show how far it is (stderr, as transformers' bars).
        with tqdm(total=len(prompts), desc="generating", unit="answer", file=sys.stderr) as bar:
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                enc = self.tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True)
                with torch.inference_mode():
                    out = self.model.generate(
                        **enc.to(self.model.device), generation_config=self.config, tokenizer=self.tokenizer
                    )
                for i, ids in zip(batch, out[:, enc["input_ids"].shape[1] :].tolist(), strict=True):
                    results[i] = self._generation(ids, lengths[i])
                bar.update(len(batch))
        return [results[i] for i in range(len(prompts))]

    def _generation(self, ids: list[int], prompt_tokens: int) -> Generation:
        """Drop the padding that follows a finished sequence; tell EOS, an end token or a stop string from
        running out of tokens."""
        eos_at = next((j for j, t in enumerate(ids) if t in self.eos_ids), None)
        if eos_at is not None:
            ids = ids[:eos_at]
        else:  # finished by a stop string (then padded with a pad token other than EOS), or by length
            while ids and ids[-1] == self.tokenizer.pad_token_id:
                ids = ids[:-1]
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        completion = cut_at_stop(text, self.stop)
        finish = "stop" if eos_at is not None or completion != text else "length"
        return Generation(completion, prompt_tokens, len(ids), finish)


class VLLMGenerator:
    """vLLM on a GPU: greedy (`temperature=0`) with the same stop strings and end tokens (vLLM's
    `stop_token_ids`); it schedules batches itself."""

    def __init__(self, spec: ModelSpec, settings: GeneratorSettings) -> None:
        try:
            from vllm import LLM, SamplingParams
        except ImportError as err:
            raise ValueError("backend 'vllm' needs the vllm package (GPU image); use --backend hf") from err
        end_ids = settings.end_ids(spec, load_tokenizer(spec))  # before the engine starts
        path = resolve_model_path(spec.model)
        if spec.adapter:  # vLLM loads plain weights: write the merged model to a folder that lives with us
            self._merged = tempfile.TemporaryDirectory(prefix="grpo-rlvr-merged-")
            model, tokenizer = load_merged(spec, "auto")
            model.save_pretrained(self._merged.name)
            tokenizer.save_pretrained(self._merged.name)
            path = self._merged.name
        # 0.45 of the GPU: with --compare the first engine's memory may not be fully back yet.
        batch_size = settings.batch_size
        limits = {"max_num_seqs": batch_size} if batch_size else {}
        self.llm = LLM(model=path, seed=0, gpu_memory_utilization=0.45, **limits)
        self.stop = settings.stop
        self.params = SamplingParams(
            temperature=0, max_tokens=settings.max_new_tokens, stop=list(self.stop), stop_token_ids=end_ids
        )
        self.info = {"device": "cuda", "dtype": "auto", "max_num_seqs": batch_size}

    def generate(self, prompts: list[str]) -> list[Generation]:
        outputs = self.llm.generate(prompts, self.params, use_tqdm=True)
        return [
            Generation(
                cut_at_stop(o.outputs[0].text, self.stop),
                len(o.prompt_token_ids),
                len(o.outputs[0].token_ids),
                "length" if o.outputs[0].finish_reason == "length" else "stop",
            )
            for o in outputs
        ]


def make_generator(spec: ModelSpec, backend: str, settings: GeneratorSettings) -> Generator:
    """The one place a backend is chosen (tests replace it with scripted generators)."""
    return {"hf": HFGenerator, "vllm": VLLMGenerator}[backend](spec, settings)


def prompt_description(prompt_format: PromptFormat) -> str:
    """metrics.json's `prompt`: text or chat, and the prompt of a question with no shots."""
    if prompt_format.chat:
        return (
            "chat (data.build_chat_prompt): the first k worked examples as user/assistant turns, then "
            f"{build_chat_prompt('…', 0, prompt_format)!r}, rendered by each model's chat template with "
            "the assistant's turn opened"
        )
    return (
        f"text (data.build_prompt): the first k worked examples, then {build_prompt('…', 0, prompt_format)!r}"
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


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value: are two models' disagreements on the same questions one-sided?"""
    n = only_a + only_b
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1))
    return min(1.0, 2 * tail / 2**n)


def summarize(rows: list[dict[str, Any]], labels: list[str], shots: list[int]) -> list[dict[str, Any]]:
    """Accuracy, counts and Wilson interval per model x shots, in that order."""
    results = []
    for label in labels:
        for k in shots:
            part = [r for r in rows if r["model"] == label and r["shots"] == k]
            correct, n = sum(r["correct"] for r in part), len(part)
            lo, hi = wilson_interval(correct, n)
            results.append(
                {
                    "model": label,
                    "shots": k,
                    "n": n,
                    "correct": correct,
                    "accuracy": round(correct / n, 6),
                    "ci95": [round(lo, 6), round(hi, 6)],
                    "no_answer": sum(r["extracted"] is None for r in part),
                    "truncated": sum(r["finish"] == "length" for r in part),
                }
            )
    return results


def compare(
    rows: list[dict[str, Any]], results: list[dict[str, Any]], base: str, trained: str
) -> list[dict[str, Any]]:
    """Per shots: trained - base, whether the intervals overlap, and the paired (McNemar) test."""
    table = []
    for b in (r for r in results if r["model"] == base):
        t = next(r for r in results if r["model"] == trained and r["shots"] == b["shots"])
        right = {
            m: {r["id"]: r["correct"] for r in rows if r["model"] == m and r["shots"] == b["shots"]}
            for m in (base, trained)
        }
        base_only = sum(right[base][i] and not right[trained][i] for i in right[base])
        trained_only = sum(right[trained][i] and not right[base][i] for i in right[base])
        table.append(
            {
                "shots": b["shots"],
                "base": b["accuracy"],
                "trained": t["accuracy"],
                "difference": round(t["accuracy"] - b["accuracy"], 6),
                "intervals_overlap": t["ci95"][0] <= b["ci95"][1] and b["ci95"][0] <= t["ci95"][1],
                "base_only_correct": base_only,
                "trained_only_correct": trained_only,
                "mcnemar_p": float(f"{mcnemar_p(base_only, trained_only):.4g}"),  # 4 digits, never 0
            }
        )
    return table


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def render_table(metrics: dict[str, Any]) -> str:
    """The Markdown summary: model x shots with n and interval, plus trained - base when comparing."""
    data, dec = metrics["data"], metrics["decoding"]
    lines = [
        "# GSM8K evaluation",
        "",
        f"{data['examples']} questions"
        + (f" from `{data['source']}`" if data["source"] else "")
        + (f" (split {data['split']})" if data["split"] else "")
        + f"; greedy decoding, at most {dec['max_new_tokens']} new tokens, stopping at "
        + ", ".join(["EOS", *(f"`{t}`" for t in dec["end_tokens"])])
        + f" or a new `{dec['stop'][0].strip()}`; backend {metrics['backend']}. Intervals: 95% Wilson.",
        "",
        "| model | shots | accuracy | correct / n | 95% interval |",
        "|---|---:|---:|---:|---|",
    ]
    lines += [
        f"| {r['model']} | {r['shots']} | {_pct(r['accuracy'])} | {r['correct']} / {r['n']} | "
        f"[{_pct(r['ci95'][0])}, {_pct(r['ci95'][1])}] |"
        for r in metrics["results"]
    ]
    if "comparison" in metrics:
        c = metrics["comparison"]
        lines += [
            "",
            f"## trained - base (base: {c['base']}, trained: {c['trained']})",
            "",
            "| shots | base | trained | difference | intervals overlap | McNemar p (paired) |",
            "|---:|---:|---:|---:|---|---:|",
        ]
        lines += [
            f"| {r['shots']} | {_pct(r['base'])} | {_pct(r['trained'])} | {100 * r['difference']:+.1f} pt | "
            f"{'yes' if r['intervals_overlap'] else 'no'} | {r['mcnemar_p']:.4g} |"
            for r in c["by_shots"]
        ]
    return "\n".join(lines) + "\n"


def plot_accuracy(results: list[dict[str, Any]], path: Path | None = None) -> Figure:
    """Accuracy vs shots, one series per model, Wilson error bars; saved to `path` when given.

    A bare `Figure` (no pyplot): no global backend or figure registry, nothing to close.
    """
    from matplotlib.figure import Figure

    labels = list(dict.fromkeys(r["model"] for r in results))
    fig = Figure(figsize=(7, 4.5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    for i, label in enumerate(labels):
        part = [r for r in results if r["model"] == label]
        acc = [100 * r["accuracy"] for r in part]
        low = [a - 100 * r["ci95"][0] for a, r in zip(acc, part, strict=True)]
        high = [100 * r["ci95"][1] - a for a, r in zip(acc, part, strict=True)]
        x = [r["shots"] + (i - (len(labels) - 1) / 2) * _DODGE for r in part]
        color = SERIES_COLORS[i % len(SERIES_COLORS)]
        ax.errorbar(x, acc, yerr=[low, high], label=label, color=color, marker="o", capsize=4, linewidth=2)
    ax.set_xticks(sorted({r["shots"] for r in results}))
    ax.set_xlabel("worked examples in the prompt (shots)")
    ax.set_ylabel("accuracy (%), 95% Wilson interval")
    ax.set_title(f"GSM8K, n = {max(r['n'] for r in results)} questions")
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", fontsize="small")  # below the axes: long paths hide no data
    if path is not None:
        fig.savefig(path)
    return fig


def evaluate_examples(
    models: Sequence[ModelSpec | str],
    examples: Sequence[dict[str, Any]],
    out_dir: Path | str,
    *,
    shots: Sequence[int] = (0,),
    backend: str = "hf",
    batch_size: int | None = None,
    max_new_tokens: int = MAX_NEW_TOKENS,
    compare_base_trained: bool = False,
    data_info: dict[str, Any] | None = None,
    prompt_format: PromptFormat = DEFAULT,
    end_tokens: Sequence[str] = (),
) -> dict[str, Any]:
    """Evaluate every model at every shot count on `examples` (rows with `question` + gold answer).

    Writes predictions.jsonl, metrics.json, results.md, accuracy_vs_shots.png and timing.json to
    `out_dir` and returns the metrics. `compare_base_trained` needs exactly two models (base, trained).
    Prompts, stop strings and the canonical answer line come from `prompt_format` and generation also
    ends at `end_tokens` (both the training run's), so a model is graded in the format it was trained in.
    """
    from accelerate.utils.memory import clear_device_cache

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
    prompted = {k: add_prompts(list(examples), k, prompt_format) for k in shots}
    stop = prompt_format.stop_strings
    settings = GeneratorSettings(max_new_tokens, batch_size, stop, tuple(end_tokens))
    missing = [i for i, e in enumerate(examples) if "final_answer" not in e]
    if missing:
        raise DataError(f"{len(missing)} rows have no gold answer (first: row {missing[0] + 1})")
    for spec in specs:
        spec.check_paths()
    prompts = {k: [e["prompt"] for e in prompted[k]] for k in shots}
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
            for i, (example, gen) in enumerate(zip(examples, generations, strict=True)):
                gold = example["final_answer"]
                rows.append(
                    {
                        "id": example.get("id", i),
                        "model": spec.label,
                        "shots": k,
                        "prompt_tokens": gen.prompt_tokens,
                        "completion_tokens": gen.completion_tokens,
                        "finish": gen.finish,
                        "completion": gen.completion,
                        **grade_one(gen.completion, gold, prompt_format),
                        "gold": gold,
                    }
                )
            log.info("%s %d-shot: %d questions in %.1f s", spec.label, k, len(generations), elapsed)
        del generator
        clear_device_cache(garbage_collection=True)  # the next model gets the memory this one held

    results = summarize(rows, labels, shots)
    metrics: dict[str, Any] = {
        "data": {"source": None, "split": None, **(data_info or {}), "examples": len(examples)},
        "prompt": prompt_description(prompt_format),
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
    (out_dir / TABLE).write_text(render_table(metrics), encoding="utf-8")
    plot_accuracy(results, out_dir / PLOT)
    (out_dir / TIMING).write_text(json.dumps({"seconds": seconds}, indent=2) + "\n", encoding="utf-8")
    return metrics
