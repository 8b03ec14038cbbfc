"""What `evaluate` measures: a task builds the prompts, says where generation stops and grades.

Generation, summaries (score, Wilson interval), the paired comparison, tables and plots are the same
for every task (`grpo_rlvr.evaluation`); only these parts differ:

- `GSM8KTask`: k-shot prompts in the run's `PromptFormat`, stopping at an invented next question,
  graded by the extractor training and `grade` use (`grading.grade_one`).
- `HumanEvalTask`: the problem's own prompt (signature and docstring, no shots), stopping where the
  function body ends, graded by running the problem's `check` in the sandbox (`grpo_rlvr.humaneval`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from grpo_rlvr import humaneval
from grpo_rlvr.data import DataError, add_prompts, build_chat_prompt, build_prompt
from grpo_rlvr.grading import grade_one
from grpo_rlvr.prompt_format import DEFAULT, MAX_NEW_TOKENS, PromptFormat

Prompt = str | list[dict[str, str]]  # text, or chat turns (`data.build_chat_prompt`)


class Task(Protocol):
    name: ClassVar[str]  # the CLI's --task
    title: ClassVar[str]  # in tables and plots
    metric: ClassVar[str]  # what a model's score is called
    noun: ClassVar[str]  # what one example is called
    max_new_tokens: ClassVar[int]  # the default generation budget

    @property
    def stop(self) -> tuple[str, ...]: ...

    def stop_phrase(self) -> str: ...

    def describe(self) -> str: ...

    def prompts(self, examples: Sequence[dict[str, Any]], shots: int) -> list[Prompt]: ...

    def check(self, examples: Sequence[dict[str, Any]]) -> None: ...

    def grade(
        self, examples: Sequence[dict[str, Any]], completions: Sequence[str]
    ) -> list[dict[str, Any]]: ...

    def unanswered(self, row: dict[str, Any]) -> bool: ...


@dataclass(frozen=True)
class GSM8KTask:
    """GSM8K-shaped rows (`question` + gold `final_answer`) in a prompt format."""

    prompt_format: PromptFormat = DEFAULT
    name: ClassVar[str] = "gsm8k"
    title: ClassVar[str] = "GSM8K"
    metric: ClassVar[str] = "accuracy"
    noun: ClassVar[str] = "questions"
    max_new_tokens: ClassVar[int] = MAX_NEW_TOKENS

    @property
    def stop(self) -> tuple[str, ...]:
        return tuple(self.prompt_format.stop_strings)

    def stop_phrase(self) -> str:
        return f"a new `{self.stop[0].strip()}`"

    def describe(self) -> str:
        """metrics.json's `prompt`: text or chat, and the prompt of a question with no shots."""
        if self.prompt_format.chat:
            return (
                "chat (data.build_chat_prompt): the first k worked examples as user/assistant turns, then "
                f"{build_chat_prompt('…', 0, self.prompt_format)!r}, rendered by each model's chat template "
                "with the assistant's turn opened"
            )
        prompt = build_prompt("…", 0, self.prompt_format)
        return f"text (data.build_prompt): the first k worked examples, then {prompt!r}"

    def prompts(self, examples: Sequence[dict[str, Any]], shots: int) -> list[Prompt]:
        return [e["prompt"] for e in add_prompts(list(examples), shots, self.prompt_format)]

    def check(self, examples: Sequence[dict[str, Any]]) -> None:
        missing = [i for i, e in enumerate(examples) if "final_answer" not in e]
        if missing:
            raise DataError(f"{len(missing)} rows have no gold answer (first: row {missing[0] + 1})")

    def grade(self, examples: Sequence[dict[str, Any]], completions: Sequence[str]) -> list[dict[str, Any]]:
        return [
            {**grade_one(c, e["final_answer"], self.prompt_format), "gold": e["final_answer"]}
            for e, c in zip(examples, completions, strict=True)
        ]

    def unanswered(self, row: dict[str, Any]) -> bool:
        return row["extracted"] is None


@dataclass(frozen=True)
class HumanEvalTask:
    """HumanEval problems (`humaneval.load_problems`): pass@1 of the completed function."""

    name: ClassVar[str] = "humaneval"
    title: ClassVar[str] = "HumanEval"
    metric: ClassVar[str] = "pass@1"
    noun: ClassVar[str] = humaneval.NOUN
    max_new_tokens: ClassVar[int] = humaneval.MAX_NEW_TOKENS

    @property
    def stop(self) -> tuple[str, ...]:
        return humaneval.STOP

    def stop_phrase(self) -> str:
        return "a new top-level " + ", ".join(f"`{s.strip()}`" for s in self.stop)

    def describe(self) -> str:
        return "the problem's prompt as published (imports, signature, docstring), no shots, no template"

    def prompts(self, examples: Sequence[dict[str, Any]], shots: int) -> list[Prompt]:
        if shots:
            raise ValueError(f"HumanEval is evaluated with its own prompt only: --shots 0, not {shots}")
        return [e["prompt"] for e in examples]

    def check(self, examples: Sequence[dict[str, Any]]) -> None:
        missing = [i for i, e in enumerate(examples) if not {"test", "entry_point"} <= e.keys()]
        if missing:
            raise DataError(
                f"{len(missing)} problems have no test or entry_point (first: row {missing[0] + 1})"
            )

    def grade(self, examples: Sequence[dict[str, Any]], completions: Sequence[str]) -> list[dict[str, Any]]:
        return humaneval.grade(examples, completions)

    def unanswered(self, row: dict[str, Any]) -> bool:
        return row["status"] == "syntax_error"  # no function to run at all


GSM8K = GSM8KTask()  # the default text format
TASKS: dict[str, type[GSM8KTask] | type[HumanEvalTask]] = {t.name: t for t in (GSM8KTask, HumanEvalTask)}
