"""Generation backends: prompts -> completions (`Generation`), greedy and with the same settings
(`GeneratorSettings`) for `HFGenerator` (transformers, CPU or GPU) and `VLLMGenerator` (GPU)."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tqdm import tqdm

from grpo_rlvr.data import end_token_ids
from grpo_rlvr.evaluation.models import ModelSpec, load_merged, load_tokenizer
from grpo_rlvr.prompt_format import DEFAULT, MAX_NEW_TOKENS
from grpo_rlvr.tiny import resolve_model_path

HF_BATCH_SIZE = 16


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


def cut_at_stop(text: str, stop_strings: Sequence[str] = DEFAULT.stop_strings) -> str:
    """Text before the first stop string (vLLM leaves it out too, so both backends agree)."""
    cuts = [i for i in (text.find(s) for s in stop_strings) if i >= 0]
    return text[: min(cuts)] if cuts else text


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
