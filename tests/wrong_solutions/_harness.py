"""Loading the wrong-solution corpus and telling code from prose in a hint line.

The corpus: one module per check, ``check_<name>.py`` (or any ``check_*.py`` with ``CHECK = "check_<name>"``),
defining ``WRONG = [(function, cause), ...]``. ``cause`` is a short lowercase phrase the check's named cause
(``CheckResult.cause``) must contain; ``None`` means the check must fail without naming a cause (it may only
state what it observed). Files starting with ``_`` are helpers. tests/test_wrong_solutions.py grades them all.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: What marks a line as code or a formula: an assignment or equation, a product dot, a root sign, a call,
#: a power, library names, or arithmetic between two symbols (``x - 1``, ``t+1``, ``1/x``).
CODE = re.compile(r"=|·|√|\*\*|\bsqrt\b|\btorch\b|\bschedule\.|\bnp\.|[A-Za-z_]\w*\(|\.\w+\(|`"
                  r"|[\w)\]]\s*[+*/]\s*[\w(]|[\w)]\s*[−]\s*[\w(]|\w\s+-\s+\w|\w[+−-]1\b")


def load() -> list[tuple[str, str, object, str | None]]:
    """(module, check name, function, cause) for every entry of every corpus module, in file order."""
    entries = []
    for path in sorted(HERE.glob("check_*.py")):
        spec = importlib.util.spec_from_file_location(f"wrong_solutions_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        check = getattr(module, "CHECK", path.stem)
        for k, (fn, cause) in enumerate(module.WRONG):
            entries.append((f"{path.stem}[{k}]", check, fn, cause))
    return entries


def hint_lines(message: str) -> list[str]:
    """The hint and likely-cause parts of a verdict: what must carry no code at the terse level."""
    out = []
    for line in message.splitlines():
        if "Hint:" in line:
            out.append(line.split("Hint:", 1)[1].strip())
        elif "💡" in line:
            out.append(line.split(":", 1)[1].strip() if ":" in line else line)
    return out


def code_in(text: str, solution_lines: list[str]) -> str | None:
    """The code token or solution line found in ``text``, or None."""
    m = CODE.search(text)
    if m:
        return m.group(0)
    return next((ln for ln in solution_lines if ln in text), None)
