"""The architecture page (docs/architecture.md) is a contract, enforced here with no exemption list.

Every module of bp_xp sits on a level; the test reads every module's imports with ``ast``
(nothing is executed) and fails when:

- a module imports from a level above its own (imports only go down);
- the imports between bp_xp's modules form a cycle (function-level imports included);
- a module reads a private name (``_name``) that another module defines, whether imported
  (``from .functions import _label_hits``) or as an attribute (``optimizer._state``);
- a module outside ``bp_xp/backends/`` imports an array library (``torch``, ``jax``,
  ``cupy``, ``dask``, ``array_api_strict``; host-side NumPy is allowed, see the page) or
  compares a value with a backend's name (``backend.name == "jax"``): code outside the
  backends asks the backend's spec for a capability instead;
- a module inside ``bp_xp/backends/`` imports anything of bp_xp outside that package, or
  imports the package's front door (``from . import ...``), which only re-exports.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bp_xp"

#: First component of the module path below bp_xp -> level (docs/architecture.md).
LEVELS = {
    "backends": 0, "_atomic": 0, "_book_pickle": 0, "_inplace": 0,
    "debug": 1, "functions": 1, "_im2col": 1, "graph": 1, "gradient": 1, "params": 1,
    "_checks": 1, "_holders": 1,
    "layers": 2,
    "sequential": 3, "optim": 3,
    "nets": 4, "convnet": 4, "compile": 4,
    "train": 5, "distributed": 5, "checkpoint": 5,
    "cli": 6,
}
#: Modules outside the levels: any level may use them; they import only the levels named here.
APART = {"data": {"_atomic", "backends"}, "testing": {"backends", "conformance"},
         "conformance": {"backends", "layers"}}
#: The package's front door (and ``python -m bp_xp``): may import anything.
FRONT = {"__init__", "__main__"}
#: Array libraries only ``bp_xp/backends/`` may import (NumPy is the host's and allowed).
ARRAY_LIBRARIES = {"torch", "cupy", "jax", "jaxlib", "dask", "distributed", "array_api_strict"}
#: The built-in backend names (and aliases) no module outside the backends compares with.
BACKEND_WORDS = {"numpy", "np", "cupy", "torch", "pytorch", "jax", "dask", "array_api_strict",
                 "strict"}


def _modules() -> Iterator[tuple[str, ...]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).with_suffix("").parts


def _tree(parts: tuple[str, ...]) -> ast.Module:
    return _parse(PACKAGE.joinpath(*parts).with_suffix(".py"))


@functools.cache
def _parse(path: Path) -> ast.Module:
    """A module's syntax tree, parsed once per session (the checks only read the trees)."""
    return ast.parse(path.read_text(), filename=str(path))


def _package_of(parts: tuple[str, ...]) -> list[str]:
    return list(parts[:-1])


def _imported_modules(parts: tuple[str, ...]) -> set[tuple[str, ...]]:
    """Full module paths (below bp_xp) that ``parts`` imports."""
    found: set[tuple[str, ...]] = set()
    for _node, target, names in _imports(parts):
        if target == ("__init__",) and names == ["__version__"]:
            continue  # the package's version: metadata, not code
        found.add(target)
    return found


def _imports(parts: tuple[str, ...]) -> Iterator[tuple[ast.AST, tuple[str, ...], list[str]]]:
    """``(node, module path below bp_xp, imported names)`` for every bp_xp import of ``parts``."""
    package = _package_of(parts)
    for node in ast.walk(_tree(parts)):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
            target = (*base, *(node.module.split(".") if node.module else []))
            yield node, (target or ("__init__",)), [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bp_xp."):
            yield node, tuple(node.module.split(".")[1:]), [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("bp_xp."):
                    yield node, tuple(alias.name.split(".")[1:]), []


def _module_file(target: tuple[str, ...]) -> tuple[str, ...] | None:
    """The module (as parts) a target path names: a file, or a package's ``__init__``."""
    if PACKAGE.joinpath(*target).with_suffix(".py").is_file():
        return target
    if PACKAGE.joinpath(*target, "__init__.py").is_file():
        return (*target, "__init__")
    return None


def _resolved(target: tuple[str, ...], names: list[str]) -> set[tuple[str, ...]]:
    """The module files one import statement loads (``from pkg import sub`` is ``pkg.sub``)."""
    module = _module_file(target)
    submodules = {_module_file((*target, n)) for n in names}
    found = {s for s in submodules if s is not None}
    if module is not None and (not names or None in submodules):
        found.add(module)  # a name of the module itself (or a plain import)
    return found


def _edges() -> dict[tuple[str, ...], set[tuple[str, ...]]]:
    """Module -> the bp_xp modules it imports."""
    graph: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
    for parts in _modules():
        targets: set[tuple[str, ...]] = set()
        for _node, target, names in _imports(parts):
            targets |= _resolved(target, names) - {parts}
        graph[parts] = targets
    return graph


def find_cycles() -> list[list[str]]:
    """Every import cycle among bp_xp's modules (one representative path per cycle)."""
    graph = _edges()
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append([".".join(p) for p in stack[stack.index(nxt):]] + [".".join(nxt)])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return cycles


def _defined_private_names(tree: ast.Module) -> set[str]:
    """Private names a module defines: functions, classes, variables, ``self._x``, arguments."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
              and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            names.add(node.attr)  # its own classes' attributes (an outside write is a read too)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".")[0])
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def _all_attribute_names(tree: ast.Module) -> set[str]:
    return {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}


def find_private_reads() -> list[str]:
    """Reads of a private name another module defines (imports and attribute reads)."""
    offenders = []
    ours = set().union(*(_defined_private_names(_tree(parts)) for parts in _modules()))
    for parts in _modules():
        where = ".".join(parts)
        tree = _tree(parts)
        own = _defined_private_names(tree)
        if parts[0] == "backends":
            # A backend file is where an array library's own private attributes may be read
            # (PyTorch's ``_version``): only names that bp_xp itself defines count there.
            own |= {n for n in _all_attribute_names(tree) if n not in ours}
        for node, target, names in _imports(parts):
            for name in names:
                if _module_file((*target, name)) is not None:
                    continue  # a module of the package (``from . import _builtin``), not a name
                if name.startswith("_") and not name.startswith("__"):
                    offenders.append(f"{where}:{node.lineno} imports {name}")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and not node.level and node.module and \
                    not node.module.startswith("bp_xp"):
                continue  # another library's private names are its business, not ours
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__") and node.attr not in own):
                offenders.append(f"{where}:{node.lineno} reads .{node.attr}")
    return offenders


def find_library_imports() -> list[str]:
    """Imports of an array library outside ``bp_xp/backends/``."""
    offenders = []
    for parts in _modules():
        if parts[0] == "backends":
            continue
        for node in ast.walk(_tree(parts)):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            offenders += [f"{'.'.join(parts)}:{node.lineno} imports {n}" for n in names
                          if n.split(".")[0] in ARRAY_LIBRARIES]
    return offenders


def _is_backend_word(node: ast.AST) -> bool:
    return (isinstance(node, ast.Constant) and isinstance(node.value, str)
            and node.value.split(":")[0] in BACKEND_WORDS)


def find_backend_name_comparisons() -> list[str]:
    """Comparisons with a backend's name outside ``bp_xp/backends/`` (``==``, ``in``, ``startswith``)."""
    offenders = []
    for parts in _modules():
        if parts[0] == "backends":
            continue
        for node in ast.walk(_tree(parts)):
            hit = False
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                for operand in operands:
                    if _is_backend_word(operand):
                        hit = True
                    elif isinstance(operand, (ast.Tuple, ast.List, ast.Set)):
                        hit = hit or any(_is_backend_word(e) for e in operand.elts)
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr in ("startswith", "endswith")):
                hit = any(_is_backend_word(a) for a in node.args)
            if hit:
                offenders.append(f"{'.'.join(parts)}:{node.lineno}")
    return offenders


def test_every_module_has_a_place_on_the_page():
    top = {parts[0] for parts in _modules()}
    unplaced = top - set(LEVELS) - set(APART) - FRONT
    assert not unplaced, f"add {sorted(unplaced)} to docs/architecture.md and LEVELS here"


@pytest.mark.parametrize("parts", list(_modules()), ids=lambda p: ".".join(p))
def test_imports_go_down_never_up(parts):
    top = parts[0]
    if top in FRONT:
        return
    imported = {target[0] for target in _imported_modules(parts)} - {top}
    if top in APART:
        assert imported <= APART[top], f"bp_xp.{'.'.join(parts)} imports {sorted(imported)}"
        return
    level = LEVELS[top]
    upward = sorted(name for name in imported
                    if {**LEVELS, "__init__": max(LEVELS.values())}.get(name, -1) > level)
    assert not upward, (f"bp_xp.{'.'.join(parts)} (level {level}) imports {upward} from above "
                        "its level; see docs/architecture.md")


def test_nothing_inside_the_backends_imports_back_up():
    """``bp_xp/backends/`` stands alone; none of its files imports its ``__init__`` (re-exports)."""
    offenders = []
    for parts in _modules():
        if parts[0] != "backends":
            continue
        for node, target, names in _imports(parts):
            for module in _resolved(target, names):
                if module[0] != "backends" or module == ("backends", "__init__"):
                    offenders.append(f"{'.'.join(parts)}:{node.lineno} imports {'.'.join(module)}")
    assert not offenders, offenders


def test_the_backends_front_door_only_re_exports():
    tree = _tree(("backends", "__init__"))
    kinds = {type(node).__name__ for node in tree.body}
    assert kinds <= {"Expr", "ImportFrom", "Import", "Assign", "AnnAssign"}, kinds


def test_no_import_cycle():
    assert find_cycles() == []


def test_no_private_name_of_another_module_is_read():
    assert find_private_reads() == []


def test_no_array_library_is_imported_outside_the_backends():
    assert find_library_imports() == []


def test_no_backend_name_is_compared_outside_the_backends():
    assert find_backend_name_comparisons() == []


def test_the_checks_would_catch_what_they_look_for(tmp_path, monkeypatch):
    """Each check fails on a module written to break it: the checks can fail."""
    fake = tmp_path / "bp_xp"
    (fake / "backends").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "backends" / "__init__.py").write_text("")
    (fake / "a.py").write_text("from .b import f\nimport jax\n"
                               "def g(net, opt):\n    return net.backend.name == 'jax' or opt._state\n")
    (fake / "b.py").write_text("from .a import g\nfrom .c import _hidden\ndef f():\n    pass\n")
    (fake / "c.py").write_text("_hidden = 1\n")
    monkeypatch.setitem(globals(), "PACKAGE", fake)
    assert find_cycles() == [["a", "b", "a"]]
    assert any("_hidden" in o for o in find_private_reads())
    assert any("._state" in o for o in find_private_reads())
    assert find_library_imports() == ["a:2 imports jax"]
    assert find_backend_name_comparisons() == ["a:4"]


def test_every_error_a_traceback_names_as_bp_xp_is_importable_from_bp_xp():
    """A class whose ``__module__`` is ``"bp_xp"`` shows as ``bp_xp.Name``: that name must work."""
    import importlib
    import inspect

    import bp_xp

    missing = []
    for parts in _modules():
        if parts[-1] == "__main__":
            continue
        name = ".".join(("bp_xp", *(p for p in parts if p != "__init__")))
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if (inspect.isclass(value) and value.__module__ == "bp_xp"
                    and getattr(bp_xp, value.__name__, None) is not value):
                missing.append(f"{name}.{attr}")
    assert not missing, f"export these from bp_xp/__init__.py: {sorted(set(missing))}"


def test_the_api_reference_is_generated_from_all_and_covers_every_public_module():
    """docs/api/index.md's table comes from each page's ``__all__``; no public module lacks a page."""
    import importlib.util

    hooks_path = PACKAGE.parent / "docs" / "hooks.py"
    spec = importlib.util.spec_from_file_location("bp_xp_docs_hooks", hooks_path)
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)

    import bp_xp

    pages = hooks.api_pages()
    public = {parts[0] for parts in _modules()
              if not parts[0].startswith("_") and parts[0] not in FRONT}
    covered = {path.split(".")[1] for path in pages}
    assert public - covered == set(), f"add a page under docs/api/ for {sorted(public - covered)}"
    index = hooks.api_index()
    for name in bp_xp.__all__:
        shown = (f"`{name}`", f"- {name}", f"`bp_xp.{name}`")  # a name, a member, a module's page
        assert any(text in index for text in shown), f"bp_xp.{name} is in no API page"
    page = (PACKAGE.parent / "docs" / "api" / "index.md").read_text()
    assert hooks.API_INDEX in page
    assert hooks.API_INDEX not in hooks.on_page_markdown(page)
