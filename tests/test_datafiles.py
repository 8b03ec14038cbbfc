"""Data read exactly once, as a user means it: which files a folder holds, which rows a file holds, and
writing rows back without ever leaving a part of a file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from grpo_rlvr import data, datafiles
from grpo_rlvr.cli import main as cli


def _row(i: int, **extra: object) -> str:
    return json.dumps({"question": f"Q{i}?", "answer": f"#### {i}", **extra})


def _file(path: Path, *lines: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _questions(source: Path) -> tuple[list[str], data.LoadReport]:
    examples, report = data.load_examples(source)
    return [e["question"] for e in examples], report


def test_a_channel_is_read_exactly_once_links_followed_hidden_skipped(tmp_path: Path) -> None:
    channel, elsewhere = tmp_path / "train", tmp_path / "elsewhere"
    _file(channel / "part-0.jsonl", _row(0))
    _file(channel / "part-1.JSONL", _row(1))  # suffixes in any case
    _file(channel / "part-2.Parquet.json", _row(2))
    _file(channel / ".ipynb_checkpoints" / "part-0-checkpoint.jsonl", _row(0))  # a notebook's copy
    _file(channel / ".part-0.jsonl.123.tmp", _row(0))  # a write in progress
    _file(elsewhere / "a.jsonl", _row(3))
    _file(elsewhere / "deep" / "b.jsonl", _row(4))
    (channel / "linked").symlink_to(elsewhere, target_is_directory=True)  # a folder linked in: all of it
    (channel / "again.jsonl").symlink_to(channel / "part-0.jsonl")  # the same file by a second path
    questions, report = _questions(channel)
    assert questions == ["Q0?", "Q3?", "Q4?", "Q1?", "Q2?"]
    assert report.places == [
        f"{channel}/again.jsonl:1",  # sorted by path; part-0.jsonl is the same file, read once
        f"{channel}/linked/a.jsonl:1",
        f"{channel}/linked/deep/b.jsonl:1",
        f"{channel}/part-1.JSONL:1",
        f"{channel}/part-2.Parquet.json:1",
    ]
    assert report.summary() == (
        "5 rows, none dropped; 2 hidden entries skipped (.ipynb_checkpoints, .part-0.jsonl.123.tmp); "
        f"1 file(s) reached twice read once ({channel}/part-0.jsonl)"
    )


def test_a_link_loop_is_an_error_and_a_named_hidden_file_is_read(tmp_path: Path) -> None:
    channel = tmp_path / "train"
    _file(channel / "sub" / "a.jsonl", _row(1))
    (channel / "sub" / "up").symlink_to(channel, target_is_directory=True)
    with pytest.raises(
        datafiles.DataError, match=rf"^{channel}/sub/up links to {channel}, a folder it is inside"
    ):
        data.load_examples(channel)
    hidden = _file(tmp_path / ".rows.jsonl", _row(2))
    assert _questions(hidden)[0] == ["Q2?"]  # a file named directly is read as named


def test_a_folder_with_only_hidden_data_says_what_it_skipped(tmp_path: Path) -> None:
    _file(tmp_path / "train" / ".ipynb_checkpoints" / "a.jsonl", _row(1))
    with pytest.raises(
        datafiles.DataError,
        match=r"files in .*train \(1 hidden entry skipped \(\.ipynb_checkpoints\)",
    ):
        data.load_examples(tmp_path / "train")


def test_duplicate_keys_and_lone_surrogates_drop_the_row_by_file_and_line(tmp_path: Path) -> None:
    path = _file(
        tmp_path / "rows.jsonl",
        _row(1),
        '{"question": "Q2?", "answer": "#### 2", "answer": "#### 3"}',  # json.loads would keep #### 3
        '{"question": "Q4?", "answer": "#### 4", "meta": {"k": 1, "k": 2}}',  # at any depth
        '{"question": "Q5 \\ud800?", "answer": "#### 5"}',  # half a surrogate pair: not Unicode
        '{"question": "Q6 \\ud83d\\ude00?", "answer": "#### 6"}',  # a whole pair: an emoji
        '{"question": "Q7 \\\\ud800?", "answer": "#### 7"}',  # an escaped backslash: plain text
    )
    questions, report = _questions(path)
    assert questions == ["Q1?", "Q6 \U0001f600?", "Q7 \\ud800?"]
    assert report.problems == [
        f"{path}:2: key 'answer' appears twice in one object: keep one",
        f"{path}:3: key 'k' appears twice in one object: keep one",
        f"{path}:4: text holds a lone surrogate '\\ud800', which is not valid Unicode",
    ]
    array = tmp_path / "rows.json"
    array.write_text('[\n{"question": "Q", "question": "R", "answer": "#### 1"}\n]')
    with pytest.raises(
        datafiles.DataError, match=r"rows\.json:1: not usable JSON \(key 'question' appears twice"
    ):
        data.load_examples(array)


def test_a_column_that_changes_type_keeps_every_rows_own_value(tmp_path: Path) -> None:
    path = _file(
        tmp_path / "rows.jsonl",
        _row(1, meta=1, tags=["a"]),
        _row(2, meta="two", tags=[2, "b"]),
        _row(3, meta={"x": [1]}, extra=True),  # a column the first row lacks is still a column
    )
    examples, _ = data.load_examples(path)
    dataset = data.as_dataset(examples)
    assert [row["meta"] for row in dataset] == [1, "two", {"x": [1]}]
    assert [row["tags"] for row in dataset] == [["a"], [2, "b"], None]
    assert [row["extra"] for row in dataset] == [None, None, True]
    assert [row["final_answer"] for row in dataset] == ["1", "2", "3"]


# --- writing rows: prepare and grade --out ------------------------------------------------------------


def test_prepare_replaces_channels_only_with_complete_new_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    source = _file(tmp_path / "good.jsonl", *(_row(i) for i in range(10)))
    assert cli(["prepare", "--source", str(source), "--out", str(out), "--val-fraction", "0.2"]) == 0
    before = {p: p.read_bytes() for p in (out / "train/data.jsonl", out / "val/data.jsonl")}
    assert [len(b.splitlines()) for b in before.values()] == [8, 2]
    bad = tmp_path / "bad.parquet"  # a timestamp column loads, but JSON cannot hold it
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table(
            {
                "question": ["Q1?", "Q2?"],
                "answer": ["#### 1", "#### 2"],
                "at": pa.array([0, 1], pa.timestamp("s")),
            }
        ),
        bad,
    )
    assert cli(["prepare", "--source", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert (
        f"{bad}:row 1: cannot be written as JSON" in err and f"{bad}:row 2: cannot be written as JSON" in err
    )
    assert {p: p.read_bytes() for p in before} == before  # both channels as they were
    assert sorted(p.name for p in out.rglob("*")) == [
        "data.jsonl",
        "data.jsonl",
        "train",
        "val",
    ]  # no temporary left
    assert cli(["prepare", "--source", str(source), "--out", str(out), "--val-fraction", "0"]) == 0
    assert not (
        out / "val" / "data.jsonl"
    ).exists()  # the old split's rows would overlap the new training set
    assert "removed" in capsys.readouterr().out


def test_grade_out_is_replaced_only_by_a_complete_new_file(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = _file(tmp_path / "graded.jsonl", '{"kept": "from before"}')
    good = json.dumps({"completion": "#### 4", "answer": "4"})
    rows = _file(tmp_path / "rows.jsonl", good, '{"completion": "#### 4 \\udc00", "answer": "4"}')
    assert cli(["grade", str(rows), "--out", str(out)]) == 2  # JSON can hold that row; UTF-8 cannot
    assert f"{rows}:2: cannot grade this row" in capsys.readouterr().err
    assert out.read_text() == '{"kept": "from before"}\n'
    _file(rows, good, good)
    assert cli(["grade", str(rows), "--out", str(out)]) == 0
    assert [json.loads(line)["correct"] for line in out.read_text().splitlines()] == [True, True]
    with pytest.raises(datafiles.DataError, match=r"^1 row\(s\) cannot be written:\n  rows\.jsonl:7: "):
        datafiles.write_jsonl([{"ok": 1}, {"bad": {1, 2}}], out, ["rows.jsonl:3", "rows.jsonl:7"])
    assert [json.loads(line)["correct"] for line in out.read_text().splitlines()] == [True, True]


def test_a_failed_atomic_write_keeps_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = _file(tmp_path / "data.jsonl", _row(1))

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        datafiles.write_jsonl([json.loads(_row(2))], target)
    assert target.read_text() == _row(1) + "\n"
    assert [p.name for p in tmp_path.iterdir()] == ["data.jsonl"]
