"""The notebooks in notebooks/ are committed without outputs and run from top to bottom.

As committed, a notebook runs real settings (a model worth looking at); its first code
cell switches to tiny ones when ``FEDSIM_NOTEBOOK_TINY=1``, which the tests set for the
kernels they start.
"""

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_the_three_notebooks():
    assert [path.name for path in NOTEBOOKS] == [
        "01_quickstart.ipynb",
        "02_compare_strategies.ipynb",
        "03_per_client.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_is_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells
    assert all(not cell.outputs and cell.execution_count is None for cell in code_cells)


TINY_SWITCH = 'TINY = os.environ.get("FEDSIM_NOTEBOOK_TINY") == "1"'


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_chooses_tiny_settings_in_its_first_code_cell(path):
    notebook = nbformat.read(path, as_version=4)
    first = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert TINY_SWITCH in first.source.splitlines(), f"{path.name}'s first code cell must set {TINY_SWITCH}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_and_draws_its_figures(path, tmp_path, monkeypatch):
    monkeypatch.setenv("FEDSIM_NOTEBOOK_TINY", "1")  # the kernel inherits it: tiny settings
    monkeypatch.delenv("TQDM_DISABLE", raising=False)  # as a user opens them
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if a cell fails
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    # No library's warnings on a cell's stderr (tqdm's "IProgress not found" without ipywidgets, ...).
    stderr = [output.text for output in outputs if output.output_type == "stream" and output.name == "stderr"]
    assert not [text for text in stderr if "site-packages" in text]
    assert any("image/png" in output.get("data", {}) for output in outputs)
    assert list((tmp_path / "notebook-runs").rglob("metrics.csv"))
