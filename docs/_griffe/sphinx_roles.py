"""Griffe extension: render the reST bits of bp_xp's docstrings as Markdown for mkdocstrings.

bp_xp's docstrings follow numpydoc, which uses Sphinx roles (``:func:`namespace_of```),
``.. warning::`` directives and ``::`` literal blocks. mkdocstrings renders Markdown, where
those would show up verbatim. This extension rewrites them when the API pages are built:

* a role becomes an *optional* cross-reference: a link when the target is rendered
  somewhere on the site, plain code otherwise (never a broken link, never a warning);
* ``.. warning::`` / ``.. note::`` become admonitions;
* a paragraph ending in ``::`` ends in ``:`` (the indented block after it is code anyway);
* a ``>>>`` session before the first numpydoc section (where mkdocstrings would read the
  prompts as nested block quotes) becomes a ``pycon`` code block.

The source files are not touched: ``help()`` and the doctests see the docstrings as written.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|exc|obj|const):`(?P<target>[^`]+)`")
_DIRECTIVE = re.compile(r"^(?P<indent>[ ]*)\.\. (?P<kind>warning|note|seealso)::[ ]*(?P<rest>.*)$")


class SphinxRoles(griffe.Extension):
    """Rewrite every docstring of a loaded package once its object tree is complete."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = convert(obj.docstring.value, obj)


def _walk(obj: griffe.Object) -> Any:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)


def convert(text: str, obj: griffe.Object) -> str:
    """The Markdown form of one docstring."""
    text = _ROLE.sub(lambda m: _reference(m["target"], obj), text)
    return _leading_sessions(_literal_blocks(_directives(text)))


def _reference(target: str, obj: griffe.Object) -> str:
    short = target.startswith("~")
    target = target.lstrip("~.")
    shown = target.rsplit(".", 1)[-1] if short else target
    path = _resolve(target, obj)
    if path is None:
        return f"`{shown}`"
    return f'<autoref identifier="{path}" optional><code>{shown}</code></autoref>'


def _resolve(target: str, obj: griffe.Object) -> str | None:
    """The full path of ``target`` as seen from ``obj``'s class, module or package."""
    scopes = []
    scope: Any = obj
    while scope is not None:
        scopes.append(scope.path)
        scope = scope.parent
    candidates = [target, *(f"{s}.{target}" for s in scopes)]
    collection = obj.modules_collection
    for candidate in candidates:
        try:
            found = collection[candidate]
        except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            continue
        try:
            return found.canonical_path
        except griffe.AliasResolutionError:
            return found.path
    return None


def _directives(text: str) -> str:
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _DIRECTIVE.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        indent = match["indent"]
        kind = "info" if match["kind"] == "seealso" else match["kind"]
        out.append(f"{indent}!!! {kind}")
        body = [match["rest"]] if match["rest"] else []
        i += 1
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > len(indent)):
            body.append(lines[i].strip())
            i += 1
        while body and not body[-1]:
            body.pop()
        out.extend(f"{indent}    {line}" if line else "" for line in body)
        out.append("")
    return "\n".join(out)


def _literal_blocks(text: str) -> str:
    return re.sub(r"(\S)::[ ]*$", r"\1:", text, flags=re.MULTILINE)


def _leading_sessions(text: str) -> str:
    lines = text.splitlines()
    end = next((i for i in range(len(lines) - 1)
                if lines[i].strip() and re.fullmatch(r"-{3,}", lines[i + 1].strip())), len(lines))
    out: list[str] = []
    i = 0
    while i < end:
        if not lines[i].lstrip().startswith(">>>"):
            out.append(lines[i])
            i += 1
            continue
        indent = lines[i][: _indent(lines[i])]
        out.append(f"{indent}```pycon")
        while i < end and lines[i].strip():
            out.append(lines[i])
            i += 1
        out.append(f"{indent}```")
    return "\n".join(out + lines[end:])


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))
