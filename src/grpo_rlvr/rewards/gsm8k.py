"""GSM8K's two verifiable rewards. Both read answers through `grpo_rlvr.answers`, the same extractor
`grade` and `evaluate` use, so the format and correctness signals can never disagree about a number."""

from __future__ import annotations

from grpo_rlvr.answers import extract, parse_number, same_number
from grpo_rlvr.rewards import register

FORMAT_REWARD = 0.5
CORRECT_REWARD = 1.0


def _text(completion: str | list[dict]) -> str:
    """TRL passes strings for plain prompts and message lists for conversational ones."""
    return completion if isinstance(completion, str) else completion[-1]["content"]


@register("gsm8k_format")
def gsm8k_format(completions: list, **_: object) -> list[float]:
    """0.5 when the graded part holds an unambiguous `#### The final answer is N` line."""
    scores = []
    for c in completions:
        answer = extract(_text(c))
        scores.append(FORMAT_REWARD if answer.value is not None and answer.canonical else 0.0)
    return scores


@register("gsm8k_correctness", columns=("final_answer",))
def gsm8k_correctness(completions: list, final_answer: list[str], **_: object) -> list[float]:
    """1.0 when the extracted final answer equals the gold number exactly."""
    return [
        CORRECT_REWARD if same_number(extract(_text(c)).value, parse_number(str(gold))) else 0.0
        for c, gold in zip(completions, final_answer, strict=True)
    ]
