"""The keyword rules, case by case: one table, every row a completion, its terms and its score."""

from __future__ import annotations

import json
import timeit
from pathlib import Path

import pytest

from grpo_rlvr.rewards import resolve
from grpo_rlvr.rewards.keywords import keyword_score, keywords

DATA = Path(__file__).parent / "data" / "keyword_tasks.jsonl"
TERMS = ["chlorophyll", "carotenoids", "autumn"]
PROSE = (
    "In autumn the trees stop making chlorophyll, so the green fades. "
    "The yellow carotenoids were there all along and finally show through."
)

CASES = [
    # partial credit is the share of terms present
    (PROSE, TERMS, 1.0),
    ("In autumn the trees stop making chlorophyll, so the green colour fades away.", TERMS, 2 / 3),
    ("When the days shorten the trees stop making their green pigment.", TERMS, 0.0),
    # case-insensitive, whole words, Unicode-aware boundaries
    (PROSE.upper(), TERMS, 1.0),
    ("Autumnal woods lose chlorophylls and show carotenoid pigments as the days grow short.", TERMS, 0.0),
    ("A naïve café owner explained the recipe to every guest that evening.", ["naïve", "café"], 1.0),
    ("A naïveté about the café owner was obvious to every guest that evening.", ["naïve", "café"], 0.5),
    # multi-word terms: any whitespace between the words, not across other words
    ("We trained a machine\n  learning model on the data and it worked well.", ["machine learning"], 1.0),
    ("We trained a machine for deep learning on the data and it worked well.", ["machine learning"], 0.0),
    # punctuation inside a term is literal
    ("She wrote the parser in C++ because the old one in node.js was too slow.", ["C++", "node.js"], 1.0),
    ("She wrote the parser in C because the old one in node was too slow.", ["C++", "node.js"], 0.0),
    # stuffing: a bare list, repeats, density, no sentence
    ("chlorophyll carotenoids autumn", TERMS, 0.0),
    ("chlorophyll, carotenoids, autumn.", TERMS, 0.0),
    (PROSE + " Chlorophyll chlorophyll chlorophyll!", TERMS, 0.0),  # 4 x chlorophyll > max_repeats
    ("Autumn: chlorophyll fades, carotenoids remain, autumn chlorophyll carotenoids, so colour.", TERMS, 0.0),
    (
        "In autumn the trees stop making chlorophyll and the yellow carotenoids finally show through",
        TERMS,
        0.0,
    ),
]


@pytest.mark.parametrize(("text", "terms", "expected"), CASES)
def test_keyword_rules(text: str, terms: list[str], expected: float) -> None:
    assert keyword_score(text, terms) == pytest.approx(expected)


def test_reward_function_reads_chat_completions_and_options() -> None:
    chat = [{"role": "assistant", "content": PROSE}]
    assert keywords([PROSE, chat], [TERMS, TERMS]) == [1.0, 1.0]
    stuffed = PROSE + " Chlorophyll again!"  # 2 occurrences: fine by default, stuffing at max_repeats=1
    assert resolve(["keywords"], {"keywords": {"max_repeats": 1}})[0]([stuffed], [TERMS]) == [0.0]
    assert keywords([stuffed], [TERMS]) == [1.0]


@pytest.mark.parametrize("terms", [[], "autumn", ["  "]])
def test_bad_rows_are_a_data_error(terms: list[str] | str) -> None:
    with pytest.raises(ValueError, match="keywords"):
        keyword_score(PROSE, terms)


def test_huge_text_is_bounded() -> None:
    huge = ("chlorophyll carotenoids autumn " + "word " * 50 + ". ") * 200_000  # ~60 MB
    assert keyword_score(huge, TERMS) == 0.0  # only the first 20,000 chars are read: repeats > 3

    def best(text: str) -> float:
        return min(timeit.repeat(lambda: keyword_score(text, TERMS), number=1, repeat=3))

    # Bounded work: 100x the text costs about the same (a full scan would cost ~100x).
    assert best(huge) / best(huge[: len(huge) // 100]) < 5


def test_example_tasks_parse() -> None:
    rows = [json.loads(line) for line in DATA.read_text().splitlines()]
    assert len(rows) >= 8 and all(set(r) == {"prompt", "keywords"} and r["keywords"] for r in rows)
