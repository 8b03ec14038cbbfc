"""Data loading, validation, prompts, prompt lengths and `grpo-rlvr prepare`."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from grpo_rlvr import data, prompt_format
from grpo_rlvr.cli import main as cli
from grpo_rlvr.data import packaged_gsm8k

GSM8K = packaged_gsm8k("train").parent  # the shipped copy, checksums checked
ROW = {"question": "Ann has 2 pens and buys 3. How many?", "answer": "2+3=<<2+3=5>>5\n#### 5"}


def _jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_gold_is_exact_and_canonical() -> None:
    assert data.gold_from_solution("x\n#### 1,200") == "1200"
    assert data.gold_from_solution("x\n#### -3") == "-3"
    assert data.gold_from_solution("x\n#### 0.50") == "0.5"
    with pytest.raises(ValueError, match="not a number"):
        data.gold_from_solution("x\n#### twelve")
    with pytest.raises(ValueError, match="no '####' line"):
        data.gold_from_solution("no gold here")


def test_training_solution_drops_calculator_notes() -> None:
    assert data.training_solution(ROW["answer"]) == (
        "Let's think step by step. 2+3=5\n#### The final answer is 5"
    )


def test_prompt_has_k_shots_in_the_documented_format() -> None:
    for k in range(9):
        prompt = data.build_prompt("What is 1+1?", k)
        assert prompt.count("Question: ") == k + 1
        assert prompt.count("#### The final answer is ") == k
        assert prompt.endswith("Question: What is 1+1?\nSolution: Let's think step by step.")
    two = data.build_prompt("Q?", 2)
    q0 = prompt_format.EXEMPLARS[0][0]
    assert two.startswith(f"Question: {q0}\nSolution: Let's think step by step. ")
    assert "\n#### The final answer is 12\n\nQuestion: " in two
    assert data.build_prompt("Q?", 8) == data.build_prompt("Q?", 8)  # fixed, no randomness
    with pytest.raises(ValueError):
        data.build_prompt("Q?", 9)


def test_chat_prompt_has_the_same_shots_as_turns_each_answer_closed_by_the_end_token(chat_model: str) -> None:
    from transformers import AutoTokenizer

    for k in (0, 2, 8):
        messages = data.build_chat_prompt(" What is 1+1? ", k)
        assert [m["role"] for m in messages] == ["user", "assistant"] * k + ["user"]
        assert [m["content"] for m in messages[1::2]] == [
            data.training_solution(a) for _, a in prompt_format.EXEMPLARS[:k]
        ]
        assert messages[-1] == {"role": "user", "content": "What is 1+1?"}
    tokenizer = AutoTokenizer.from_pretrained(chat_model)
    rows = data.add_prompts(
        [{"question": "Q?", "answer": "#### 1"}], 2, prompt_format.PromptFormat(chat=True)
    )
    text = tokenizer.apply_chat_template(rows[0]["prompt"], tokenize=False, add_generation_prompt=True)
    assert text.count("#### The final answer is ") == 2 and text.count(" is 12<|im_end|>") == 1
    assert text.endswith("<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\n")
    assert data.prompt_lengths(rows, tokenizer) == [len(tokenizer(text)["input_ids"])]


def test_exemplars_are_disjoint_from_gsm8k_and_well_formed() -> None:
    questions = set()
    for split in ("train", "test"):
        with (GSM8K / f"{split}.jsonl").open() as f:
            questions |= {json.loads(line)["question"].strip() for line in f}
    assert len(prompt_format.EXEMPLARS) == prompt_format.MAX_SHOTS
    for q, a in prompt_format.EXEMPLARS:
        assert q not in questions
        data.gold_from_solution(a)  # each exemplar has a readable gold


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet"])
def test_loads_each_file_format_and_folders(tmp_path: Path, suffix: str) -> None:
    rows = [ROW, {"prompt": "Say 7.", "final_answer": "7"}]
    path = tmp_path / "channel" / f"part{suffix}"
    path.parent.mkdir()
    if suffix == ".jsonl":
        _jsonl(path, [json.dumps(r) for r in rows])
    elif suffix == ".json":
        path.write_text(json.dumps(rows))
    else:
        pq.write_table(pa.Table.from_pylist([ROW]), path)
    examples, report = data.load_examples(tmp_path / "channel")
    assert report.kept == len(examples) == (1 if suffix == ".parquet" else 2)
    assert examples[0]["final_answer"] == "5"


def test_bad_rows_are_reported_with_file_and_line(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "d.jsonl",
        [
            json.dumps(ROW),
            "{not json",
            json.dumps({"question": " ", "answer": "#### 1"}),
            json.dumps({"question": "Q", "answer": "#### lots"}),
            json.dumps({"question": "Q"}),
            json.dumps([1, 2]),
        ],
    )
    examples, report = data.load_examples(path)
    assert len(examples) == 1
    assert report.problems == [
        f"{path}:2: malformed JSON line: Expecting property name enclosed in double quotes",
        f"{path}:3: empty question",
        f"{path}:4: gold answer is not a number: 'lots'",
        f"{path}:5: missing field: answer (need question+answer, or prompt)",
        f"{path}:6: not a JSON object: list",
    ]
    assert report.summary().startswith("1 rows kept, 5 dropped (")


def test_unicode_line_separators_inside_strings_do_not_split_rows(tmp_path: Path) -> None:
    # GSM8K train holds a question with U+2028; `write_jsonl` keeps it raw, so reading must too.
    row = {"question": "Clive opens a box\u2028full of olives. How many?", "answer": "#### 3"}
    path = tmp_path / "rows.jsonl"
    data.write_jsonl([row, ROW], path)
    examples, report = data.load_examples(path)
    assert report.problems == [] and len(examples) == 2
    assert examples[0]["question"] == row["question"]


def test_split_is_reproducible_and_disjoint() -> None:
    examples = [{"i": i} for i in range(100)]
    train, val = data.split_train_val(examples, 0.1, seed=42)
    assert (len(train), len(val)) == (90, 10)
    assert data.split_train_val(examples, 0.1, seed=42) == (train, val)
    assert data.split_train_val(examples, 0.1, seed=1)[1] != val
    assert {e["i"] for e in train}.isdisjoint(e["i"] for e in val)


def test_prompt_rows_are_kept_and_shots_for_them_are_an_error() -> None:
    rows = [{"prompt": "Say 7.", "final_answer": "7"}]
    assert data.add_prompts(rows, 0) == rows
    with pytest.raises(data.DataError, match="num_shots: 0"):
        data.add_prompts(rows, 4)


class _CharTokenizer:
    """One token per character: enough to test the length policy without a model."""

    def __call__(self, texts: list[str], add_special_tokens: bool = False) -> dict:
        return {"input_ids": [list(t) for t in texts]}


def test_prompts_are_never_cut_only_dropped_or_refused_and_named() -> None:
    examples = data.add_prompts(
        [{"question": "short", "final_answer": "1"}, {"question": "long " * 100, "final_answer": "1"}], 0
    )
    limit = len(examples[0]["prompt"])
    long = len(examples[1]["prompt"])
    kept, dropped = data.enforce_prompt_limit(
        examples, _CharTokenizer(), limit, "drop", ["a.jsonl:1", "a.jsonl:2"]
    )
    assert kept == [examples[0]] and kept[0]["prompt"] == examples[0]["prompt"]  # untouched
    assert dropped == [f"a.jsonl:2: prompt of {long} tokens, over max_prompt_tokens={limit}"]
    assert data.enforce_prompt_limit(examples, _CharTokenizer(), limit)[1][0].startswith("row 2: ")
    with pytest.raises(data.DataError, match="1 of 2 prompts are longer than max_prompt_tokens") as refused:
        data.enforce_prompt_limit(examples, _CharTokenizer(), limit, "fail", ["a.jsonl:1", "a.jsonl:2"])
    assert f"a.jsonl:2: prompt of {long} tokens" in str(refused.value)
    with pytest.raises(data.DataError):  # nothing would be left
        data.enforce_prompt_limit(examples, _CharTokenizer(), 3, "drop")


def test_the_load_report_places_every_kept_row(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"question": "q", "answer": "#### 1"}\n{broken\n{"question": "r", "answer": "#### 2"}\n')
    examples, report = data.load_examples(path)
    assert [e["question"] for e in examples] == ["q", "r"]
    assert report.places == [f"{path}:1", f"{path}:3"]


def test_prepare_writes_channels_and_counts(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli(["prepare", "--source", str(GSM8K / "test.jsonl"), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1319 rows, none dropped" in out and "train=1187 val=132" in out
    train = (tmp_path / "train" / "data.jsonl").read_text().splitlines()
    val = (tmp_path / "val" / "data.jsonl").read_text().splitlines()
    assert (len(train), len(val)) == (1187, 132)
    again = tmp_path / "again"
    cli(["prepare", "--source", str(GSM8K / "test.jsonl"), "--out", str(again)])
    assert (again / "val" / "data.jsonl").read_text().splitlines() == val  # seed 42 by default
    assert all("final_answer" in json.loads(line) for line in train)


def test_prepare_prints_prompt_token_statistics(
    tmp_path: Path, tiny_model: str, capsys: pytest.CaptureFixture
) -> None:
    rows = tmp_path / "rows.jsonl"
    _jsonl(rows, [json.dumps(ROW)] * 10)
    assert (
        cli(
            [
                "prepare",
                "--source",
                str(rows),
                "--out",
                str(tmp_path / "o"),
                "--tokenizer",
                tiny_model,
                "--shots",
                "2",
            ]
        )
        == 0
    )
    assert "prompt tokens (2-shot): min=" in capsys.readouterr().out


BAD_FILES = {
    "empty": ("", "the source holds no rows"),
    "not_json": ("this is not json\nnor this\n", "malformed JSON line"),
    "missing_fields": ('{"question": "Q"}\n{"answer": "#### 3"}\n', "missing field"),
    "non_numeric_gold": ('{"question": "Q", "answer": "#### many"}\n', "gold answer is not a number"),
    "bad_final_answer": ('{"prompt": "P", "final_answer": "x"}\n', "final_answer is not a number"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_prepare_fails_clearly_on_unusable_data(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture
) -> None:
    content, message = BAD_FILES[name]
    path = tmp_path / f"{name}.jsonl"
    path.write_text(content)
    assert cli(["prepare", "--source", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("grpo-rlvr prepare: error: no usable rows in") and message in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_prepare_fails_on_missing_path_and_unreadable_parquet(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert cli(["prepare", "--source", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path)]) == 2
    assert "data path does not exist" in capsys.readouterr().err
    (tmp_path / "x.parquet").write_bytes(b"not parquet")
    assert cli(["prepare", "--source", str(tmp_path / "x.parquet"), "--out", str(tmp_path)]) == 2
    assert "not a readable Parquet file" in capsys.readouterr().err


def test_a_byte_order_mark_keeps_the_first_row(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps(ROW) + "\n").encode() * 2)
    examples, report = data.load_examples(path)
    assert len(examples) == 2 and report.problems == []
    whole = tmp_path / "bom.json"
    whole.write_bytes(b"\xef\xbb\xbf" + json.dumps([ROW]).encode())
    assert len(data.load_examples(whole)[0]) == 1


def test_rows_beyond_what_json_and_utf8_allow_are_dropped_one_by_one(tmp_path: Path) -> None:
    good = json.dumps(ROW).encode()
    lines = [
        good,
        good.replace(b"pens", b"p\xffns"),  # not UTF-8: never silently replaced
        b'{"question": "Q", "answer": "#### 1", "n": ' + b"9" * 5000 + b"}",
        b"[" * 200_000 + b"]" * 200_000,
        good,
    ]
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    examples, report = data.load_examples(path)
    assert len(examples) == 2
    assert report.problems == [
        f"{path}:2: invalid UTF-8: byte 0xff at column {good.index(b'pens') + 2}",
        f"{path}:3: JSON number too long: Exceeds the limit (4300 digits) for integer string conversion: "
        "value has 5000 digits",
        f"{path}:4: JSON nested too deeply",
    ]
    assert report.issues(2) == {"count": 3, "first": report.problems[:2]}


def test_a_json_array_file_with_a_bad_byte_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.json"
    path.write_bytes(b'[\n{"question": "Q", "answer": "#### 1"},\n{"question": "\xc3"}\n]')
    with pytest.raises(data.DataError, match=rf"^{path}:3: not usable JSON \(invalid UTF-8"):
        data.load_examples(path)


def test_one_malformed_line_in_a_large_channel_is_named(tmp_path: Path) -> None:
    channel = tmp_path / "train"
    channel.mkdir()
    line = json.dumps(ROW) + "\n"
    (channel / "a.jsonl").write_text(line * 60_000)
    (channel / "b.jsonl").write_text(line * 31_337 + "{oops\n" + line * (40_000 - 31_338))
    examples, report = data.load_examples(channel)
    assert len(examples) == 99_999
    assert report.issues() == {
        "count": 1,
        "first": [
            f"{channel / 'b.jsonl'}:31338: malformed JSON line: "
            "Expecting property name enclosed in double quotes"
        ],
    }


def test_a_dangling_symlink_in_a_channel_is_an_error_not_skipped(tmp_path: Path) -> None:
    channel = tmp_path / "train"
    channel.mkdir()
    _jsonl(channel / "a.jsonl", [json.dumps(ROW)])
    (channel / "b.jsonl").symlink_to(tmp_path / "gone.jsonl")
    with pytest.raises(
        data.DataError, match=r"b\.jsonl is a symbolic link to .*gone\.jsonl, which does not exist"
    ):
        data.load_examples(channel)


# --- where GSM8K comes from -------------------------------------------------------------------------


def test_packaged_gsm8k_is_the_default_and_complete(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli(["prepare", "--out", str(tmp_path)]) == 0  # no --source: the copy shipped with the package
    assert "loaded builtin:gsm8k: 7473 rows, none dropped" in capsys.readouterr().out
    test, _ = data.load_examples("builtin:gsm8k", split="test")
    assert len(test) == 1319
    with pytest.raises(data.DataError, match="has the splits test, train, not 'validation'"):
        data.load_examples("builtin:gsm8k", split="validation")


def test_a_damaged_packaged_copy_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "gsm8k_data"
    copy.mkdir()
    for name in ("SHA256SUMS", "test.jsonl", "train.jsonl"):
        (copy / name).write_bytes((GSM8K / name).read_bytes())
    with (copy / "test.jsonl").open("a") as f:
        f.write('{"question": "an extra row", "answer": "#### 1"}\n')
    monkeypatch.setattr(data, "PACKAGED_GSM8K_DIR", copy)
    data.packaged_gsm8k.cache_clear()
    try:
        with pytest.raises(data.DataError, match=r"test.jsonl does not match its SHA256SUMS entry"):
            data.load_examples("builtin:gsm8k", split="test")
        assert len(data.load_examples("builtin:gsm8k", split="train")[0]) == 7473  # untouched file is fine
    finally:
        data.packaged_gsm8k.cache_clear()


def test_a_hub_id_without_a_hub_fails_in_one_line(capsys: pytest.CaptureFixture) -> None:
    # The tests run with HF_HUB_OFFLINE=1 (conftest), as on a machine without network.
    assert cli(["prepare", "--source", "openai/gsm8k", "--out", "unused"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "openai/gsm8k is a dataset hub id, but HF_HUB_OFFLINE is set: use builtin:gsm8k" in err
    assert not Path("unused").exists()


# Text that means a local path whether or not it exists (cwd: a folder holding only `opt_ml/`).
LOCAL = ["./d", "/abs/d", "~/d.jsonl", "train.jsonl", "data/Train.JSONL", "x.parquet", "x.json"]
LOCAL += ["opt_ml/model"]
HUB_IDS = ["openai/gsm8k", "Qwen/Qwen2.5-0.5B", "gpt2", "org/name.v2"]


@pytest.mark.parametrize("source", LOCAL + HUB_IDS)
def test_what_looks_like_a_path_is_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    from grpo_rlvr.files import is_local_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "opt_ml").mkdir()
    assert is_local_path(source) is (source in LOCAL)


@pytest.mark.parametrize("source", ["train.jsonl", "data/train.jsonl", "opt_ml/input/data/train"])
def test_a_missing_local_source_is_missing_at_once_not_a_hub_lookup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, source: str
) -> None:
    from grpo_rlvr import hub

    def no_hub(*args: object) -> None:
        raise AssertionError(f"the hub was asked about {args}")

    monkeypatch.chdir(tmp_path)
    (tmp_path / "opt_ml" / "input" / "data").mkdir(parents=True)
    monkeypatch.setattr(hub, "_ask", no_hub)
    monkeypatch.delenv("HF_HUB_OFFLINE")  # so only the path rule keeps the hub out of it
    assert cli(["prepare", "--source", source, "--out", "out"]) == 2
    err = capsys.readouterr().err
    assert err == f"grpo-rlvr prepare: error: data path does not exist: {source}\n"


def test_an_unreachable_dataset_hub_fails_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Without HF_HUB_OFFLINE, one metadata request answers; here no hub listens at the endpoint."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # the discard port: refused
    assert cli(["prepare", "--source", "openai/gsm8k", "--out", "unused"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("grpo-rlvr prepare: error: openai/gsm8k: the Hugging Face Hub cannot be reached")
    assert "HF_HUB_OFFLINE=1" in err and "use builtin:gsm8k" in err
    assert not Path("unused").exists()
