"""Imports point downward (STYLE.md): the pure core touches no I/O, backends know
nothing of plans or config, and the CLI only talks to commands."""

import ast
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parent.parent / "engine"
IO_MODULES = {"os", "io", "socket", "subprocess", "sqlite3", "requests", "hvac", "boto3",
              "time", "random", "secrets", "datetime", "pathlib", "glob", "shutil", "threading"}


def imports_of(module: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module == "engine":
            names.update(f"engine.{alias.name}" for alias in node.names)  # from engine import x
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("name", ["planner.py", "planchecks.py", "backends/naming.py", "references.py", "plan.py", "model.py",
                                  "render/text.py", "render/json.py", "render/markdown.py",
                                  "render/markup.py", "render/drift.py", "drift.py", "policy.py",
                                  "locscan.py", "locrefs.py"])
def test_pure_core_modules_import_no_io(name):
    top_level = {n.split(".")[0] for n in imports_of(ENGINE / name)}
    assert not top_level & IO_MODULES


@pytest.mark.parametrize("module", sorted((ENGINE / "backends").glob("*.py")), ids=lambda p: p.name)
def test_backends_import_only_model_errors_crypto_and_each_other(module):
    allowed = {"engine.model", "engine.errors", "engine.crypto"}
    engine_imports = {n for n in imports_of(module) if n.startswith("engine")}
    assert {n for n in engine_imports if not n.startswith("engine.backends")} <= allowed


def test_cli_calls_only_commands():
    engine_imports = {n for n in imports_of(ENGINE / "cli.py") if n.startswith("engine")}
    assert engine_imports <= {"engine.__version__", "engine.commands", "engine.errors"}


@pytest.mark.parametrize("name", ["planner.py", "plan.py", "references.py", "model.py", "render/text.py",
                                  "locscan.py", "locrefs.py"])
def test_core_does_not_import_upward(name):
    upward = {"engine.commands", "engine.cli", "engine.applier", "engine.workspace", "engine.backends"}
    assert not imports_of(ENGINE / name) & upward
