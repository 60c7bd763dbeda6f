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
