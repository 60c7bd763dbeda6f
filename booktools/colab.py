"""The first lines of every chapter: an "Open in Colab" badge and a setup cell that installs dnnl.

The repository URL lives in one place, ``[project.urls] Repository`` in ``pyproject.toml``;
:func:`sync_sources` writes it into each chapter's badge and setup cell.
"""
from __future__ import annotations

import re
from pathlib import Path

from .paths import chapter_paths, is_numbered_chapter, repo_url

__all__ = ["colab_url", "badge_markdown", "setup_cell_source", "sync_text", "sync_sources",
           "BADGE_ALT"]

BADGE_ALT = "Open in Colab"
_BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
# the badge as written today (raw HTML) or as it was written before (a linked markdown image)
_BADGE_RE = re.compile(r"^(?:\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)"
                       r"|<a href=\"https://colab\.research\.google\.com/[^\"]*\"[^>]*>\s*<img [^>]*></a>)"
                       r"[ \t]*$", re.MULTILINE | re.IGNORECASE)


def colab_url(name: str, url: str) -> str:
    """The Colab address of the student notebook ``notebooks/<name>.ipynb`` in the GitHub repository ``url``."""
    match = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+?)(?:\.git)?", url)
    if not match:
        raise ValueError(f"url must look like https://github.com/<owner>/<name> (got {url!r})")
    owner, repo = match.groups()
    return f"https://colab.research.google.com/github/{owner}/{repo}/blob/main/notebooks/{name}.ipynb"


def badge_markdown(name: str, url: str) -> str:
    """The "Open in Colab" badge line for chapter ``name``: an inline image with alt text inside a link.

    Raw HTML, because Quarto turns a paragraph holding only a markdown image (linked or not) into a
    centred figure captioned with the alt text; Jupyter and Colab render the same HTML as a badge."""
    return (f'<a href="{colab_url(name, url)}"><img src="{_BADGE_IMAGE}" alt="{BADGE_ALT}" '
            f'style="vertical-align: middle"></a>')


def setup_cell_source(url: str) -> str:
    """The first code cell of every chapter: install dnnl from ``url`` only if it is missing, then
    print torch, device and mode.

    It installs the light ``dnnl[colab]`` extra, which needs nothing Colab lacks, so pip upgrades none
    of the packages already loaded in the session. ``DNNL_INSTALL_FROM`` (a local folder or a pip URL)
    replaces the GitHub source, for a fork or a test. When pip fails, the cell shows the end of pip's
    own output in the error, not only its exit status."""
    return "\n".join([
        "#| label: setup",
        "#| code-fold: true",
        "#| code-summary: \"Setup: install dnnl if it is missing (needed on Colab), then report torch, device and mode\"",
        "import importlib.util, os, pathlib, subprocess, sys",
        "",
        "# written by scripts/sync_notebooks.py from pyproject.toml",
        f'REPO = "{url}"',
        "# on a fresh Colab VM, install the book's package;",
        "# its [colab] extra upgrades nothing Colab already has",
        'if importlib.util.find_spec("dnnl") is None:',
        "    # DNNL_INSTALL_FROM: a local folder or a pip URL instead of GitHub",
        '    source = os.environ.get("DNNL_INSTALL_FROM", f"git+{REPO}")',
        '    if "://" not in source:',
        "        source = pathlib.Path(source).resolve().as_uri()",
        '    package = f"dnnl[colab] @ {source}"',
        '    pip = [sys.executable, "-m", "pip", "install", "-q", package]',
        '    quiet = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1",',
        '                 PIP_ROOT_USER_ACTION="ignore")',
        "    result = subprocess.run(pip, capture_output=True, text=True, env=quiet)",
        "    if result.returncode != 0:",
        '        said = "\\n".join((result.stderr + result.stdout).strip().splitlines()[-30:])',
        "        raise RuntimeError(",
        '            f"pip could not install {package} "',
        '            f"(exit status {result.returncode}). It said:\\n{said}\\n"',
        '            "To fix: check the network and the source named above, "',
        '            "then run this cell again.")',
        "    sys.stderr.write(result.stderr)  # pip's warnings, if any",
        "    importlib.invalidate_caches()  # let this running Python see the new package",
        "",
        "import dnnl",
        "",
        "print(dnnl.runtime_info())",
    ])


def sync_text(text: str, name: str, url: str) -> str:
    """``text`` with its setup cell and Colab badge rewritten for ``url`` (inserted when missing)."""
    match = re.match(r"^---\n.*?\n---[ \t]*\n", text, re.DOTALL)
    head, body = (text[: match.end()], text[match.end():]) if match else ("", text)
    badge = badge_markdown(name, url)
    if _BADGE_RE.search(body):
        body = _BADGE_RE.sub(lambda _: badge, body, count=1)
    else:
        body = "\n" + badge + "\n" + body
    setup = "```{python}\n" + setup_cell_source(url) + "\n```"
    chunk = re.search(r"^```\{python\}[^\n]*\n(.*?)^```[ \t]*$", body, re.MULTILINE | re.DOTALL)
    if chunk and re.search(r"^#\|\s*label:\s*setup\s*$", chunk.group(1), re.MULTILINE):
        body = body[: chunk.start()] + setup + body[chunk.end():]
    else:
        at = _BADGE_RE.search(body).end()
        body = body[:at] + "\n\n" + setup + "\n\n" + body[at:].lstrip("\n")
    return head + body


def sync_sources(root: str | Path | None = None, *, check: bool = False) -> list[Path]:
    """Write the repository URL into each numbered chapter's setup cell and badge.

    Returns the chapters that disagreed; with ``check=True`` nothing is written."""
    url = repo_url(root)
    changed = []
    for path in chapter_paths(root):
        if not is_numbered_chapter(path):
            continue
        text = path.read_text(encoding="utf-8")
        new = sync_text(text, path.stem, url)
        if new != text:
            changed.append(path)
            if not check:
                path.write_text(new, encoding="utf-8")
    return changed
