"""The library's shape: folders by stage, no import cycle, no dev tooling in the library,
small signatures, and every script the same three lines calling a stage's run(job)."""
from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = SRC / "explainbench"
STAGES = ("engines", "explanations", "classify", "plr", "report")


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(module: str, path: Path) -> set[str]:
    """explainbench modules that ``module`` imports anywhere in its file (lazy imports included)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)
    return {m for m in found if m in MODULES and m != module}


def _edges() -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        # a package's own __init__ is imported with any of its modules: not an edge that can cycle
        graph[module] = {m for m in _imports(module, path) if not module.startswith(m + ".")}
    return graph


def test_the_library_is_folded_by_stage():
    for stage in STAGES:
        assert (PACKAGE / stage / "__init__.py").exists(), stage
    flat = sorted(p.stem for p in PACKAGE.glob("*.py"))
    # the top level keeps the shared pieces only
    assert set(flat) <= {"__init__", "config", "data", "demo", "errors", "files", "io", "prompts", "provenance",
                         "splits", "stats", "workflow"}, flat


def test_no_import_cycle():
    graph, state, cycles = _edges(), {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_every_module_imports_on_its_own():
    """Each module in a fresh interpreter (an import cycle or a missing name shows up here)."""
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    for module in MODULES:
        proc = subprocess.run([sys.executable, "-c", code, module], capture_output=True, text=True,
                              env={"PYTHONPATH": str(SRC), "PATH": ""}, timeout=120)
        assert proc.returncode == 0, f"{module}: {proc.stderr[-1500:]}"


def test_the_library_never_imports_dev_tooling():
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            for name in names:
                assert name.split(".")[0] not in {"support", "tests", "pytest", "conftest"}, (module, name)
                assert not name.endswith(".ops"), (module, name)


def test_no_function_takes_more_than_six_parameters():
    too_many = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]
                if len(names) > 6:
                    too_many.append(f"{module}.{node.name}({', '.join(names)})")
    assert not too_many, "\n".join(too_many)


def test_every_script_is_three_lines_calling_a_stage_run():
    for script in sorted((ROOT / "scripts").glob("*.py")):
        tree = ast.parse(script.read_text())
        body = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
        assert len(body) == 2, script  # the import, and `if __name__ == "__main__": run_script(...)`
        call = body[1].body[0].value
        assert isinstance(call, ast.Call) and call.func.id == "run_script", script
        module, _, function = call.args[0].value.partition(":")
        target = getattr(importlib.import_module(f"explainbench.{module}"), function or "run", None)
        assert callable(target), f"{script.name}: explainbench.{module}:{function or 'run'} is not callable"


def test_the_public_names_resolve():
    import explainbench

    for name in explainbench.__all__:
        assert getattr(explainbench, name) is not None, name
    with pytest.raises(AttributeError):
        explainbench.no_such_name  # noqa: B018
