"""`grpo-rlvr grade` on the real test split, in every final-answer form it recognises."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from grpo_rlvr.data import gold_from_solution, packaged_gsm8k
from grpo_rlvr.grading import gold_value

GSM8K = packaged_gsm8k("train").parent  # the shipped copy, checksums checked

FORMS = {
    "hashes": "#### {}",
    "canonical": "#### The final answer is {}",
    "final_answer_is": "The final answer is {}.",
    "answer_is": "So the answer is {}.",
    "a_colon": "A: {}",
    "boxed": "Thus $\\boxed{{{}}}$.",
}


def _write(tmp_path: Path, form: str, shift: int) -> Path:
    path = tmp_path / f"{form}-{shift}.jsonl"
    with (GSM8K / "test.jsonl").open() as src, path.open("w") as out:
        for line in src:
            row = json.loads(line)
            gold = gold_value(row["answer"]) + shift
            completion = "Some reasoning: 3 + 4 = 7.\n" + FORMS[form].format(gold)
            out.write(json.dumps({"completion": completion, "answer": row["answer"]}) + "\n")
    return path


def _grade(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "grpo_rlvr.cli", "grade", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("form", sorted(FORMS))
def test_every_form_of_the_gold_answer_grades_1_and_wrong_numbers_0(tmp_path: Path, form: str) -> None:
    right = _grade(str(_write(tmp_path, form, 0)))
    assert right.returncode == 0, right.stderr
    assert right.stdout.strip() == "accuracy=1.0000 n=1319 ci95=[0.9971, 1.0000]"
    wrong = _grade(str(_write(tmp_path, form, 1)))
    assert wrong.stdout.strip() == "accuracy=0.0000 n=1319 ci95=[0.0000, 0.0029]"


def test_grade_writes_extracted_and_correct_with_custom_fields(tmp_path: Path) -> None:
    src = tmp_path / "outputs.jsonl"
    rows = [
        {"text": "#### The final answer is 1,200", "gold": "1200"},
        {"text": "The answer is 4,2", "gold": "42"},
        {"text": "no answer", "gold": "x\n#### -3"},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "graded.jsonl"
    result = _grade(str(src), "--completion-field", "text", "--answer-field", "gold", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("accuracy=0.3333 n=3 ")
    graded = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(g["extracted"], g["correct"]) for g in graded] == [("1200", True), (None, False), (None, False)]
    assert gold_from_solution(graded[2]["gold"]) == "-3"


def test_grade_reports_a_bad_row_with_its_line(tmp_path: Path) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text('{"completion": "#### 1", "answer": "1"}\n{"completion": "#### 1"}\n')
    result = _grade(str(src))
    assert result.returncode == 2
    assert f"{src}:2: cannot grade this row" in result.stderr and "Traceback" not in result.stderr


GOOD_ROW = b'{"completion": "#### 1", "answer": "1"}\n'


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"completion": "#### 1", "answer": "1"}\n' + b"[" * 200_000 + b"\n", ":2: cannot grade this row"),
        (
            b'{"completion": "#### 1", "answer": "1"}\n\n{"completion": "\xff", "answer": "1"}\n',
            ":3: cannot grade",
        ),
    ],
    ids=["nested_200000_deep", "invalid_byte"],
)
def test_grade_names_the_line_of_a_hostile_row(tmp_path: Path, content: bytes, message: str) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_bytes(content)
    result = _grade(str(src))
    assert result.returncode == 2
    assert f"{src}{message}" in result.stderr and "Traceback" not in result.stderr


def test_grade_refuses_a_folder_clearly(tmp_path: Path) -> None:
    result = _grade(str(tmp_path))
    assert result.returncode == 2
    assert (
        f"{tmp_path} is a folder, not a JSON Lines file" in result.stderr and "Traceback" not in result.stderr
    )
