"""`evaluate`: outputs, plots, stop handling, determinism and CLI errors, with the tiny model on CPU."""

import json
import sys
import types
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from PIL import Image
from transformers import AutoTokenizer
from trl.data_utils import maybe_apply_chat_template

from grpo_rlvr.cli import main
from grpo_rlvr.data import DataError, build_chat_prompt, packaged_gsm8k
from grpo_rlvr.evaluation import evaluate, reports, scoring
from grpo_rlvr.evaluation.evaluate import evaluate_examples
from grpo_rlvr.evaluation.generation import Generation, GeneratorSettings, HFGenerator
from grpo_rlvr.evaluation.models import ModelSpec
from grpo_rlvr.prompt_format import PromptFormat

GSM8K = packaged_gsm8k("train").parent  # the shipped copy, checksums checked
FAST = ("--max-new-tokens", "4")  # a random model's completions need not be long
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A model that answers, then invents a next problem whose answer (7) must never be graded.
FIRST_ANSWER = " 6 * 7 = 42.\n#### 42\n"
INVENTED = FIRST_ANSWER + "\nQuestion: A cat has 7 lives. How many lives?\nSolution: #### 7\n"
TWO_QUESTIONS = [
    {"question": "What is 6 * 7?", "final_answer": "42"},
    {"question": "Lives?", "final_answer": "7"},
]
CHAT = PromptFormat(chat=True)
END = "<|im_end|>"  # the chat end token, one special token of the tiny tokenizer


@pytest.fixture(scope="session")
def adapter(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A LoRA adapter with random (non-zero) B, so merging it really changes the weights."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model), config)
    path = tmp_path_factory.mktemp("adapter") / "lora"
    model.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def varied_model(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny model with large random weights: it writes varied text (the plain one writes '....'),
    so padding mistakes and nondeterminism would show in its completions."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    torch.manual_seed(2)
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0, 0.5)
    path = tmp_path_factory.mktemp("varied") / "model"
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def questions() -> list[dict[str, Any]]:
    return evaluate.load_eval_examples(GSM8K, "test", limit=4)[0]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _cli(tmp_path: Path, *args: str) -> int:
    return main(["evaluate", "--data", str(GSM8K), "--out", str(tmp_path / "out"), *args])


def _rgb(hex_color: str) -> tuple[int, int, int]:
    return tuple(int(hex_color[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def test_compare_writes_table_json_and_png_with_both_series(
    tmp_path: Path, tiny_model: str, adapter: str
) -> None:
    trained = f"{tiny_model}+{adapter}"
    assert _cli(tmp_path, "--compare", tiny_model, trained, "--limit", "3", "--shots", "0,2", *FAST) == 0
    out = tmp_path / "out"
    metrics = json.loads((out / "metrics.json").read_text())
    assert [(r["model"], r["shots"], r["n"]) for r in metrics["results"]] == [
        (tiny_model, 0, 3),
        (tiny_model, 2, 3),
        (trained, 0, 3),
        (trained, 2, 3),
    ]
    assert metrics["models"][1]["adapter"] == adapter
    assert metrics["data"]["source"] == str(GSM8K / "test.jsonl") and metrics["data"]["limit"] == 3
    assert metrics["decoding"] == {
        "greedy": True,
        "max_new_tokens": 4,
        "stop": ["\nQuestion:"],
        "end_tokens": [],
    }
    assert metrics["prompt"].startswith("text (data.build_prompt)")
    assert set(metrics["versions"]) >= {"torch", "transformers", "peft"}
    comparison = metrics["comparison"]
    assert (comparison["base"], comparison["trained"]) == (tiny_model, trained)
    assert [c["shots"] for c in comparison["by_shots"]] == [0, 2]
    assert set(comparison["by_shots"][0]) >= {"difference", "intervals_overlap", "mcnemar_p"}
    assert len(_jsonl(out / "predictions.jsonl")) == 2 * 2 * 3

    table = (out / "results.md").read_text()
    assert f"| {tiny_model} | 2 | 0.0% | 0 / 3 | [0.0%, 56.1%] |" in table  # Wilson upper bound 0/3
    assert f"| {trained} | 0 |" in table and "## trained - base" in table

    png = out / "accuracy_vs_shots.png"
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    image = Image.open(png)
    assert (image.format, image.size) == ("PNG", (700, 450))
    # Both colours inside the axes (not only in the legend), though both models score 0% here.
    figure = reports.plot_accuracy(metrics["results"], tmp_path / "again.png")  # saving lays it out
    assert (tmp_path / "again.png").read_bytes() == png.read_bytes()
    x0, y0, x1, y1 = figure.axes[0].get_window_extent().extents
    plot_area = image.convert("RGB").crop((x0, image.height - y1, x1, image.height - y0))
    colours = {colour for _, colour in plot_area.getcolors(image.width * image.height)}
    assert _rgb(reports.SERIES_COLORS[0]) in colours and _rgb(reports.SERIES_COLORS[1]) in colours
    assert _rgb(reports.SERIES_COLORS[2]) not in colours  # the check can fail: no third series


def test_plot_has_one_series_per_model_with_interval_error_bars() -> None:
    results = [
        {"model": m, "shots": k, "n": 100, "accuracy": acc, "ci95": [acc - 0.05, acc + 0.1]}
        for m, accs in (("base", (0.1, 0.3)), ("trained", (0.4, 0.5)))
        for k, acc in zip((0, 4), accs, strict=True)
    ]
    ax = reports.plot_accuracy(results).axes[0]
    assert [t.get_text() for t in ax.figure.legends[0].get_texts()] == ["base", "trained"]
    bars = ax.containers
    assert [list(c.lines[0].get_ydata()) for c in bars] == [pytest.approx([10, 30]), pytest.approx([40, 50])]
    low, high = bars[0].lines[2][0].get_segments()[0][:, 1]  # the vertical error bar at 0 shots
    assert (low, high) == (pytest.approx(5), pytest.approx(20))


class Scripted:
    """A backend that returns fixed texts without cutting them, as a backend without stop strings would;
    it keeps the prompts it was given."""

    def __init__(self, text: str) -> None:
        self.text, self.info, self.prompts = text, {"device": "none"}, []

    def generate(self, prompts: list[str]) -> list[Generation]:
        self.prompts += prompts
        return [Generation(self.text, len(p), 9, "length") for p in prompts]


def test_invented_continuation_is_not_graded_even_when_the_backend_did_not_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(evaluate, "make_generator", lambda *args: Scripted(INVENTED))
    metrics = evaluate_examples(["scripted"], TWO_QUESTIONS, tmp_path)
    rows = _jsonl(tmp_path / "predictions.jsonl")
    graded = [(r["extracted"], r["gold"], r["correct"]) for r in rows]
    assert graded == [("42", "42", True), ("42", "7", False)]
    assert rows[0]["completion"] == INVENTED  # stored as generated; only grading cuts
    assert metrics["results"][0]["correct"] == 1


def _rendered(tokenizer: Any, question: str, shots: int) -> str:
    """The chat prompt as TRL renders it for generation in training."""
    return maybe_apply_chat_template({"prompt": build_chat_prompt(question, shots)}, tokenizer)["prompt"]


def test_a_chat_format_renders_prompts_with_the_models_chat_template(
    tmp_path: Path, chat_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, calls = Scripted(FIRST_ANSWER), []
    monkeypatch.setattr(evaluate, "make_generator", lambda *args: calls.append(args) or backend)
    metrics = evaluate_examples(
        [chat_model], TWO_QUESTIONS, tmp_path, shots=[0, 1], prompt_format=CHAT, end_tokens=[END]
    )
    tokenizer = AutoTokenizer.from_pretrained(chat_model)
    assert backend.prompts == [_rendered(tokenizer, q["question"], k) for k in (0, 1) for q in TWO_QUESTIONS]
    assert backend.prompts[0] == f"<|im_start|>user\nWhat is 6 * 7?{END}\n<|im_start|>assistant\n"
    assert backend.prompts[2].count("<|im_start|>assistant\n") == 2  # the worked example's turn, then ours
    assert [list(args[2].end_tokens) for args in calls] == [[END]]  # the end tokens reach the backend
    assert metrics["prompt"].startswith("chat (data.build_chat_prompt)")
    assert metrics["decoding"]["end_tokens"] == [END]
    assert [r["correct"] for r in metrics["results"]] == [1, 1]


def test_a_chat_format_for_a_model_without_a_chat_template_fails_before_any_model_loads(
    tmp_path: Path, tiny_model: str, chat_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_model(*args: Any) -> None:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(evaluate, "make_generator", no_model)
    with pytest.raises(DataError, match=f"model '{tiny_model}' has no chat template"):
        evaluate_examples([chat_model, tiny_model], TWO_QUESTIONS, tmp_path / "out", prompt_format=CHAT)
    assert not (tmp_path / "out").exists()


def test_hf_generation_in_a_chat_format_runs_and_grades(tmp_path: Path, chat_model: str) -> None:
    metrics = evaluate_examples(
        [chat_model], TWO_QUESTIONS, tmp_path, max_new_tokens=4, prompt_format=CHAT, end_tokens=[END]
    )
    tokenizer = AutoTokenizer.from_pretrained(chat_model)
    rows = _jsonl(tmp_path / "predictions.jsonl")
    assert [r["prompt_tokens"] for r in rows] == [
        len(tokenizer(_rendered(tokenizer, q["question"], 0))["input_ids"]) for q in TWO_QUESTIONS
    ]
    assert all(r["finish"] in ("stop", "length") and r["correct"] is False for r in rows)
    assert [(r["n"], r["correct"]) for r in metrics["results"]] == [(2, 0)]
    assert f"stopping at EOS, `{END}` or a new `Question:`" in (tmp_path / "results.md").read_text()


def _script(generator: HFGenerator, text: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """Make the real model emit `text` then EOS inside the real generate() loop (padding, cache and
    stopping criteria all run; only the logits are replaced). Returns the number of script tokens."""
    tokens = generator.tokenizer(text, add_special_tokens=False)["input_ids"]
    real_forward, step = generator.model.forward, 0

    def forward(*args: Any, **kwargs: Any) -> Any:
        nonlocal step
        out = real_forward(*args, **kwargs)
        step = 0 if kwargs["input_ids"].shape[1] > 1 else step + 1  # a prompt-long input: a new batch
        logits = torch.full_like(out.logits, -1e9)
        logits[..., tokens[step] if step < len(tokens) else min(generator.eos_ids)] = 0
        out.logits = logits
        return out

    monkeypatch.setattr(generator.model, "forward", forward)
    return len(tokens)


def test_hf_generation_stops_at_an_invented_question_and_grades_the_first_answer(
    tmp_path: Path, tiny_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = HFGenerator(ModelSpec(tiny_model), GeneratorSettings(batch_size=2, max_new_tokens=64))
    script_tokens = _script(generator, INVENTED, monkeypatch)
    monkeypatch.setattr(evaluate, "make_generator", lambda *args: generator)
    evaluate_examples([tiny_model], TWO_QUESTIONS, tmp_path)
    rows = _jsonl(tmp_path / "predictions.jsonl")
    assert [r["completion"] for r in rows] == [FIRST_ANSWER, FIRST_ANSWER]
    assert [r["finish"] for r in rows] == ["stop", "stop"]
    assert all(r["completion_tokens"] < script_tokens - 10 for r in rows)  # stopped, not run to the end
    assert [(r["extracted"], r["correct"]) for r in rows] == [("42", True), ("42", False)]

    short = HFGenerator(ModelSpec(tiny_model), GeneratorSettings(batch_size=2, max_new_tokens=5))
    _script(short, " 1 2 3 4 5 6 7 8 9", monkeypatch)
    generations = short.generate(["a", "a longer prompt"])
    assert {(g.finish, g.completion_tokens) for g in generations} == {("length", 5)}


def test_an_end_token_stops_hf_generation_and_counts_as_stop(
    tiny_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = HFGenerator(ModelSpec(tiny_model), GeneratorSettings(batch_size=2, max_new_tokens=64))
    ending = HFGenerator(
        ModelSpec(tiny_model), GeneratorSettings(batch_size=2, max_new_tokens=64, end_tokens=(END,))
    )
    end_id = ending.tokenizer.convert_tokens_to_ids(END)
    assert end_id in ending.config.eos_token_id and end_id not in plain.config.eos_token_id
    answer_tokens = len(ending.tokenizer(FIRST_ANSWER, add_special_tokens=False)["input_ids"])
    for generator in (plain, ending):
        _script(generator, f"{FIRST_ANSWER}{END} and then some more words", monkeypatch)
    assert {(g.completion, g.completion_tokens, g.finish) for g in ending.generate(["a", "a b c"])} == {
        (FIRST_ANSWER, answer_tokens, "stop")
    }
    ran_on = plain.generate(["a"])[0]  # without the end token it writes on past it
    assert ran_on.completion.endswith("more words") and ran_on.completion_tokens > answer_tokens + 1

    with pytest.raises(ValueError, match=f"end_tokens for model '{tiny_model}': '<|not-a-token|>' is"):
        HFGenerator(
            ModelSpec(tiny_model),
            GeneratorSettings(batch_size=1, max_new_tokens=1, end_tokens=("<|not-a-token|>",)),
        )


def test_batched_left_padded_generation_equals_one_prompt_at_a_time(
    varied_model: str, questions: list[dict[str, Any]]
) -> None:
    prompts = [q["question"] for q in questions]  # different lengths: batches need padding
    one = HFGenerator(ModelSpec(varied_model), GeneratorSettings(batch_size=1, max_new_tokens=12)).generate(
        prompts
    )
    batched = HFGenerator(
        ModelSpec(varied_model), GeneratorSettings(batch_size=4, max_new_tokens=12)
    ).generate(prompts)
    assert len({g.prompt_tokens for g in one}) == 4 and len({g.completion for g in one}) > 1
    assert batched == one


def test_generation_shows_its_progress_on_stderr(tiny_model: str, capsys: pytest.CaptureFixture) -> None:
    HFGenerator(ModelSpec(tiny_model), GeneratorSettings(batch_size=2, max_new_tokens=2)).generate(
        ["a", "b", "c"]
    )
    err = capsys.readouterr().err
    assert "generating" in err and "3/3" in err and "100%" in err


def test_adapter_is_loaded_and_merged(tiny_model: str, adapter: str) -> None:
    base = HFGenerator(ModelSpec(tiny_model), GeneratorSettings(batch_size=1, max_new_tokens=1)).model
    merged = HFGenerator(
        ModelSpec(tiny_model, adapter), GeneratorSettings(batch_size=1, max_new_tokens=1)
    ).model
    assert not any("lora" in name for name, _ in merged.named_modules())
    q_base, q_merged = (m.model.layers[0].self_attn.q_proj.weight for m in (base, merged))
    assert not torch.equal(q_base, q_merged)


def test_limit_and_shots_change_what_is_evaluated(tmp_path: Path, tiny_model: str) -> None:
    out = tmp_path / "out"
    assert _cli(tmp_path, "--model", "builtin:tiny-qwen2", "--limit", "2", "--shots", "0", *FAST) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert [(r["shots"], r["n"]) for r in metrics["results"]] == [(0, 2)]
    assert [(r["id"], r["shots"]) for r in _jsonl(out / "predictions.jsonl")] == [(0, 0), (1, 0)]

    assert _cli(tmp_path, "--model", tiny_model, "--limit", "3", "--shots", "2,0", "--overwrite", *FAST) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert [(r["shots"], r["n"]) for r in metrics["results"]] == [(0, 3), (2, 3)]
    rows = _jsonl(out / "predictions.jsonl")
    assert [(r["id"], r["shots"]) for r in rows] == [(i, k) for k in (0, 2) for i in range(3)]
    zero_shot, two_shot = rows[:3], rows[3:]
    assert all(
        b["prompt_tokens"] > a["prompt_tokens"] + 100 for a, b in zip(zero_shot, two_shot, strict=True)
    )


def test_evaluating_the_same_model_twice_is_byte_identical(
    tmp_path: Path, varied_model: str, questions: list[dict[str, Any]]
) -> None:
    for run in ("a", "b"):
        evaluate_examples([varied_model], questions, tmp_path / run, shots=[0, 1], max_new_tokens=12)
    for name in ("predictions.jsonl", "metrics.json", "results.md", "accuracy_vs_shots.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert len({r["completion"] for r in _jsonl(tmp_path / "a" / "predictions.jsonl")}) > 1
    assert set(json.loads((tmp_path / "a" / "timing.json").read_text())["seconds"]) == {
        f"{varied_model} | 0-shot",
        f"{varied_model} | 1-shot",
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "/no/such/model"], "model path does not exist: /no/such/model"),
        (["--model", "TINY", "--adapter", "./no-adapter"], "model path does not exist: ./no-adapter"),
        (["--compare", "TINY", "TINY+/no/adapter"], "model path does not exist: /no/adapter"),
        (["--model", "TINY", "--shots", "0,x"], "--shots must be comma-separated integers such as 0,2,4,8"),
        (["--model", "TINY", "--shots", "0,9"], "--shots values must be between 0 and 8, got '0,9'"),
        (["--model", "TINY", "--limit", "0"], "--limit must be at least 1"),
        (["--model", "TINY", "--batch-size", "0"], "batch size and max new tokens must be at least 1"),
        (["--model", "TINY", "--backend", "vllm"], "backend 'vllm' needs the vllm package"),
        (["--model", "TINY", "--recipe", "no-such-recipe"], "recipe: no recipe file or baked recipe named"),
        (["--model", "TINY", "--recipe", "qwen2.5-0.5b-gsm8k-seed"], "model 'TINY' has no chat template"),
    ],
)
def test_cli_errors_exit_2_with_a_clear_message(
    tmp_path: Path,
    tiny_model: str,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # as on a CPU box, even where vllm is installed
    assert _cli(tmp_path, *[a.replace("TINY", tiny_model) for a in args]) == 2
    assert f"grpo-rlvr evaluate: error: {message.replace('TINY', tiny_model)}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # failed before any model loaded or any file was written


@pytest.mark.parametrize("recipe", ["yaml", "baked"])
def test_cli_recipe_evaluates_in_the_format_the_model_was_trained_with(
    recipe: str, tmp_path: Path, chat_model: str, capsys: pytest.CaptureFixture
) -> None:
    if recipe == "yaml":
        path = tmp_path / "chat.yaml"
        path.write_text(
            json.dumps(
                {"model_name_or_path": chat_model, "prompt_format": {"chat": True}, "end_tokens": [END]}
            )
        )
        recipe = str(path)
    else:
        recipe = "qwen2.5-0.5b-gsm8k-seed"  # chat prompts ending at <|im_end|>
    assert (
        _cli(tmp_path, "--model", chat_model, "--recipe", recipe, "--limit", "2", "--shots", "0,1", *FAST)
        == 0
    )
    assert "chat prompts" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["prompt"].startswith("chat (data.build_chat_prompt)")
    assert metrics["decoding"]["end_tokens"] == [END]
    tokenizer = AutoTokenizer.from_pretrained(chat_model)
    questions = evaluate.load_eval_examples(GSM8K, "test", limit=2)[0]
    rows = _jsonl(tmp_path / "out" / "predictions.jsonl")
    assert [r["prompt_tokens"] for r in rows] == [
        len(tokenizer(_rendered(tokenizer, q["question"], k))["input_ids"]) for k in (0, 1) for q in questions
    ]


def test_cli_needs_exactly_one_of_model_or_compare(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_:
        _cli(tmp_path)
    assert exit_.value.code == 2


def _fake_vllm(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """vLLM cannot run here: a stand-in module records what the backend asks of it."""
    seen: dict[str, Any] = {}

    class LLM:
        def __init__(self, model: str, **kwargs: Any) -> None:
            seen["llm"] = {"model": model, **kwargs}
            seen["config_written"] = (Path(model) / "config.json").exists()

        def generate(self, prompts: list[str], params: Any, use_tqdm: bool) -> list[Any]:
            seen.setdefault("prompts", []).extend(prompts)
            finishes = ["stop", "length"]
            return [
                SimpleNamespace(
                    prompt_token_ids=[0] * 5,
                    outputs=[
                        SimpleNamespace(
                            text=" 6 * 7 = 42.\n#### 42", token_ids=[1, 2, 3], finish_reason=finishes[i % 2]
                        )
                    ],
                )
                for i in range(len(prompts))
            ]

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, lambda **kwargs: seen.setdefault("sampling", kwargs)
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    return seen


def test_vllm_backend_is_greedy_with_the_stop_string_and_loads_the_merged_adapter(
    tmp_path: Path, tiny_model: str, adapter: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _fake_vllm(monkeypatch)
    metrics = evaluate_examples(
        [ModelSpec(tiny_model, adapter)], TWO_QUESTIONS, tmp_path, backend="vllm", max_new_tokens=32
    )
    assert seen["sampling"] == {
        "temperature": 0,
        "max_tokens": 32,
        "stop": ["\nQuestion:"],
        "stop_token_ids": [],
    }
    assert seen["llm"]["model"] != tiny_model and seen["config_written"] and seen["llm"]["seed"] == 0
    rows = _jsonl(tmp_path / "predictions.jsonl")
    assert [(r["finish"], r["prompt_tokens"], r["completion_tokens"], r["correct"]) for r in rows] == [
        ("stop", 5, 3, True),
        ("length", 5, 3, False),
    ]
    assert metrics["backend"] == "vllm" and metrics["results"][0]["truncated"] == 1


def test_vllm_backend_stops_at_the_end_tokens_and_gets_chat_prompts_as_text(
    tmp_path: Path, chat_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _fake_vllm(monkeypatch)
    evaluate_examples(
        [chat_model], TWO_QUESTIONS, tmp_path, backend="vllm", prompt_format=CHAT, end_tokens=[END]
    )
    tokenizer = AutoTokenizer.from_pretrained(chat_model)
    assert seen["sampling"]["stop_token_ids"] == [tokenizer.convert_tokens_to_ids(END)]
    assert seen["llm"]["model"] == chat_model
    assert seen["prompts"] == [_rendered(tokenizer, q["question"], 0) for q in TWO_QUESTIONS]


def test_comparison_counts_intervals_and_paired_test() -> None:
    rows = [
        {"model": m, "shots": 0, "id": i, "correct": i in right, "extracted": "1", "finish": "stop"}
        for m, right in (("base", range(3)), ("trained", range(13)))
        for i in range(20)
    ]
    results = scoring.summarize(rows, ["base", "trained"], [0])
    assert [(r["correct"], r["n"], r["ci95"]) for r in results] == [
        (3, 20, [0.052369, 0.360419]),
        (13, 20, [0.432854, 0.818808]),  # statsmodels 0.15.0, rounded
    ]
    (row,) = scoring.compare(rows, results, "base", "trained")
    assert row == {
        "shots": 0,
        "base": 0.15,
        "trained": 0.65,
        "difference": 0.5,
        "intervals_overlap": False,
        "base_only_correct": 0,
        "trained_only_correct": 10,
        "mcnemar_p": 0.001953,  # 2 / 1024 to 4 significant digits
    }
    # A decisive difference keeps its p-value (6.788e-25 for 183 against 36), not a rounded 0.
    rows = [
        {
            "model": m,
            "shots": 0,
            "id": i,
            "correct": (m == "trained") == (i < 183),
            "extracted": "1",
            "finish": "stop",
        }
        for i in range(219)
        for m in ("base", "trained")
    ]
    (row,) = scoring.compare(rows, scoring.summarize(rows, ["base", "trained"], [0]), "base", "trained")
    assert row["mcnemar_p"] == 6.788e-25


def test_mcnemar_exact_p_matches_statsmodels() -> None:
    # statsmodels 0.15.0: mcnemar([[5, 10], [2, 7]], exact=True).pvalue == 0.03857421875 (= 158/4096)
    assert scoring.mcnemar_p(10, 2) == scoring.mcnemar_p(2, 10) == 0.03857421875
    assert scoring.mcnemar_p(0, 0) == scoring.mcnemar_p(3, 3) == 1.0


def test_model_spec_syntax(tmp_path: Path) -> None:
    assert ModelSpec.parse("Qwen/Qwen2.5-0.5B+out/adapter") == ModelSpec("Qwen/Qwen2.5-0.5B", "out/adapter")
    assert ModelSpec.parse("Qwen/Qwen2.5-0.5B").adapter is None
    plus_dir = tmp_path / "run+1"
    plus_dir.mkdir()
    assert ModelSpec.parse(str(plus_dir)) == ModelSpec(str(plus_dir))
    assert ModelSpec("m", "a").label == "m+a"
    with pytest.raises(ValueError, match="MODEL or MODEL\\+ADAPTER"):
        ModelSpec.parse("+adapter")


def test_split_picks_the_file_in_a_data_folder() -> None:
    _, info = evaluate.load_eval_examples(GSM8K, "train", limit=5)
    assert (Path(info["source"]).name, info["split"]) == ("train.jsonl", "train")
    assert info["loaded"] == "7473 rows, none dropped"
    _, info = evaluate.load_eval_examples(GSM8K / "test.jsonl", "ignored-for-a-file")
    assert (info["split"], info["loaded"], info["limit"]) == (None, "1319 rows, none dropped", None)


def test_default_out_dir_follows_sagemaker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    assert evaluate.default_out_dir() == tmp_path / "output" / "data"
    monkeypatch.delenv("SAGEMAKER_BASE_DIR")
    expected = Path("/opt/ml/output/data") if Path("/opt/ml").is_dir() else Path("eval")
    assert evaluate.default_out_dir() == expected


def test_model_on_a_checkpoint_folder_says_what_to_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A LoRA checkpoint holds an adapter, not a model: the error names the base+adapter form to use."""
    checkpoint = tmp_path / "checkpoints" / "checkpoint-6"
    checkpoint.mkdir(parents=True)
    adapter_config = {"base_model_name_or_path": "Qwen/Qwen2.5-0.5B"}
    (checkpoint / "adapter_config.json").write_text(json.dumps(adapter_config))
    (checkpoint / "adapter_model.safetensors").write_bytes(b"")
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(checkpoint), "--out", str(out), "--limit", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sentencepiece" not in err
    assert f"pass --model Qwen/Qwen2.5-0.5B+{checkpoint}" in err
    assert not (tmp_path / "eval").exists()


def test_model_on_a_folder_without_a_model_says_what_to_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", "--model", str(tmp_path / "empty"), "--out", str(tmp_path / "eval")]) == 2
    err = capsys.readouterr().err
    assert "holds no config.json, so it is no transformers model folder: pass the model_dir" in err


def test_an_earlier_evaluation_is_not_overwritten_silently(
    tmp_path: Path, tiny_model: str, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "eval"
    args = ["evaluate", "--model", tiny_model, "--data", str(GSM8K / "test.jsonl"), "--limit", "2"]
    args += ["--shots", "0", "--max-new-tokens", "4", "--out", str(out)]
    assert main(args) == 0
    assert f"results into {out}" in capsys.readouterr().out
    first = (out / "metrics.json").read_text()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{out} already holds an evaluation" in err and "--overwrite" in err
    assert (out / "metrics.json").read_text() == first
    assert main([*args, "--overwrite"]) == 0
