"""The notebooks run end to end on a real training run, and are committed without outputs."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from .conftest import REPO_ROOT, TRAIN_STEPS, uses_trained_run

NOTEBOOKS = REPO_ROOT / "notebooks"


def test_committed_notebooks_carry_no_outputs() -> None:
    # Outputs would bloat diffs, go stale and hide whether the notebook still runs (CI runs it).
    notebooks = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert notebooks, "no notebooks found"
    for path in notebooks:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path.name} has outputs: clear them"


def test_each_notebook_says_first_how_to_start_jupyter_and_the_install_target_exists() -> None:
    import tomllib

    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(req.startswith("jupyterlab") for req in extras["notebooks"])
    assert "\nnotebooks: ##" in (REPO_ROOT / "Makefile").read_text()
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        first = nbformat.read(path, as_version=4).cells[0]
        assert first.cell_type == "markdown" and "`make notebooks`" in first.source, path.name


def execute(name: str) -> tuple[list[dict], dict]:
    """Run notebooks/<name> in a fresh kernel; return its figures and the JSON summary it prints last."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    ).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    figures = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.data]
    last_stream = [o for o in outputs if o.output_type == "stream"][-1]
    return figures, json.loads(last_stream.text.strip().splitlines()[-1])


@pytest.mark.slow
@uses_trained_run
def test_notebooks_run_on_a_trained_run(trained_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENCDEC_RUN_DIR", str(trained_run))  # the kernel inherits the environment

    figures, summary = execute("latent_norm_equilibrium.ipynb")
    assert len(figures) == 1  # latent norm and loss terms against steps
    assert summary["run"] == str(trained_run) and summary["source"] == "W&B run"
    assert summary["logged_steps"] >= TRAIN_STEPS // 5 - 1  # every 5th step of the run, read from its W&B file
    assert summary["equilibrium_step"] is None or 0 < summary["equilibrium_step"] <= TRAIN_STEPS

    figures, summary = execute("latent_space.ipynb")
    assert len(figures) == 4  # reconstructions, interpolations, Gaussian samples, PCA projection
    assert summary["codes"] == [2000, 32] and summary["gaussian_samples"] == 32
    assert 0 < summary["pca_variance_explained"] < 1
