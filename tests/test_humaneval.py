"""`evaluate --task humaneval`: the shipped problems, grading in the sandbox, both backends, the CLI."""

import gzip
import itertools
import json
import sys
import types
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from grpo_rlvr import data, humaneval
from grpo_rlvr.cli import main
from grpo_rlvr.evaluation import evaluate
from grpo_rlvr.evaluation.evaluate import evaluate_examples
from grpo_rlvr.evaluation.generation import Generation, cut_at_stop
from grpo_rlvr.tasks import HumanEvalTask

PROBLEMS = humaneval.load_problems()
CANONICAL = {p["prompt"]: p["canonical_solution"] for p in PROBLEMS}
WRONG_BODY = "    return None\n"  # runs, and fails every problem's check
# What a model writes after the body: each stop sequence must end the function there.
TAILS = ["\ndef extra():\n    pass\n", "\nclass X:\n    pass\n", "\nif __name__ == '__main__':\n    main()\n",
         "\nprint(1)\n", "\n# usage\n"]  # fmt: skip


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class Answering:
    """A generator that writes `answer(prompt)` for each prompt, as a backend returns it (already cut)."""

    def __init__(self, answer: Any) -> None:
        self.answer, self.info = answer, {"device": "none"}

    def generate(self, prompts: list[str]) -> list[Generation]:
        return [Generation(cut_at_stop(self.answer(p), humaneval.STOP), 1, 1, "stop") for p in prompts]


def test_the_shipped_problems_are_humaneval() -> None:
    assert len(PROBLEMS) == 164 and len({p["id"] for p in PROBLEMS}) == 164
    assert (PROBLEMS[0]["id"], PROBLEMS[0]["entry_point"]) == ("HumanEval/0", "has_close_elements")
    assert (PROBLEMS[-1]["id"], PROBLEMS[-1]["entry_point"]) == ("HumanEval/163", "generate_integers")
    assert all("def check(candidate)" in p["test"] for p in PROBLEMS)


def test_canonical_solutions_pass_all_164_and_a_wrong_body_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both through the grading path `evaluate` uses: prompt + completion in the sandbox, `check` as test.
    The canonical solutions come with a tail that the stop sequences must cut."""
    tails = itertools.cycle(TAILS)
    generators = iter(
        [Answering(lambda p: CANONICAL[p] + next(tails)), Answering(lambda p: WRONG_BODY + next(tails))]
    )
    monkeypatch.setattr(evaluate, "make_generator", lambda *args: next(generators))
    metrics = evaluate_examples(
        ["canonical", "wrong"], PROBLEMS, tmp_path, task=HumanEvalTask(), compare_base_trained=True
    )
    canonical, wrong = metrics["results"]
    assert (canonical["correct"], canonical["n"], canonical["accuracy"]) == (164, 164, 1.0)
    assert (wrong["correct"], wrong["n"]) == (0, 164)
    (paired,) = metrics["comparison"]["by_shots"]
    assert (paired["base_only_correct"], paired["trained_only_correct"]) == (164, 0)
    assert paired["mcnemar_p"] == pytest.approx(2 / 2**164, rel=1e-3)
    rows = _jsonl(tmp_path / "predictions.jsonl")
    assert {r["status"] for r in rows[:164]} == {"passed"} and {r["status"] for r in rows[164:]} == {"failed"}
    assert not any(tail.strip() in r["completion"] for r in rows for tail in TAILS)


def test_grading_runs_the_problems_check_not_just_the_program() -> None:
    problem = PROBLEMS[0]  # has_close_elements
    always_false = CANONICAL[problem["prompt"]].replace("return True", "return False")
    raising = "    raise ValueError('no')\n"
    graded = humaneval.grade([problem] * 3, [CANONICAL[problem["prompt"]], always_false, raising])
    assert [(g["status"], g["correct"]) for g in graded] == [
        ("passed", True),
        ("failed", False),
        ("failed", False),
    ]
    assert humaneval.grade([problem], ["    return (\n"]) == [{"status": "syntax_error", "correct": False}]


def test_cli_evaluates_the_tiny_model_and_writes_every_file(tmp_path: Path, tiny_model: str) -> None:
    out = tmp_path / "out"
    argv = ["evaluate", "--task", "humaneval", "--model", tiny_model, "--limit", "3"]
    assert main([*argv, "--max-new-tokens", "8", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "humaneval" and metrics["data"]["source"] == "builtin:humaneval"
    assert metrics["decoding"]["stop"] == list(humaneval.STOP)
    (result,) = metrics["results"]
    assert (result["shots"], result["n"], result["correct"]) == (0, 3, 0)  # a random model solves nothing
    rows = _jsonl(out / "predictions.jsonl")
    assert [r["id"] for r in rows] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert all(r["status"] in {"passed", "failed", "syntax_error", "error"} for r in rows)
    table = (out / "results.md").read_text()
    assert table.startswith("# HumanEval evaluation") and "| pass@1 |" in table and "0 / 3" in table
    assert (out / "accuracy_vs_shots.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shots", "0,2"], "HumanEval is evaluated with its own prompt only: --shots 0, not 2"),
        (["--data", "/no/such.jsonl"], "HumanEval data file does not exist: /no/such.jsonl"),
        (["--limit", "0"], "--limit must be at least 1"),
    ],
)
def test_cli_errors_exit_2_before_any_model_loads(
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.setattr(evaluate, "make_generator", lambda *a: pytest.fail("a model was loaded"))
    out = tmp_path / "out"
    assert main(["evaluate", "--task", "humaneval", "--model", "m", *args, "--out", str(out)]) == 2
    assert f"grpo-rlvr evaluate: error: {message}" in capsys.readouterr().err
    assert not out.exists()


def test_a_problem_file_row_without_its_test_is_named_by_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "problems.jsonl"
    rows = [{k: PROBLEMS[0][k] for k in humaneval.FIELDS}, {"task_id": "x", "prompt": "def f():\n"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(
        data.DataError, match=rf"{path}:2: a HumanEval row needs the text fields entry_point, test"
    ):
        humaneval.load_problems(path)
    gz = tmp_path / "one.jsonl.gz"
    gz.write_bytes(gzip.compress((json.dumps(rows[0]) + "\n").encode()))
    assert [p["id"] for p in humaneval.load_problems(gz)] == ["HumanEval/0"]


def test_a_damaged_shipped_copy_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "humaneval_data"
    copy.mkdir()
    for name in ("SHA256SUMS", humaneval.PACKAGED_FILE):
        (copy / name).write_bytes((humaneval.PACKAGED_HUMANEVAL_DIR / name).read_bytes())
    with (copy / humaneval.PACKAGED_FILE).open("ab") as f:
        f.write(gzip.compress(b'{"task_id": "extra"}\n'))
    monkeypatch.setattr(humaneval, "PACKAGED_HUMANEVAL_DIR", copy)
    with pytest.raises(data.DataError, match=r"HumanEval\.jsonl\.gz does not match its SHA256SUMS entry"):
        humaneval.load_problems()


def test_vllm_backend_gets_the_prompts_as_published_and_the_stop_sequences(
    tmp_path: Path, tiny_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    class LLM:
        def __init__(self, model: str, **kwargs: Any) -> None:
            seen["llm"] = {"model": model, **kwargs}

        def generate(self, prompts: list[str], params: Any, use_tqdm: bool) -> list[Any]:
            seen["prompts"] = prompts
            texts = [CANONICAL[prompts[0]], WRONG_BODY]  # vLLM leaves the stop sequence out itself
            return [
                SimpleNamespace(
                    prompt_token_ids=[0] * 7,
                    outputs=[SimpleNamespace(text=t, token_ids=[1, 2], finish_reason="stop")],
                )
                for t in texts
            ]

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, lambda **kwargs: seen.setdefault("sampling", kwargs)
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    metrics = evaluate_examples([tiny_model], PROBLEMS[:2], tmp_path, backend="vllm", task=HumanEvalTask())
    assert seen["prompts"] == [p["prompt"] for p in PROBLEMS[:2]]
    assert seen["sampling"] == {
        "temperature": 0,
        "max_tokens": humaneval.MAX_NEW_TOKENS,
        "stop": list(humaneval.STOP),
        "stop_token_ids": [],
    }
    assert [r["correct"] for r in _jsonl(tmp_path / "predictions.jsonl")] == [True, False]
    assert (metrics["backend"], metrics["results"][0]["correct"]) == ("vllm", 1)
