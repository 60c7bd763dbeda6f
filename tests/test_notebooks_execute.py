"""Execute every chapter, in quick mode, exactly as a reader would run its solutions notebook.

One test per notebook in notebooks/solutions/ (plus the preface's code). Figures are drawn by the
inline backend (Agg-based: no windows), files go to a temporary DNNL_OUT, the working directory is the
repository root, and MNIST comes from DNNL_DATA (see the ``mnist_root`` fixture).
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("jupytext")

from dnnl.book import chapter_notebook  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks" / "solutions").glob("*.ipynb"))
CELL_TIMEOUT = 1200  # seconds per cell: generous, quick mode is meant to take minutes per chapter


_OUTPUT_SUFFIXES = {".png", ".gif", ".jpg", ".pt", ".pth", ".npz", ".npy", ".csv", ".json", ".safetensors", ".mp4"}
_WATCHED = ("", "book", "notebooks", "_output")   # where a chapter that ignored DNNL_OUT would write


def _output_like_files() -> set[Path]:
    """Files that look like chapter output (figures, GIFs, tensors) in the folders a chapter could write to."""
    found = set()
    for sub in _WATCHED:
        folder = ROOT / sub
        if not folder.is_dir():
            continue
        paths = folder.iterdir() if sub == "" else folder.rglob("*")
        found.update(p for p in paths if p.suffix in _OUTPUT_SUFFIXES and p.is_file())
    return found


def _execute(nb, monkeypatch, tmp_path, mnist_root):
    monkeypatch.setenv("DNNL_MODE", "quick")
    monkeypatch.setenv("DNNL_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("DNNL_DATA", str(mnist_root))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.delenv("DNNL_DEVICE", raising=False)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT)}})
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def _check_figures_are_captioned(nb, name):
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if any("image/png" in out.get("data", {}) for out in cell.get("outputs", [])):
            assert re.search(r"^#\|\s*label:\s*fig-", cell.source, re.MULTILINE), (
                f"{name}: a cell draws a figure but has no `#| label: fig-...`:\n{cell.source[:200]}")
            assert re.search(r"^#\|\s*fig-cap:", cell.source, re.MULTILINE), (
                f"{name}: a cell draws a figure but has no `#| fig-cap:`:\n{cell.source[:200]}")


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_notebook_runs_in_quick_mode(path, monkeypatch, tmp_path, mnist_root, capsys):
    nb = nbformat.read(path, as_version=4)
    before = _output_like_files()
    seconds = _execute(nb, monkeypatch, tmp_path, mnist_root)
    written = sorted(str(p.relative_to(ROOT)) for p in _output_like_files() - before)
    with capsys.disabled():
        print(f"\n  {path.stem}: executed in quick mode in {seconds:.0f} s")
    _check_figures_are_captioned(nb, path.name)
    assert not written, f"{path.name} wrote into the source tree instead of DNNL_OUT: {written}"


@pytest.mark.slow
@pytest.mark.notebook
def test_preface_code_runs(monkeypatch, tmp_path, mnist_root, capsys):
    text = (ROOT / "index.qmd").read_text(encoding="utf-8")
    nb = chapter_notebook(text, "index", solutions=True)
    seconds = _execute(nb, monkeypatch, tmp_path, mnist_root)
    with capsys.disabled():
        print(f"\n  index: executed in {seconds:.0f} s")
    _check_figures_are_captioned(nb, "index.qmd")
