"""A Gradescope autograder: ``python -m dnnl.exercises.grade --gradescope autograder.zip``.

The zip holds ``setup.sh`` (installs CPU torch and this package from the zip's own copy of its source;
no MNIST), ``run_autograder`` (grades ``/autograder/submission`` into ``/autograder/results/results.json``)
and ``manifest.json``. ``DNNL_AUTOGRADER_ROOT`` replaces ``/autograder`` (a test runs it in a temp folder)
and ``DNNL_PYTHON`` the Python that runs it.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from .manifest import dumps

ROOT_ENV = "DNNL_AUTOGRADER_ROOT"
#: Gradescope's default machine: 1/2 vCPU, 768 MB, 10 minutes.
GRADESCOPE_LIMITS = {"cell_seconds": 60, "notebook_seconds": 240, "memory_mb": 6144}

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, when the autograder image is built.
set -euo pipefail
apt-get update -qq && apt-get install -y -qq python3 python3-pip python3-venv > /dev/null || true
python3 -m pip install -q --upgrade pip
python3 -m pip install -q --index-url https://download.pytorch.org/whl/cpu torch torchvision
python3 -m pip install -q "/autograder/source/dnnl-src[book]"
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for each submission.
set -uo pipefail
ROOT="${DNNL_AUTOGRADER_ROOT:-/autograder}"
PY="${DNNL_PYTHON:-python3}"
cd "$ROOT/source"
exec "$PY" -m dnnl.exercises.grade --autograder --manifest "$ROOT/source/manifest.json"
"""

_SOURCE_SKIP = {"__pycache__", ".ipynb_checkpoints", "weights"}


def _package_files() -> list[tuple[Path, str]]:
    """(file, name in the zip) for the package's source, without the pretrained weights."""
    import dnnl

    pkg = Path(dnnl.__file__).resolve().parent
    root = pkg.parent
    files = [(p, f"dnnl-src/{p.relative_to(root)}") for p in sorted(pkg.rglob("*"))
             if p.is_file() and not (_SOURCE_SKIP & set(p.relative_to(root).parts)) and p.suffix in (".py", ".json")]
    for extra in ("pyproject.toml", "README.md", "LICENSE"):
        if (root / extra).is_file():
            files.append((root / extra, f"dnnl-src/{extra}"))
    return files


def write_zip(path, manifest: dict) -> Path:
    """Write the autograder zip to ``path``; the manifest's limits are capped to fit Gradescope's defaults."""
    manifest = {**manifest, "limits": {**manifest["limits"], **{k: min(v, manifest["limits"][k]) for k, v in
                                                                  GRADESCOPE_LIMITS.items()}}}
    path = Path(path)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in (("setup.sh", SETUP_SH), ("run_autograder", RUN_AUTOGRADER)):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16
            z.writestr(info, text)
        z.writestr("manifest.json", dumps(manifest))
        for file, name in _package_files():
            z.write(file, name)
    return path


def results_json(sub_results: list, manifest: dict, *, error: str | None = None) -> dict:
    """Gradescope's results.json: one test per check (score, max_score, output), and the total score."""
    tests = []
    for sub in sub_results:
        for e in sub.exercises:
            tests.append({"name": f"{e.check} ({sub.notebook})", "score": e.points, "max_score": e.max_points,
                          "status": "passed" if e.status == "PASS" else "failed", "output": e.message,
                          "visibility": "visible"})
    out = {"score": sum(t["score"] for t in tests), "tests": tests, "visibility": "visible"}
    notes = [f"{s.path}: {s.error}" for s in sub_results if s.error] + [n for s in sub_results for n in s.notes]
    if error or notes or not tests:
        out["output"] = "\n".join(([error] if error else []) + notes) or "No notebook of this assignment was found."
    return out


def run_autograder(manifest: dict) -> int:
    """Grade ``$ROOT/submission`` and write ``$ROOT/results/results.json`` (ROOT: ``/autograder``)."""
    from . import preflight
    from .folder import grade_folder
    from .sandbox import GraderEnvironmentError

    root = Path(os.environ.get(ROOT_ENV, "/autograder"))
    results = root / "results"
    results.mkdir(parents=True, exist_ok=True)
    try:
        preflight.require(manifest)
        subs = grade_folder(root / "submission", manifest, jobs=1, id_from="stem", feedback=False)
        data = results_json(subs, manifest)
        code = 0
    except GraderEnvironmentError as err:
        data = {"score": 0, "tests": [], "output": f"The autograder's environment is broken (not your fault): {err}"}
        code = 3
    (results / "results.json").write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    return code
