"""The package's layout holds by tool, not by memory.

- `lint-imports` (import-linter, contracts in pyproject.toml) passes: stages import only from the layers below
  them, no import cycle between the modules of any package, only the store imports sqlite3, only the Ray engine
  imports ray, the analysis kernels touch no store, file or config. Imports inside functions count too.
- The contracts bite: the same check on a copy of the package with one upward import added (a core module
  importing the report, inside a function) or one cycle added fails, naming the import.
- No module is over 600 lines, and every stage's entry point lives at hivemind/<stage>/stage.py.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hivemind"
LINT = [sys.executable, "-c",
        "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"]
MAX_LINES = 600
STAGES = ["collect", "embed", "score", "analyze", "report"]


def lint(root: Path) -> subprocess.CompletedProcess:
    """lint-imports on the package under `root`, with that root's pyproject.toml, and `hivemind` found there."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([*LINT, "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def lint_with(tmp_path: Path, module: str, addition: str) -> subprocess.CompletedProcess:
    """lint-imports on a copy of the package whose `module` (a path under hivemind/) ends with `addition`."""
    root = tmp_path / "copy"
    shutil.copytree(PACKAGE, root / "hivemind", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    changed = root / "hivemind" / module
    changed.write_text(changed.read_text() + addition)
    return lint(root)


def test_the_layering_contracts_hold():
    done = lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_an_upward_import_inside_a_function_breaks_the_layers_contract(tmp_path):
    done = lint_with(tmp_path, "core/lock.py", "\n\ndef _upward():\n    from hivemind.report import stage  # noqa\n")
    assert done.returncode != 0
    assert "Stages in pipeline order" in done.stdout and "BROKEN" in done.stdout
    assert "hivemind.core.lock -> hivemind.report.stage" in done.stdout


def test_a_cycle_between_sibling_modules_breaks_the_acyclic_contract(tmp_path):
    # diversity imports phrases; now phrases imports diversity back
    done = lint_with(tmp_path, "analyze/phrases.py",
                     "\n\ndef _back():\n    from hivemind.analyze import diversity  # noqa\n")
    assert done.returncode != 0
    assert "No import cycle" in done.stdout and "BROKEN" in done.stdout


def test_a_store_query_outside_the_store_breaks_the_sql_contract(tmp_path):
    done = lint_with(tmp_path, "report/browser.py",
                     "\n\ndef _peek(path):\n    import sqlite3\n    return sqlite3.connect(path)\n")
    assert done.returncode != 0
    assert "Only the store speaks SQL" in done.stdout and "hivemind.report.browser -> sqlite3" in done.stdout


def test_no_module_is_over_600_lines():
    long = {str(p.relative_to(ROOT)): n for p in sorted(PACKAGE.rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"split these along their seams: {long}"


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_has_its_entry_point_in_the_same_place(stage):
    assert (PACKAGE / stage / "stage.py").is_file()
    assert (PACKAGE / stage / "__init__.py").read_text(encoding="utf-8").startswith('"""'), \
        f"hivemind/{stage}/__init__.py: say in a docstring what the stage does and where to start reading"


def test_every_module_attribute_used_through_an_import_exists():
    """After a move, `from hivemind.x import module` then `module.name` fails only when that line runs (the layout
    move left one such call in `analyze --controls`, found by reading). Every such use in the package, the tests
    and the benchmarks is checked here against the module it names."""
    import ast
    import importlib
    import types

    missing = []
    for path in sorted([*PACKAGE.rglob("*.py"), *(ROOT / "tests").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")]):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("hivemind"):
                parent = importlib.import_module(node.module)
                for alias in node.names:
                    found = getattr(parent, alias.name, None)
                    if found is None:
                        try:
                            found = importlib.import_module(f"{node.module}.{alias.name}")
                        except ImportError:
                            missing.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.module} has no {alias.name}")
                            continue
                    if isinstance(found, types.ModuleType):
                        modules[alias.asname or alias.name] = found
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
                module = modules[node.value.id]
                if not hasattr(module, node.attr):
                    try:
                        importlib.import_module(f"{module.__name__}.{node.attr}")
                    except ImportError:
                        missing.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value.id}.{node.attr} "
                                       f"is not in {module.__name__}")
    assert not missing, "\n".join(missing)
