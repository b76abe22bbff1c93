"""MkDocs hook: the test runner's markers stay in the Markdown and out of the site.

``tests/test_docs.py`` runs every ``pycon`` block of the pages and reads a marker on a block's
first line, ``>>> # backend: torch`` or ``>>> # requires: jax``, to know where else the block
runs or what it needs. Readers do not need those lines, and a copy button would copy them, so
this hook removes them from fenced code blocks before the page is rendered. The ``.md`` sources
keep them, and that is where the test suite reads them.

Registered under ``hooks:`` in ``mkdocs.yml``.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MARKER", "on_page_markdown", "strip_markers"]

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


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """MkDocs event: called with each page's Markdown before it is converted to HTML."""
    return strip_markers(markdown)
