"""The prompt format: the one place that says how a question, a worked solution and its answer look.

Prompts (`data.build_prompt`), the worked examples and the solutions the model is shown, the
extractor's canonical answer line (`answers`), the format reward, evaluation's stop strings and the
tiny model's tokenizer corpus all derive from a `PromptFormat`, so changing the template changes all of
them together. `DEFAULT` is the format everything uses unless a recipe sets `prompt_format`.

Standard library only: the extractor imports it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

ANSWER_SLOT = "{}"  # where the number goes in `answer_line`
ANSWER_MARKER = "####"  # GSM8K's final-answer marker, which the extractor reads
# Lines the extractor takes for the start of an invented next problem (answers.py rule 1).
NEXT_PROBLEM_LABELS = ("Question:", "Q:", "Problem:")
MAX_NEW_TOKENS = 512  # GSM8K solutions in this format need ~100-300 tokens; `truncated` says if not

# Our own worked examples (written for this project, not taken from GSM8K, so they can never overlap
# its test split). Always used in this order: k shots = the first k.
EXEMPLARS: tuple[tuple[str, str], ...] = (
    (
        "A baker makes 24 muffins in the morning and 18 in the afternoon. He sells 30 of them. "
        "How many muffins are left?",
        "He makes 24 + 18 = 42 muffins.\nAfter selling 30, 42 - 30 = 12 muffins are left.\n#### 12",
    ),
    (
        "Maya reads 15 pages of her book every day. Her book has 240 pages. How many days does "
        "she need to finish it?",
        "She needs 240 / 15 = 16 days.\n#### 16",
    ),
    (
        "A shirt costs $25 and is on sale for 20% off. Tom buys 3 shirts on sale. How much does he pay?",
        "The discount is 25 * 0.2 = $5 per shirt.\nEach shirt costs 25 - 5 = $20.\n"
        "Three shirts cost 3 * 20 = $60.\n#### 60",
    ),
    (
        "The temperature was 4 degrees at noon and dropped 11 degrees by midnight. What was the "
        "temperature at midnight?",
        "At midnight it was 4 - 11 = -7 degrees.\n#### -7",
    ),
    (
        "A farm has 1,250 chickens. Each chicken lays 5 eggs a week. How many eggs does the farm "
        "collect in 2 weeks?",
        "In one week the chickens lay 1250 * 5 = 6250 eggs.\nIn two weeks they lay 6250 * 2 = "
        "12500 eggs.\n#### 12,500",
    ),
    (
        "Lena has 3 boxes with 8 pencils each. She gives 5 pencils to each of her 2 friends. How "
        "many pencils does she keep?",
        "She has 3 * 8 = 24 pencils.\nShe gives away 5 * 2 = 10 pencils.\nShe keeps 24 - 10 = 14 "
        "pencils.\n#### 14",
    ),
    (
        "A car uses 6 liters of fuel for every 100 km. How many liters does it use for a 350 km trip?",
        "The trip is 350 / 100 = 3.5 times 100 km.\nIt uses 3.5 * 6 = 21 liters.\n#### 21",
    ),
    (
        "Sam splits a 3 kg bag of rice equally into 4 jars. How many kilograms of rice go in each jar?",
        "Each jar gets 3 / 4 = 0.75 kg.\n#### 0.75",
    ),
)


@dataclass(frozen=True)
class PromptFormat:
    """How prompts and solutions are written; `check` says which field breaks a rule."""

    question_label: str = "Question:"
    solution_label: str = "Solution:"
    solution_prefix: str = "Let's think step by step."
    answer_line: str = "#### The final answer is {}"
    exemplars: tuple[tuple[str, str], ...] = EXEMPLARS  # (question, GSM8K solution ending `#### N`)
    chat: bool = False  # the shots as chat turns (user question, assistant solution), not labelled text

    @classmethod
    def from_settings(cls, settings: dict[str, Any] | None) -> PromptFormat:
        """A recipe's `prompt_format` mapping (any subset of the fields) over the default."""
        values = dict(settings or {})
        if "exemplars" in values:
            values["exemplars"] = tuple(tuple(pair) for pair in values["exemplars"])
        return dataclasses.replace(DEFAULT, **values)

    @property
    def canonical(self) -> str:
        """The answer line up to the number: the form the format reward asks for."""
        return self.answer_line.partition(ANSWER_SLOT)[0].rstrip()

    @property
    def stop_strings(self) -> tuple[str, ...]:
        """Where generation stops: the line that would start an invented next question."""
        return (f"\n{self.question_label}",)

    @property
    def max_shots(self) -> int:
        """The most worked examples a prompt in this format can hold (one per exemplar, at most MAX_SHOTS)."""
        return min(MAX_SHOTS, len(self.exemplars))

    def check_shots(self, shots: Iterable[int], given: object) -> None:
        """ValueError when a shot count is outside 0..max_shots; `given` is the value as the user wrote it."""
        if any(not 0 <= k <= self.max_shots for k in shots):
            raise ValueError(f"must be between 0 and {self.max_shots}, got {given}")

    def check(self) -> None:
        """ValueError naming the field when the format cannot be prompted, graded and cut as documented."""
        for name in ("question_label", "solution_label", "solution_prefix", "answer_line"):
            value = getattr(self, name)
            if not isinstance(value, str) or "\n" in value:
                raise ValueError(f"{name}: must be one line of text, got {value!r}")
        if self.question_label not in NEXT_PROBLEM_LABELS:
            raise ValueError(
                f"question_label: must be one of {list(NEXT_PROBLEM_LABELS)}, where grading cuts an "
                f"invented next problem; got {self.question_label!r}"
            )
        if not isinstance(self.chat, bool):
            raise ValueError(f"chat: must be true or false, got {self.chat!r}")
        if not self.solution_label.strip():
            raise ValueError("solution_label: may not be empty")
        if self.answer_line.count(ANSWER_SLOT) != 1 or not self.answer_line.startswith(ANSWER_MARKER):
            raise ValueError(
                f"answer_line: must start with {ANSWER_MARKER!r} and hold one {ANSWER_SLOT!r} for the "
                f"number, got {self.answer_line!r}"
            )
        if not self.exemplars or not all(
            len(pair) == 2 and all(isinstance(t, str) and t.strip() for t in pair) for pair in self.exemplars
        ):
            raise ValueError("exemplars: must be a non-empty list of [question, solution] pairs")
        unmarked = [i for i, (_, solution) in enumerate(self.exemplars) if ANSWER_MARKER not in solution]
        if unmarked:
            raise ValueError(
                f"exemplars: each solution must end with a GSM8K `{ANSWER_MARKER} N` line "
                f"(not exemplar {unmarked[0] + 1})"
            )


DEFAULT = PromptFormat()
MAX_SHOTS = len(EXEMPLARS)
