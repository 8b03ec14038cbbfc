"""The answer rules, case by case: one table, every row a completion and the scores it must get."""

import sys
from fractions import Fraction
from pathlib import Path

import pytest

from grpo_rlvr.answers import extract, format_number, parse_number
from grpo_rlvr.data import gold_from_solution, training_solution
from grpo_rlvr.rewards.gsm8k import gsm8k_correctness, gsm8k_format

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from final_answer import gsm8k_rows, reasoning_phrase_completions
from rewards import ADVERSARIAL, grade_seconds

CANON = "#### The final answer is"

# (completion, gold, expected format reward, expected correctness reward)
CASES = [
    # the canonical form, and the reference implementation's misses
    (f"Let's think. 3+4=7\n{CANON} 7", "7", 0.5, 1.0),
    (f"{CANON} -3", "-3", 0.5, 1.0),  # negatives score
    (f"{CANON} \u22123", "-3", 0.5, 1.0),  # Unicode minus
    (f"{CANON} -$3", "-3", 0.5, 1.0),
    (f"{CANON} $-3", "-3", 0.5, 1.0),
    (f"{CANON} 0.5", "0.5", 0.5, 1.0),  # decimals
    (f"{CANON} .5", "0.5", 0.5, 1.0),
    (f"{CANON} 0.50", "0.5", 0.5, 1.0),
    (f"{CANON} 12.0", "12", 0.5, 1.0),
    (f"{CANON} 1,200", "1200", 0.5, 1.0),  # thousands separators
    (f"{CANON} 1200", "1,200", 0.5, 1.0),  # gold with a comma
    (f"{CANON} 1,234,567", "1234567", 0.5, 1.0),
    (f"{CANON} $28", "28", 0.5, 1.0),  # `$28`: format and correctness agree
    (f"{CANON} $1,200.50.", "1200.5", 0.5, 1.0),
    (f"{CANON} 28 dollars", "28", 0.5, 1.0),  # units after the number
    (f"{CANON} 15%", "15", 0.5, 1.0),
    (f"{CANON}: **42**", "42", 0.5, 1.0),  # markdown bold, colon
    (f"{CANON}   42  \n", "42", 0.5, 1.0),  # whitespace variants
    (f"Reasoning\r\n{CANON} 42\r\n", "42", 0.5, 1.0),  # Windows newlines
    ("#### the FINAL answer   is 42", "42", 0.5, 1.0),  # case, spacing
    (f"{CANON} 042", "42", 0.5, 1.0),
    (f"{CANON} 72.\n", "72", 0.5, 1.0),  # a sentence's full stop
    (f"{CANON} 72.5\n", "72", 0.5, 0.0),
    (f"{CANON} 1234567890123456789", "1234567890123456789", 0.5, 1.0),  # beyond 64-bit, exact
    (f"{CANON} 3/4", "0.75", 0.5, 1.0),  # a fraction equals its decimal
    # other recognised forms: correct, but not the trained format
    ("#### 42", "42", 0.0, 1.0),
    ("The final answer is 42.", "42", 0.0, 1.0),
    ("So the answer is 42 apples.", "42", 0.0, 1.0),
    ("A: 42", "42", 0.0, 1.0),
    ("We get $\\boxed{42}$.", "42", 0.0, 1.0),
    ("\\boxed{-1,000}", "-1000", 0.0, 1.0),
    # wrong answers
    (f"{CANON} 41", "42", 0.5, 0.0),
    (f"{CANON} 42.5", "42", 0.5, 0.0),
    (f"{CANON} -42", "42", 0.5, 0.0),
    # near-equal is not equal: answers compare exactly, never within a tolerance
    (f"{CANON} 0.3333333", "1/3", 0.5, 0.0),
    (f"{CANON} 0.0000001", "0", 0.5, 0.0),
    (f"{CANON} 1000001", "1000000", 0.5, 0.0),
    (f"{CANON} 1234567890123456788", "1234567890123456789", 0.5, 0.0),  # equal as 64-bit floats
    # no answer at all
    ("I think it is 42", "42", 0.0, 0.0),  # a bare number is not a final answer
    ("", "42", 0.0, 0.0),
    (f"{CANON}", "42", 0.0, 0.0),
    (f"{CANON} forty-two", "42", 0.0, 0.0),
    # reward hacking: malformed or ambiguous numbers never score
    (f"{CANON} 4,2", "42", 0.0, 0.0),  # never 42
    (f"{CANON} 4,2", "4", 0.0, 0.0),  # nor 4
    (f"{CANON} 1,20", "120", 0.0, 0.0),
    (f"{CANON} 1,2000", "12000", 0.0, 0.0),
    (f"{CANON} 1.2.3", "1.2", 0.0, 0.0),
    (f"{CANON} 0,5", "0.5", 0.0, 0.0),  # decimal comma is ambiguous with a thousands comma
    (f"{CANON} 5 or 6", "5", 0.0, 0.0),
    (f"{CANON} 5, 6", "5", 0.0, 0.0),
    (f"{CANON} 5-6", "5", 0.0, 0.0),
    (f"{CANON} 5 to 6", "5", 0.0, 0.0),
    (f"{CANON} 4 2", "4", 0.0, 0.0),
    (f"{CANON} 2+3=5", "5", 0.0, 0.0),
    (f"{CANON} 5\n{CANON} 6", "5", 0.0, 0.0),  # hedging over several answer lines
    (f"{CANON} 6\nThe answer is 5", "5", 0.0, 0.0),
    (f"\\boxed{{5}} \\boxed{{6}}\n{CANON} 5", "5", 0.0, 0.0),
    (f"{CANON} 1/0", "1", 0.0, 0.0),
    # repeating the same answer is harmless
    (f"{CANON} 5\n#### 5\n\\boxed{{5.0}}", "5", 0.5, 1.0),
    # only the first answer counts: an invented follow-up problem is cut off
    (f"{CANON} 5\n\nQuestion: Tom has 3 apples...\nSolution: 3+3=6\n{CANON} 6", "5", 0.5, 1.0),
    (f"{CANON} 5\n\nQuestion: Tom has 3 apples...\n{CANON} 6", "6", 0.5, 0.0),
    (f"2+2=4\nQuestion: invented\n{CANON} 4", "4", 0.0, 0.0),  # answer only in the invention
    (f"{CANON} 5<|endoftext|>{CANON} 6", "5", 0.5, 1.0),
    (f"{CANON} 5\nQ: next one\nA: 6", "5", 0.5, 1.0),
    # prose that mentions "answer is" without a number does not block a real answer
    (f"The answer is not obvious.\n{CANON} 9", "9", 0.5, 1.0),
    # the final answer decides: "answer is N" in the reasoning is a step, not a competing answer
    (f"The answer is 5 apples per box.\nSo 4 boxes hold 4 * 5 = 20.\n{CANON} 20", "20", 0.5, 1.0),
    (f"The final answer is 5 only for the first part.\n{CANON} 20", "20", 0.5, 1.0),
    ("So the answer is 5 for now.\n#### 20", "20", 0.0, 1.0),
    ("The answer is 5 apples per box.\n#### 20\n#### The final answer is 20", "20", 0.5, 1.0),
    # … but hedging on the answer line, answers after it and explicit answer marks before it still do
    (f"The answer is 5 apples per box.\n{CANON} 5 or 20", "20", 0.0, 0.0),
    (f"The answer is 5.\n{CANON} 20\nThe answer is 5", "20", 0.0, 0.0),
    (f"The answer is 5.\n{CANON} 20. The answer is 5", "20", 0.0, 0.0),
    (f"The answer is 5.\n#### 5\n{CANON} 20", "20", 0.0, 0.0),
    (f"A: 5\n{CANON} 20", "20", 0.0, 0.0),
    (f"\\boxed{{5}}\n{CANON} 20", "20", 0.0, 0.0),
]


@pytest.mark.parametrize(("completion", "gold", "fmt", "correct"), CASES)
def test_reward_table(completion: str, gold: str, fmt: float, correct: float) -> None:
    assert gsm8k_format([completion]) == [fmt]
    assert gsm8k_correctness([completion], final_answer=[gold]) == [correct]


def test_table_is_large_and_covers_both_outcomes() -> None:
    assert len(CASES) >= 40
    assert {c[3] for c in CASES} == {0.0, 1.0} and {c[2] for c in CASES} == {0.0, 0.5}


def test_conversational_completions_are_read_from_the_last_message() -> None:
    messages = [{"role": "assistant", "content": f"{CANON} 12"}]
    assert gsm8k_correctness([messages], final_answer=["12"]) == [1.0]
    assert gsm8k_format([messages]) == [0.5]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1,200", Fraction(1200)),
        ("-3", Fraction(-3)),
        ("0.5", Fraction(1, 2)),
        (" 72 ", Fraction(72)),
        ("4,2", None),
        ("abc", None),
        ("", None),
        ("5 apples", None),
        ("3.", Fraction(3)),
    ],
)
def test_parse_number_reads_exactly_one_number(text: str, value: Fraction | None) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Fraction(-3), "-3"),
        (Fraction(1, 2), "0.5"),
        (Fraction(1000), "1000"),
        (Fraction(1, 3), "1/3"),
        (Fraction(-1, 8), "-0.125"),
        (Fraction(123456, 100), "1234.56"),
        (Fraction(1, 20), "0.05"),
    ],
)
def test_format_number_round_trips(value: Fraction, text: str) -> None:
    assert format_number(value) == text
    assert parse_number(text) == value


def test_extract_says_why_there_is_no_answer() -> None:
    assert extract(f"{CANON} 4,2").reason == "malformed or ambiguous number"
    assert extract(f"{CANON} 5\n{CANON} 6").reason == "conflicting answers"
    assert extract("no answer here").reason == "no final answer"


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_text_costs_grow_linearly(name: str) -> None:
    text = ADVERSARIAL[name]
    assert len(text) >= 900_000

    def best(t: str) -> float:
        return min(grade_seconds(t) for _ in range(3))

    # 10x the text: a linear scan costs ~10x, a backtracking regex 100x or more. The absolute target
    # (a megabyte within ADVERSARIAL_TARGET_S) is measured by `make bench`, not asserted on a shared machine.
    assert best(text) / best(text[: len(text) // 10]) < 40


def test_a_phrase_that_starts_a_calculation_is_not_an_answer() -> None:
    # From GSM8K's own train split (row 7158): prose says "the final answer is" mid-calculation.
    text = f"the final answer is 15 gallons * 8 pints / gallon = 120 pints\n{CANON} 120"
    assert gsm8k_correctness([text], final_answer=["120"]) == [1.0]
    assert gsm8k_format([text]) == [0.5]
    assert extract("The answer is 15 gallons * 8 = 120").value is None


def test_answer_phrases_in_gsm8k_reasoning_no_longer_compete_with_the_answer_line() -> None:
    # Real GSM8K train solutions with "So the answer is 24 clips for this part." after a step.
    completions, golds = reasoning_phrase_completions(gsm8k_rows("train")[:600])
    assert len(completions) >= 550 and all("answer is" in c.split("\n#### ")[0] for c in completions)
    assert gsm8k_correctness(completions, final_answer=golds) == [1.0] * len(completions)
    assert gsm8k_format(completions) == [0.5] * len(completions)
    # The same phrase after the answer line, with another number, is hedging: nothing scores.
    hedged = [f"{c}\nThe answer is {int(float(g)) + 1}." for c, g in zip(completions, golds, strict=True)]
    assert gsm8k_correctness(hedged, final_answer=golds) == [0.0] * len(hedged)


def test_every_gsm8k_gold_solution_grades_correct() -> None:
    rows = gsm8k_rows("train") + gsm8k_rows("test")
    golds = [gold_from_solution(r["answer"]) for r in rows]
    assert len(rows) == 8792
    for completions in ([r["answer"] for r in rows], [training_solution(r["answer"]) for r in rows]):
        assert gsm8k_correctness(completions, final_answer=golds) == [1.0] * len(rows)
