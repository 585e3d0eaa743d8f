"""The example notebooks execute top to bottom (in a temporary folder) without errors."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def execute(name: str, folder: Path):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(folder)}})
    client.execute()
    return nb


def outputs(nb) -> str:
    text = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                text.append(out.get("text", ""))
            elif "data" in out:
                text.append(str(out["data"].get("text/plain", "")))
    return "\n".join(text)


@pytest.mark.parametrize("name", ["01_prune_a_legacy_model.ipynb", "02_latency.ipynb"])
def test_notebook_is_stored_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_prune_a_legacy_model(tmp_path):
    nb = execute("01_prune_a_legacy_model.ipynb", tmp_path)
    text = outputs(nb)
    assert "same leaf for every (row, tree): True" in text
    assert "max |margin difference|: 0.0" in text
    out = tmp_path / "notebook_output"
    assert (out / "report.html").exists() and (out / "pruned_model.json").exists()


def test_latency(tmp_path):
    nb = execute("02_latency.ipynb", tmp_path)
    text = outputs(nb)
    assert "single row (us)" in text and "treeprune" in text
    assert any(out.get("output_type") == "display_data" and "image/png" in out.get("data", {})
               for cell in nb.cells for out in cell.get("outputs", []))
