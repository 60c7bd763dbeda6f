"""The chapters' setup cell on Colab: it installs dnnl without touching what Colab has, shows pip's own
error when it fails, and the sliders work with Colab's ipywidgets 7.7 as well as with ipywidgets 8.

The Colab-like tests build a virtual environment with what a Colab VM has before any chapter runs
(torch, torchvision, numpy, matplotlib, ipywidgets 7.7.1, ipykernel 6; no dnnl), then run chapter 1's
own cells in a kernel of that environment. The setup cell installs ``dnnl[colab]`` for real, from a copy
of this checkout (``DNNL_INSTALL_FROM``) instead of GitHub. They take two to three minutes, so they run
in CI (``CI=true``) or with ``DNNL_COLAB_TEST=1`` and are skipped otherwise.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("jupytext")

from booktools import chapter_notebook  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = ROOT / "book" / "01-forward.qmd"
# what a Colab VM has before the setup cell runs (Colab's long-standing widget stack)
COLAB_PACKAGES = ["torch==2.14.1", "torchvision==0.29.1", "numpy", "matplotlib", "pillow",
                  "ipywidgets==7.7.1", "ipykernel>=6,<7", "notebook<7"]
RUN_COLAB = os.environ.get("CI", "").lower() == "true" or os.environ.get("DNNL_COLAB_TEST") == "1"
colab_only = pytest.mark.skipif(not RUN_COLAB, reason="builds a Colab-like virtual environment (2-3 min): "
                                "runs in CI (CI=true) or with DNNL_COLAB_TEST=1")

# after the slider cell: move the slider, then read back what its Output widget holds
_MOVE = """import ipywidgets
shown = [o.get("data", {}).get("image/png") for o in out.outputs]
slider.value = 500"""
_READ = """import json
moved = [o.get("data", {}).get("image/png") for o in out.outputs]
print("PROBE " + json.dumps({"version": ipywidgets.__version__, "value": slider.value,
                             "shown": len([p for p in shown if p]), "moved": len([p for p in moved if p]),
                             "changed": shown != moved}))"""


# --------------------------------------------------------------------------- helpers
def _setup_source() -> str:
    nb = chapter_notebook(CHAPTER.read_text(encoding="utf-8"), CHAPTER.stem, solutions=False)
    setup = next(c.source for c in nb.cells if c.cell_type == "code")
    assert "DNNL_INSTALL_FROM" in setup and "dnnl[colab]" in setup, "the chapter's first cell is not the setup cell"
    return setup


def _slider_notebook():
    """Chapter 1's code cells up to its slider cell, then the two probe cells."""
    nb = chapter_notebook(CHAPTER.read_text(encoding="utf-8"), CHAPTER.stem, solutions=True)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    last = next(i for i, c in enumerate(code) if "widgets.IntSlider" in c)
    cells = [nbformat.v4.new_code_cell(c) for c in code[: last + 1] + [_MOVE, _READ]]
    return nbformat.v4.new_notebook(cells=cells)


def _run(nb, kernel: str, cwd: Path, env: dict[str, str], *, allow_errors: bool = False):
    from nbclient import NotebookClient

    full = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DNNL_INSTALL_FROM")}
    full.update(env)
    client = NotebookClient(nb, timeout=600, kernel_name=kernel, allow_errors=allow_errors,
                            resources={"metadata": {"path": str(cwd)}})
    client.execute(env=full)
    return nb


def _text(cell) -> str:
    parts = []
    for out in cell.outputs:
        parts.append(out.get("text", ""))
        if out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}")
    return "".join(parts)


def _errors(nb) -> list[str]:
    return [f"cell {i}: {o.ename}: {o.evalue}" for i, c in enumerate(nb.cells) for o in c.get("outputs", [])
            if o.output_type == "error"]


def _probe(nb) -> dict:
    line = next(l for l in _text(nb.cells[-1]).splitlines() if l.startswith("PROBE "))
    return json.loads(line[len("PROBE "):])


def _freeze(python: Path) -> dict[str, str]:
    out = subprocess.run([str(python), "-m", "pip", "freeze", "--all", "--disable-pip-version-check"],
                         capture_output=True, text=True, check=True).stdout
    versions = {}
    for line in out.splitlines():
        name, _, version = line.partition("==") if "==" in line else line.partition(" @ ")
        versions[re.sub(r"[-_.]+", "-", name.strip().lower())] = version.strip()
    return versions


def _source_copy(dest: Path) -> Path:
    """What pip needs to build dnnl: the package and its metadata files (no virtual environments)."""
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, dest / name)
    shutil.copytree(ROOT / "dnnl", dest / "dnnl", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return dest


def _kernel_env(tmp: Path, **extra) -> dict[str, str]:
    env = {"DNNL_MODE": "quick", "DNNL_OUT": str(tmp / "out"), "MPLBACKEND": "module://matplotlib_inline.backend_inline",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    """A Colab-like virtual environment with a kernelspec "colab-like"; removed afterwards (it holds GBs)."""
    tmp = tmp_path_factory.mktemp("colab")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    result = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                             *COLAB_PACKAGES], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"could not build the Colab-like environment:\n{result.stderr[-3000:]}"
    spec = tmp / "jupyter" / "kernels" / "colab-like"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab-like", "language": "python"}))
    work = tmp / "work"   # the kernel's folder: not the checkout, where `import dnnl` would find the source
    work.mkdir()
    yield {"tmp": tmp, "python": python, "jupyter": str(tmp / "jupyter"), "work": work,
           "source": _source_copy(tmp / "src")}
    shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- everywhere, cheap
def test_setup_cell_shows_pips_error_when_the_install_fails(tmp_path):
    """In a bare environment (no dnnl), the setup cell run as a script: the error carries pip's own words."""
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    (tmp_path / "not-a-project").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["DNNL_INSTALL_FROM"] = str(tmp_path / "not-a-project")
    result = subprocess.run([str(venv / "bin" / "python"), "-c", _setup_source()], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    error = result.stderr
    assert "RuntimeError: pip could not install dnnl[colab] @ file://" in error, error
    assert "does not appear to be a Python project" in error, f"pip's own message is missing:\n{error}"
    assert "To fix:" in error and "CalledProcessError" not in error


def test_setup_cell_installs_the_light_extra_from_ranges():
    import tomllib

    setup = _setup_source()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert "dnnl[colab]" in setup and "dnnl[book]" not in setup
    assert "capture_output=True" in setup and "check=True" not in setup
    names = {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() for r in extras["colab"]}
    # only what Colab may lack, and nothing that would replace Colab's notebook stack
    assert not names & {"torch", "torchvision", "numpy", "matplotlib", "ipykernel", "jupytext", "nbclient",
                        "nbconvert", "notebook", "jupyterlab"}, names
    widgets = [r for r in extras["colab"] if r.lower().startswith("ipywidgets")]
    assert widgets == ["ipywidgets>=7.6"], widgets


@pytest.mark.notebook
def test_slider_cell_moves_under_the_main_environments_ipywidgets(tmp_path, mnist_root):
    nb = _run(_slider_notebook(), "python3", tmp_path, _kernel_env(tmp_path, DNNL_DATA=str(mnist_root)))
    assert not _errors(nb), _errors(nb)
    probe = _probe(nb)
    assert int(probe["version"].split(".")[0]) >= 8, probe
    assert probe == dict(probe, value=500, shown=1, moved=1, changed=True), probe


# --------------------------------------------------------------------------- Colab-like environment
@colab_only
@pytest.mark.slow
@pytest.mark.notebook
def test_colab_setup_cell_reports_pips_error_in_the_cell(colab, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", colab["jupyter"])
    before = _freeze(colab["python"])
    assert "dnnl" not in before
    broken = colab["tmp"] / "not-a-project"
    broken.mkdir(exist_ok=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(_setup_source())])
    _run(nb, "colab-like", colab["work"], _kernel_env(colab["tmp"], DNNL_INSTALL_FROM=str(broken)),
         allow_errors=True)
    (error,) = [o for o in nb.cells[0].outputs if o.output_type == "error"]
    assert error.ename == "RuntimeError" and "pip could not install dnnl[colab]" in error.evalue, error.evalue
    assert "does not appear to be a Python project" in error.evalue, error.evalue
    assert _freeze(colab["python"]) == before


@colab_only
@pytest.mark.slow
@pytest.mark.notebook
def test_colab_setup_cell_installs_dnnl_and_changes_nothing_colab_has(colab, monkeypatch, mnist_root):
    monkeypatch.setenv("JUPYTER_PATH", colab["jupyter"])
    before = _freeze(colab["python"])
    assert "dnnl" not in before and before.get("ipywidgets") == "7.7.1", before
    env = _kernel_env(colab["tmp"], DNNL_INSTALL_FROM=str(colab["source"]), DNNL_DATA=str(mnist_root))
    nb = _run(_slider_notebook(), "colab-like", colab["work"], env)
    assert not _errors(nb), _errors(nb)
    after = _freeze(colab["python"])
    changed = {name: (version, after.get(name)) for name, version in before.items() if after.get(name) != version}
    assert not changed, f"the setup cell changed packages Colab already had: {changed}"
    assert "dnnl" in after, sorted(set(after) - set(before))
    setup = _text(nb.cells[0])
    assert "torch 2.14.1" in setup, setup   # dnnl.runtime_info(), on Colab's torch
    # pip's warnings a Colab user would see in red (Colab runs pip as root, outside a virtual environment)
    for warning in ("as the 'root' user", "dependency resolver", "incompatible", "ERROR"):
        assert warning not in setup, f"the setup cell shows pip's warning {warning!r}:\n{setup}"
    probe = _probe(nb)
    assert probe == dict(probe, version="7.7.1", value=500, shown=1, moved=1, changed=True), probe
