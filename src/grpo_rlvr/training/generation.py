"""Where a training completion ends: the model's EOS, the recipe's end tokens, and the stop rule."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import torch
from trl import GRPOTrainer

from grpo_rlvr import data as gsm8k_data
from grpo_rlvr.config.sections import ConfigError, DataArguments, RunConfig
from grpo_rlvr.prompt_format import PromptFormat


def check_tokenizer(data: DataArguments, prompt_format: PromptFormat, tokenizer: Any) -> list[int]:
    """The tokenizer fits the recipe (a chat template for a chat format, every end token one token),
    checked before the model loads; returns the end tokens' ids."""
    if prompt_format.chat and not tokenizer.chat_template:
        raise ConfigError("prompt_format", "chat needs a tokenizer with a chat template; this one has none")
    try:
        return gsm8k_data.end_token_ids(data.end_tokens, tokenizer)
    except ValueError as err:
        raise ConfigError("end_tokens", str(err)) from err


def add_end_tokens(model: torch.nn.Module, ids: list[int]) -> None:
    """TRL ends completions (and counts them finished) at the model's generation-config EOS ids: add
    ours there (vLLM gets them from `generation_kwargs`)."""
    if not ids:
        return
    eos = model.generation_config.eos_token_id
    eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    model.generation_config.eos_token_id = [*eos, *(i for i in ids if i not in eos)]


def generation_kwargs(config: RunConfig, end_ids: list[int]) -> dict[str, Any] | None:
    """TRL's `generation_kwargs` for training: the recipe's own, plus where completions end.

    The stop rule (`stop_at_answer`) ends training generation where evaluation's ends (the prompt
    format's `stop_strings`): vLLM's SamplingParams read `stop`, transformers' GenerationConfig
    `stop_strings`. vLLM reads its end tokens from the model folder, so it gets ours as
    `stop_token_ids`. A value the recipe sets itself wins."""
    args, ours = config.training, {}
    if config.data.stop_at_answer:
        ours["stop" if args.use_vllm else "stop_strings"] = list(config.prompt_format.stop_strings)
    if end_ids and args.use_vllm:
        ours["stop_token_ids"] = end_ids
    if not ours:
        return args.generation_kwargs
    return {**ours, **(args.generation_kwargs or {})}


class StopAtAnswerTrainer(GRPOTrainer):
    """TRL's GRPOTrainer, where a completion that ended at a stop string counts as finished.

    TRL counts a completion as finished only when its last token is an end token (EOS or pad): one that
    stopped at a stop string would be counted in `completions/clipped_ratio` and, with
    `mask_truncated_completions`, dropped from the loss, right answer and all. Such a completion ends here
    with the tokenizer's EOS, as transformers' `generate` already ends every stopped row but the batch's
    last (it pads finished rows, and the pad is EOS for Qwen); a vLLM sampling log-probability for that
    token is unknown (None), which TRL's importance-sampling correction reads as "no correction".
    transformers also needs the tokenizer to apply stop strings, and TRL does not pass it to `generate`.
    Without stop strings in `generation_kwargs` this trainer is TRL's own.
    """

    @property
    def stop_strings(self) -> list[str]:
        stops = (self.args.generation_kwargs or {}).get("stop" if self.use_vllm else "stop_strings")
        return [stops] if isinstance(stops, str) else list(stops or ())

    def _generate_single_turn(self, *args: Any, **kwargs: Any) -> tuple[list, list | None]:
        with self._generate_with_tokenizer():
            completion_ids, logprobs = super()._generate_single_turn(*args, **kwargs)
        return self._end_at_stop(completion_ids, logprobs)

    @contextmanager
    def _generate_with_tokenizer(self) -> Iterator[None]:
        """transformers' `generate` reads stop strings through the tokenizer: hand it over for one call."""
        if self.use_vllm or not self.stop_strings:
            yield
            return
        model = self.accelerator.unwrap_model(self.model_wrapped)
        model.generate = partial(model.generate, tokenizer=self._tokenizer)
        try:
            yield
        finally:
            del model.generate

    def _end_at_stop(self, completion_ids: list, logprobs: list | None) -> tuple[list, list | None]:
        """End each completion that reached a stop string (and no end token) with EOS; others unchanged."""
        stops, ends, pad = self.stop_strings, set(self.eos_token_ids), self._tokenizer.pad_token_id
        for i, ids in enumerate(completion_ids):
            if not stops or not ids or ids[-1] in ends:
                continue
            n = len(ids)
            while n and ids[n - 1] == pad:  # transformers pads a stopped row when pad is not EOS
                n -= 1
            text = self._tokenizer.decode(ids[:n])
            if any(stop in text for stop in stops):
                completion_ids[i] = [*ids[:n], self._tokenizer.eos_token_id]
                if logprobs is not None:
                    logprobs[i] = [*logprobs[i][:n], None]
        return completion_ids, logprobs
