"""MkDocs hook: test markers stay out of the site; the API index is generated from ``__all__``.

``tests/test_docs.py`` runs every ``pycon`` block of the pages and reads a marker on a block's
first line, ``>>> # backend: torch`` or ``>>> # requires: jax``, to know where else the block
runs or what it needs. Readers do not need those lines, and a copy button would copy them, so
this hook removes them from fenced code blocks before the page is rendered. The ``.md`` sources
keep them, and that is where the test suite reads them.

The API reference's index page (``docs/api/index.md``) holds the line ``<!-- api-index -->``;
this hook replaces it with a table of every page under ``docs/api/`` and the names its module
exports (its ``__all__``), followed by the ``::: bp_xp`` block of the names ``bp_xp`` exports
that no module page documents. Adding a name to an ``__all__`` is all it takes to list it.

Registered under ``hooks:`` in ``mkdocs.yml``.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Any

__all__ = ["API_INDEX", "MARKER", "api_index", "api_pages", "on_page_markdown", "strip_markers"]

#: The line of ``docs/api/index.md`` that :func:`api_index` replaces.
API_INDEX = "<!-- api-index -->"
_DOCS = Path(__file__).resolve().parent
_DIRECTIVE = re.compile(r"^::: (bp_xp(?:\.\w+)*)\s*$", re.MULTILINE)

#: Same pattern as ``tests/test_docs.py``'s ``_MARKER``, allowing the indentation of a fence
#: nested in a list item or an admonition.
MARKER = re.compile(r"^[ ]*>>> # (?:backend|requires): \S+[ \t]*$")
_FENCE = re.compile(r"^[ ]*(```|~~~)")


def strip_markers(markdown: str) -> str:
    """``markdown`` without the marker lines found inside fenced code blocks.

    Marker-like text outside a fence (prose that quotes one in backticks) is left alone.

    Examples
    --------
    >>> strip_markers("```pycon\\n>>> # requires: jax\\n>>> import jax\\n```\\n")
    '```pycon\\n>>> import jax\\n```\\n'
    >>> strip_markers(">>> # requires: jax\\n")          # not in a fence: kept
    '>>> # requires: jax\\n'
    """
    out: list[str] = []
    fence: str | None = None
    for line in markdown.splitlines(keepends=True):
        opening = _FENCE.match(line)
        if fence is None:
            if opening:
                fence = opening[1]
        elif opening and opening[1] == fence and not line.strip().strip(fence[0]):
            fence = None
        elif MARKER.match(line.rstrip("\r\n")):
            continue
        out.append(line)
    return "".join(out)


def api_pages() -> dict[str, str]:
    """``{module: page}`` for every page of ``docs/api/`` but the index (its ``:::`` line)."""
    pages = {}
    for path in sorted((_DOCS / "api").glob("*.md")):
        found = _DIRECTIVE.search(path.read_text())
        if path.name != "index.md" and found:
            pages[found[1]] = path.name
    return pages


def _resolve(path: str) -> Any:
    """The module, or the object in a module, that a dotted path names."""
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError:
        module, _, name = path.rpartition(".")
        return getattr(importlib.import_module(module), name)


def api_index() -> str:
    """The index of the API reference, generated from each documented module's ``__all__``."""
    root = str(_DOCS.parent)
    if root not in sys.path:
        sys.path.insert(0, root)  # the checkout's bp_xp, as mkdocstrings reads it
    import bp_xp

    lines = ["| module | what it exports |", "| --- | --- |"]
    documented: set[int] = set()
    for path, page in api_pages().items():
        target = _resolve(path)
        if isinstance(target, type(sys)):
            names = list(getattr(target, "__all__", ()))
            documented.update(id(getattr(target, n)) for n in names if hasattr(target, n))
        else:  # a page for one class (bp_xp.sequential.Sequential)
            names = [target.__name__]
            documented.add(id(target))
        shown = ", ".join(f"`{n}`" for n in names)
        lines.append(f"| [`{path}`]({page}) | {shown} |")
    own = [n for n in bp_xp.__all__ if id(getattr(bp_xp, n)) not in documented
           and not isinstance(getattr(bp_xp, n), type(sys))]
    lines += ["", "::: bp_xp", "    options:", "      show_root_heading: false"]
    if own:
        lines += ["      members:", *(f"        - {n}" for n in own)]
    else:  # every name has its module's page: the package's own docstring only
        lines += ["      members: false"]
    return "\n".join(lines) + "\n"


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """MkDocs event: called with each page's Markdown before it is converted to HTML."""
    if API_INDEX in markdown:
        markdown = markdown.replace(API_INDEX, api_index())
    return strip_markers(markdown)
