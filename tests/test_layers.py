"""The direction of imports: the contracts in pyproject.toml ([tool.importlinter]) hold, and they break
on an upward import or a circle (checked on a copy of the tree with one of each put in)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "methods", "benchmarks", "reports")
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
        "sys.exit(lint_imports_command())"]


def lint(tree: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}  # the tree's packages, not the installed ones
    return subprocess.run([*LINT, "--config", str(tree / "pyproject.toml"), "--no-cache"], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory) -> Path:
    tree = tmp_path_factory.mktemp("tree")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_contracts_hold():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def lint_with(tree: Path, module: str, addition: str) -> subprocess.CompletedProcess:
    """Lint ``tree`` with ``addition`` appended to ``module`` (a path under the tree), then put it back."""
    path = tree / module
    original = path.read_text()
    path.write_text(original + addition)
    try:
        return lint(tree)
    finally:
        path.write_text(original)


def test_an_upward_import_breaks_the_layers(tree_copy):
    result = lint_with(tree_copy, "harness/paths.py", "\nimport methods  # the core naming a package built on it\n")
    assert result.returncode != 0
    assert "harness is not allowed to import methods" in result.stdout
    assert "harness.paths -> methods" in result.stdout


def test_a_sideways_import_breaks_the_layers(tree_copy):
    result = lint_with(tree_copy, "reports/stats.py", "\nimport methods.baselines  # reports read run directories\n")
    assert result.returncode != 0
    assert "reports is not allowed to import methods" in result.stdout


def test_a_circle_breaks_the_acyclic_contract(tree_copy):
    # harness.runstore imports harness.io; the reverse, even inside a function, closes a circle.
    result = lint_with(tree_copy, "harness/io.py", "\n\ndef _circle():\n    from harness import runstore  # noqa: F401\n")
    assert result.returncode != 0
    assert "No cycles are allowed in harness" in result.stdout
