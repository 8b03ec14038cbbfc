"""GSM8K's two verifiable rewards. Both read answers through `grpo_rlvr.answers`, the same extractor
`grade` and `evaluate` use, so the format and correctness signals can never disagree about a number.
The prompt format is bound by the registry (`prompt_format` is no `reward_kwargs` option); TRL passes
every dataset column as a keyword, hence `**_columns`."""

from __future__ import annotations

from grpo_rlvr.answers import extract_all, parse_number, same_number
from grpo_rlvr.prompt_format import DEFAULT, PromptFormat
from grpo_rlvr.rewards import completion_text, register

FORMAT_REWARD = 0.5
CORRECT_REWARD = 1.0


@register("gsm8k_format")
def gsm8k_format(
    completions: list, *, prompt_format: PromptFormat = DEFAULT, **_columns: object
) -> list[float]:
    """0.5 when the graded part holds an unambiguous answer line of the prompt format
    (`#### The final answer is N`)."""
    return [
        FORMAT_REWARD if a.value is not None and a.canonical else 0.0
        for a in extract_all([completion_text(c) for c in completions], prompt_format.canonical)
    ]


@register("gsm8k_correctness", columns=("final_answer",))
def gsm8k_correctness(
    completions: list, final_answer: list[str], *, prompt_format: PromptFormat = DEFAULT, **_columns: object
) -> list[float]:
    """1.0 when the extracted final answer equals the gold number exactly."""
    answers = extract_all([completion_text(c) for c in completions], prompt_format.canonical)
    return [
        CORRECT_REWARD if same_number(a.value, parse_number(str(gold))) else 0.0
        for a, gold in zip(answers, final_answer, strict=True)
    ]
