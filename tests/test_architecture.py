"""The layout tells the architecture: layers enforced by import-linter, small modules that say
what they own. Each check also runs on a copy of the tree with one deliberate fault, so that a
check which could never fail would be caught."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("concord", "ingestion", "features", "models", "training", "policies", "serving", "simulator")
MAX_LINES = 400


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter with the project's contracts over the packages found in ``tree``."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command; lint_imports_command()",
            "--config",
            str(tree / "pyproject.toml"),
            "--no-cache",
        ],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )


def _copy_tree(destination: Path) -> Path:
    """The product's packages and pyproject.toml, copied so a test may break them."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, destination / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", destination / "pyproject.toml")
    return destination


def product_modules() -> list[Path]:
    return sorted(
        path for package in PACKAGES for path in (ROOT / package).rglob("*.py") if "migrations" not in path.parts
    )


def test_the_layers_hold() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken" in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "contract"),
    [
        ("features/profile.py", "import training.labels", "Data flows one way"),
        ("ingestion/parsing.py", "import features.store", "Data flows one way"),
        ("policies/__init__.py", "import simulator", "never imports the simulator"),
    ],
)
def test_a_wrong_import_breaks_a_contract(tmp_path: Path, module: str, bad_import: str, contract: str) -> None:
    tree = _copy_tree(tmp_path)
    path = tree / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{bad_import}  # deliberately wrong\n", encoding="utf-8")
    result = _lint_imports(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout and contract in result.stdout, result.stdout


def test_every_module_is_small() -> None:
    too_long = [
        f"{path.relative_to(ROOT)}: {path.read_text(encoding='utf-8').count(chr(10))} lines"
        for path in product_modules()
        if path.read_text(encoding="utf-8").count("\n") > MAX_LINES
    ]
    assert not too_long, f"modules over {MAX_LINES} lines: {too_long}"


def test_every_module_says_what_it_owns() -> None:
    undocumented = []
    for path in product_modules():
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        if path.name != "__main__.py" and (not docstring or len(docstring.strip().splitlines()) < 2):
            undocumented.append(str(path.relative_to(ROOT)))
    assert not undocumented, f"modules without a docstring of at least two lines naming what they own: {undocumented}"
