"""Execute every chapter, in quick mode, exactly as a reader would run its solutions notebook.

One test per notebook in notebooks/solutions/ (plus the preface's code). Figures are drawn by the
inline backend (Agg-based: no windows), files go to a temporary DNNL_OUT, the working directory is the
repository root, and MNIST comes from DNNL_DATA (see the ``mnist_root`` fixture).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("jupytext")

from booktools import chapter_notebook, run_notebook  # noqa: E402

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
    monkeypatch.delenv("DNNL_DEVICE", raising=False)
    return run_notebook(nb, cwd=ROOT, timeout=CELL_TIMEOUT, env={
        "DNNL_MODE": "quick", "DNNL_OUT": str(tmp_path / "out"), "DNNL_DATA": str(mnist_root),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline"})


_CAPTION_CELL = re.compile(r"^\*\*(Figure|Table)\b")


def _check_figures_are_captioned(nb, name):
    """Every cell that draws a figure is followed by its caption cell (written from `#| fig-cap`)."""
    for cell, after in zip(nb.cells, nb.cells[1:] + [None]):
        if cell.cell_type != "code":
            continue
        if any("image/png" in out.get("data", {}) for out in cell.get("outputs", [])):
            assert after is not None and after.cell_type == "markdown" and _CAPTION_CELL.match(after.source), (
                f"{name}: a cell draws a figure but has no caption (`#| label: fig-...` and "
                f"`#| fig-cap:` in the .qmd):\n{cell.source[:200]}")


# what a reader sees when an object is displayed as text instead of drawn
_REPR = re.compile(r"<IPython\.core\.display\.\w+ object>|<[A-Za-z_][\w.]* object at 0x[0-9a-fA-F]+>"
                   r"|<Figure size \d+(\.\d+)?x\d+(\.\d+)? with \d+ Axes>|<matplotlib\.[\w.]+ at 0x")


def object_reprs(nb) -> list[str]:
    """Outputs that show an object's repr where a figure or a value was meant.

    A text repr beside a richer form in the same output (an image, markdown, HTML: Jupyter's plain-text
    fallback) is fine; a repr that is all an output holds, or that was printed, is not."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = out.get("data", {})
            if any(key != "text/plain" for key in data):
                continue
            text = out.get("text", "") + data.get("text/plain", "")
            found += [f"cell {i}: {m.group(0)}" for m in _REPR.finditer(text)]
    return found


def test_object_reprs_are_found_in_bad_outputs_only():
    bad = nbformat.v4.new_code_cell("Image(filename='chain.gif')")
    bad.outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "<IPython.core.display.Image object>"},
                                          execution_count=1)]
    fig = nbformat.v4.new_code_cell("fig")
    fig.outputs = [nbformat.v4.new_output("stream", name="stdout", text="<Figure size 640x480 with 1 Axes>\n"),
                   nbformat.v4.new_output("execute_result", {"text/plain": "<matplotlib.image.AxesImage at 0x7f12>"},
                                          execution_count=2)]
    good = nbformat.v4.new_code_cell("plt.show()")
    good.outputs = [nbformat.v4.new_output("display_data", {"image/png": "iVBOR", "text/plain":
                                                            "<Figure size 640x480 with 1 Axes>"}),
                    nbformat.v4.new_output("display_data", {"text/markdown": "| a |", "text/plain":
                                                            "<IPython.core.display.Markdown object>"}),
                    nbformat.v4.new_output("stream", name="stdout", text="loss at <t = 100>: 0.03\n")]
    nb = nbformat.v4.new_notebook(cells=[bad, fig, good])
    found = object_reprs(nb)
    assert len(found) == 3 and found[0].startswith("cell 0") and all(not f.startswith("cell 2") for f in found)


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
    assert not object_reprs(nb), f"{path.name} shows object reprs instead of figures: {object_reprs(nb)}"
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
    assert not object_reprs(nb), f"index.qmd shows object reprs instead of figures: {object_reprs(nb)}"
