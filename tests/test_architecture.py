"""The architecture page (docs/architecture.md) is a contract: imports go down, never up.

Each module of bp_xp sits on a level; a module may import from its own level and those
below. The test reads every module's imports with ``ast`` (no import is executed) and
names any import that goes up, so the page cannot silently stop being true.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bp_xp"

#: First component of the module path below bp_xp -> level (docs/architecture.md).
LEVELS = {
    "backends": 0, "_atomic": 0, "_book_pickle": 0,
    "debug": 1, "functions": 1, "_im2col": 1, "graph": 1, "gradient": 1, "params": 1, "_checks": 1,
    "layers": 2,
    "sequential": 3, "optim": 3,
    "nets": 4, "convnet": 4, "compile": 4,
    "train": 5, "distributed": 5, "checkpoint": 5,
    "cli": 6,
}
#: Modules outside the levels: any level may use them; they import only the levels named here.
APART = {"data": {"_atomic"}, "testing": {"backends"}}
#: Modules that may import anything: the package's front door.
FRONT = {"__init__", "__main__"}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).with_suffix("").parts


def _bp_xp_imports(parts):
    """First path components (below bp_xp) of every bp_xp module that ``parts`` imports."""
    path = PACKAGE.joinpath(*parts).with_suffix(".py")
    package = list(parts[:-1]) if parts[-1] != "__init__" else list(parts[:-1])
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
            target = [*base, *(node.module.split(".") if node.module else [])]
            if not target:  # `from . import x` at the top of the package: its front door
                if [alias.name for alias in node.names] == ["__version__"]:
                    continue  # metadata, not code
                target = ["__init__"]
            found.add(target[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bp_xp."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("bp_xp."):
                    found.add(alias.name.split(".")[1])
    return found


def test_every_module_has_a_place_on_the_page():
    top = {parts[0] for parts in _modules()}
    unplaced = top - set(LEVELS) - set(APART) - FRONT
    assert not unplaced, f"add {sorted(unplaced)} to docs/architecture.md and LEVELS here"


@pytest.mark.parametrize("parts", list(_modules()), ids=lambda p: ".".join(p))
def test_imports_go_down_never_up(parts):
    top = parts[0]
    if top in FRONT:
        return
    imported = _bp_xp_imports(parts) - {top}
    if top in APART:
        assert imported <= APART[top], f"bp_xp.{'.'.join(parts)} imports {sorted(imported)}"
        return
    level = LEVELS[top]
    # the front door counts as the top level; modules apart (data) depend on no level
    upward = sorted(name for name in imported
                    if {**LEVELS, "__init__": max(LEVELS.values())}.get(name, -1) > level)
    assert not upward, (f"bp_xp.{'.'.join(parts)} (level {level}) imports {upward} from above "
                        "its level; see docs/architecture.md")


def test_only_the_backends_name_array_libraries():
    libraries = {"torch", "cupy", "jax", "dask", "array_api_strict"}
    offenders = []
    for parts in _modules():
        if parts[0] in ("backends", "testing", "distributed", "compile", "cli", "__init__"):
            continue  # backends by definition; the rest name them for dispatch or errors only
        tree = ast.parse(PACKAGE.joinpath(*parts).with_suffix(".py").read_text())
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            offenders += [f"{'.'.join(parts)}: {n}" for n in names if n.split(".")[0] in libraries]
    assert not offenders, offenders
