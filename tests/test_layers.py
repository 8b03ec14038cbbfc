"""Imports run down the layers: no cycle among the package's modules, and the launcher starts without
torch, transformers or TRL (it imports them only where it must)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "grpo_rlvr"
HEAVY = {"torch", "trl", "transformers", "accelerate", "datasets", "peft"}


def _module_name(path: Path, depth: int = 2) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    # A subpackage is one concept: its registry and the plugins that register into it are one node.
    return ".".join(name.split(".")[:depth])


def _imports(tree: ast.AST, depth: int = 2) -> set[str]:
    """Every grpo_rlvr module imported anywhere in the file (also inside functions), except for typing."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []  # typing-only imports are no dependency
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {".".join(n.split(".")[:depth]) for n in found if n.startswith("grpo_rlvr.")}


def _graph(folder: Path = PACKAGE, depth: int = 2) -> dict[str, set[str]]:
    """Module -> the package's modules it imports; `depth` 3 inside a subpackage sees its own modules."""
    graph: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        name = _module_name(path, depth)
        graph.setdefault(name, set())
        graph[name] |= _imports(ast.parse(path.read_text(encoding="utf-8")), depth)
    return {name: {d for d in deps if d in graph and d != name} for name, deps in graph.items()}


@pytest.mark.parametrize(
    ("graph", "modules"),
    [(_graph(), 6)]
    + [(_graph(PACKAGE / name, 3), 4) for name in ("training", "config", "evaluation", "launch")],
    ids=["package", "training", "config", "evaluation", "launch"],
)
def test_the_module_graph_has_no_cycle(graph: dict[str, set[str]], modules: int) -> None:
    assert len(graph) >= modules
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(graph[node]):
            assert state.get(dep) != "open", " -> ".join([*path, node, dep])
            if dep not in state:
                visit(dep, [*path, node])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_low_layers_do_not_import_high_ones() -> None:
    graph = _graph()
    assert not graph["grpo_rlvr.config"] & {
        "grpo_rlvr.evaluation",
        "grpo_rlvr.sagemaker",
        "grpo_rlvr.training",
    }
    assert not graph["grpo_rlvr.training"] & {"grpo_rlvr.cli", "grpo_rlvr.launch", "grpo_rlvr.reproduce"}
    lows = ("redact", "files", "prompt_format", "overrides", "handoff", "runlock")
    for low in (f"grpo_rlvr.{name}" for name in lows):
        assert not graph[low], f"{low} imports {graph[low]}"
    assert graph["grpo_rlvr.checkpoints"] <= {"grpo_rlvr.files"}
    assert graph["grpo_rlvr.recipe_schema"] <= {"grpo_rlvr.grpo_args"}  # TRL only to write its snapshot


def test_inside_training_the_run_is_on_top_and_the_callbacks_at_the_bottom() -> None:
    graph = _graph(PACKAGE / "training", 3)
    run = "grpo_rlvr.training.grpo"
    assert not any(run in deps for deps in graph.values()), "only callers outside training import the run"
    assert graph[run] >= {f"grpo_rlvr.training.{m}" for m in ("rows", "model", "generation", "callbacks")}
    assert not graph["grpo_rlvr.training.callbacks"], "callbacks import nothing else of training"
    assert not graph["grpo_rlvr.training.model"]


def test_inside_config_loading_is_on_top_and_the_sections_at_the_bottom() -> None:
    graph = _graph(PACKAGE / "config", 3)
    assert graph["grpo_rlvr.config.loading"] == {"grpo_rlvr.config.checks", "grpo_rlvr.config.sections"}
    assert graph["grpo_rlvr.config.checks"] == {"grpo_rlvr.config.sections"}
    assert not graph["grpo_rlvr.config.sections"], "the sections import nothing else of config"


def test_inside_evaluation_the_api_is_on_top_and_the_numbers_and_reports_at_the_bottom() -> None:
    graph = _graph(PACKAGE / "evaluation", 3)
    api = "grpo_rlvr.evaluation.evaluate"
    assert not any(api in deps for deps in graph.values()), "only callers outside evaluation import the API"
    assert graph[api] >= {f"grpo_rlvr.evaluation.{m}" for m in ("models", "generation", "scoring", "reports")}
    for bottom in ("models", "scoring", "reports"):
        assert not graph[f"grpo_rlvr.evaluation.{bottom}"], f"{bottom} imports nothing else of evaluation"


def test_inside_launch_the_entrypoint_is_on_top_and_planning_and_logs_at_the_bottom() -> None:
    graph = _graph(PACKAGE / "launch", 3)
    assert not any("grpo_rlvr.launch.entrypoint" in deps for deps in graph.values())
    assert graph["grpo_rlvr.launch.processes"] == {"grpo_rlvr.launch.planning"}
    assert not graph["grpo_rlvr.launch.planning"] and not graph["grpo_rlvr.launch.logs"]


def test_importing_the_launcher_loads_no_torch_trl_or_transformers() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import grpo_rlvr.launch.entrypoint"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "grpo_rlvr.launch.entrypoint" in imported and "grpo_rlvr.checkpoints" in imported
    assert not {name.split(".")[0] for name in imported} & HEAVY


def test_the_sandbox_child_is_stdlib_only_and_the_sandbox_knows_no_reward() -> None:
    """`sandbox/program.py` runs by path in `python -I -S`: it may import only the standard library."""
    tree = ast.parse((PACKAGE / "sandbox" / "program.py").read_text(encoding="utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "os" in imported and imported <= sys.stdlib_module_names, imported - sys.stdlib_module_names
    assert "grpo_rlvr.rewards" not in _graph()["grpo_rlvr.sandbox"]
