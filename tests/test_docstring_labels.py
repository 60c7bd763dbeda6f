"""Every equation label that a docstring in dnnl cites exists in the book."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def book_labels() -> set[str]:
    labels = set()
    for qmd in [ROOT / "index.qmd", *sorted((ROOT / "book").glob("*.qmd"))]:
        if qmd.exists():
            labels |= set(re.findall(r"\{#(eq-[\w-]+)\}", qmd.read_text(encoding="utf-8")))
    return labels


def test_docstring_equation_labels_exist_in_the_book():
    labels = book_labels()
    missing = {}
    for py in (ROOT / "dnnl").rglob("*.py"):
        for ref in re.findall(r"@(eq-[\w-]*\w)", py.read_text(encoding="utf-8")):
            if ref not in labels:
                missing.setdefault(ref, []).append(str(py.relative_to(ROOT)))
    assert not missing, f"docstrings cite equations the book does not define: {missing}"


def test_every_function_that_cites_an_equation_is_exported():
    """A public function or class whose docstring cites @eq-... is part of dnnl.models.ddpm.__all__."""
    import importlib
    import inspect
    import pkgutil

    import dnnl.models.ddpm as ddpm

    missing = []
    for info in pkgutil.iter_modules(ddpm.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"dnnl.models.ddpm.{info.name}")
        for name, obj in vars(module).items():
            if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if obj.__module__ != module.__name__:
                continue  # imported from elsewhere; judged in its own module
            if "@eq-" in (inspect.getdoc(obj) or "") and name not in ddpm.__all__:
                missing.append(f"{info.name}.{name}")
    assert not missing, f"these cite a book equation but are not in dnnl.models.ddpm.__all__: {missing}"
