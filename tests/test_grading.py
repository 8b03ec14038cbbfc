"""`grading`: the Wilson interval against published and independently computed values, `grade_one`."""

import pytest

from grpo_rlvr.grading import accuracy_line, grade_one, wilson_interval

# Reference values from statsmodels 0.15.0, `proportion_confint(k, n, alpha=0.05, method="wilson")`,
# run once outside the project venv (an implementation independent of ours). The first four are the
# worked examples of Newcombe (1998), "Two-sided confidence intervals for the single proportion",
# Stat. Med. 17:857-872, whose Wilson-score intervals read 0.2553-0.3662, 0.0624-0.1605, 0-0.1611 and
# 0.0061-0.1718 to 4 decimals.
WILSON_REFERENCE = [
    (81, 263, 0.2552885198782742, 0.36620957698280004),
    (15, 148, 0.06238639953073628, 0.16048724172330803),
    (0, 20, 0.0, 0.1611251580528194),
    (1, 29, 0.006113214292762667, 0.17175521879320294),
    (41, 100, 0.3186731302113651, 0.5079856994658921),  # the article's "41% on 100 samples"
    (5, 50, 0.0434757649318904, 0.21360231437479657),
    (50, 50, 0.9286524008666412, 1.0),
    (549, 1319, 0.3899033451271569, 0.44303203913497496),  # ~41.6% of the full GSM8K test split
    (0, 1, 0.0, 0.7934506856227627),
]


@pytest.mark.parametrize(("k", "n", "lo", "hi"), WILSON_REFERENCE)
def test_wilson_interval_matches_statsmodels_and_newcombe(k: int, n: int, lo: float, hi: float) -> None:
    assert wilson_interval(k, n) == (pytest.approx(lo, abs=1e-12), pytest.approx(hi, abs=1e-12))


def test_wilson_interval_with_no_data_is_the_whole_range() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_accuracy_line_reports_the_interval() -> None:
    assert accuracy_line(41, 100) == "accuracy=0.4100 n=100 ci95=[0.3187, 0.5080]"


@pytest.mark.parametrize(
    ("completion", "gold", "extracted", "correct"),
    [
        (" 24 + 18 = 42.\n#### 42", "42", "42", True),
        (" So 1200.\n#### The final answer is 1,200", "He earns 1,200.\n#### 1,200", "1200", True),
        (" 6 * 7 = 42.\n#### 42\n\nQuestion: How many?\nSolution: #### 7", "7", "42", False),
        (" I am not sure.", "3", None, False),
    ],
)
def test_grade_one(completion: str, gold: str, extracted: str | None, correct: bool) -> None:
    assert grade_one(completion, gold) == {"extracted": extracted, "correct": correct}


def test_grade_one_rejects_a_gold_answer_that_is_not_a_number() -> None:
    with pytest.raises(ValueError, match="gold answer is not a number"):
        grade_one("#### 3", "three")
