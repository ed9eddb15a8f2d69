"""The data scientists' notebooks run top to bottom on a small world, outputs stripped in git."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_on_a_small_world(path: Path, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CONCORD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CONCORD_PSEUDONYM_KEY", "notebook-test")
    monkeypatch.setenv("CONCORD_NB_CASES", "1500")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    resources = {"metadata": {"path": str(tmp_path)}}
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources=resources).execute()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebooks_are_committed_without_outputs(path: Path) -> None:
    cells = json.loads(path.read_text())["cells"]
    code = [cell for cell in cells if cell["cell_type"] == "code"]
    assert all(not cell.get("outputs") and not cell.get("execution_count") for cell in code)


def test_notebooks_are_numbered() -> None:
    assert [p.name[:3] for p in NOTEBOOKS] == [f"{i:02d}-" for i in range(1, len(NOTEBOOKS) + 1)]
    assert os.path.basename(NOTEBOOKS[0]).startswith("01-explore-profiles")
