"""The documentation's code runs, and prints what the pages say it prints.

Every ```pycon block of the pages in ``PAGES`` is a doctest. A page's blocks run in order in
one namespace, on NumPy, as a reader would type them into one interpreter. A block whose
first line is a marker comment is treated specially:

``>>> # backend: torch:cuda``
    The block is written for that backend. On the NumPy run each quoted ``"torch:cuda"``
    becomes ``"numpy"``; then the block runs again as written, on that backend, from the
    namespace the page had before it (skipped, with the reason, where the backend is not
    available here; a failure instead where ``BP_XP_REQUIRE`` names it).
``>>> # requires: jax``
    The block only makes sense on that backend: it runs where the backend is available and
    is skipped, with the reason, elsewhere. It must not define names later blocks use.

Unmarked blocks may use array-api-strict: like pytest, it is part of the ``test`` extra, and
its extra devices are the only way to show device handling on a machine without a GPU.

The ```python blocks with a ``title`` on ``testing.md`` are files of an example test suite;
they are written to a temporary directory and run with pytest (``pytester``).
"""

from __future__ import annotations

import doctest
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import bp_xp
from bp_xp.testing import CASES

DOCS = Path(__file__).resolve().parent.parent / "docs"
#: Pages whose code is run. Other pages (performance.md...) belong to their authors' tests.
PAGES = ("index.md", "getting-started.md", "tutorial.md", "graph.md", "backends.md", "porting.md",
         "testing.md")
#: Fence languages allowed on those pages: pycon runs; shell, text and file blocks do not.
NOT_PYTHON = {"bash", "console", "text", "toml", "ini"}
TESTING_PAGE = "testing.md"

_FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<lang>[\w-]*)(?P<info>.*)$")
_MARKER = re.compile(r"^>>> # (?P<kind>backend|requires): (?P<spec>\S+)\s*$")
_TITLE = re.compile(r'title="(?P<title>[^"]+)"')
_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # 1-based line of the block's first content line
    lang: str
    title: str | None
    text: str

    @property
    def marker(self) -> tuple[str, str] | None:
        match = _MARKER.match(self.text.splitlines()[0]) if self.text else None
        return (match["kind"], match["spec"]) if match else None

    @property
    def where(self) -> str:
        return f"docs/{self.page}:{self.line}"


def blocks(page: str) -> list[Block]:
    """The fenced code blocks of a page, dedented to their fence."""
    lines = (DOCS / page).read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent = len(opening["indent"])
        start, i = i + 1, i + 1
        while i < len(lines) and lines[i].strip() != "```":
            i += 1
        assert i < len(lines), f"docs/{page}:{start}: code block is never closed"
        body = "\n".join(line[indent:] for line in lines[start:i]) + "\n"
        title = _TITLE.search(opening["info"])
        found.append(Block(page, start + 1, opening["lang"], title and title["title"], body))
        i += 1
    return found


def _unavailable(spec: str) -> str | None:
    """Why ``spec`` cannot run here (None when it can)."""
    try:
        backend = bp_xp.resolve_backend(spec)
        backend.xp.sum(backend.asarray([1.0], dtype="float32"))
    except Exception as exc:  # any failure to start a backend means "not here"
        return f"{spec} is not available here: {exc}"
    return None


def _required(spec: str) -> bool:
    names = {n.strip() for n in os.environ.get("BP_XP_REQUIRE", "").split(",") if n.strip()}
    return "all" in names or spec.partition(":")[0] in names


def _skip_or_fail(reason: str, spec: str) -> None:
    if _required(spec):
        pytest.fail(f"BP_XP_REQUIRE names {spec.partition(':')[0]}, but {reason}")
    pytest.skip(reason)


def _on_numpy(block: Block) -> str:
    """The block's text with its backend's quoted name replaced by "numpy"."""
    kind, spec = block.marker or ("", "")
    if kind != "backend":
        return block.text
    pattern = re.compile(r"""(["'])""" + re.escape(spec) + r"\1")
    assert pattern.search(block.text), (
        f"{block.where}: marked '# backend: {spec}' but never names \"{spec}\"")
    return pattern.sub('"numpy"', block.text)


def _run(block: Block, text: str, globs: dict[str, Any]) -> None:
    """Run ``text`` as a doctest in ``globs`` (kept); fail with the doctest report."""
    test = doctest.DocTestParser().get_doctest(
        text, globs, name=block.where, filename=str(DOCS / block.page), lineno=block.line - 1)
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=_FLAGS)
    with _jax_x64_restored():
        runner.run(test, out=report.append, clear_globs=False)
    globs.update(test.globs)  # DocTest ran in a copy: keep what the block defined
    if runner.failures:
        pytest.fail(f"{block.where} printed something else:\n" + "".join(report), pytrace=False)


class _jax_x64_restored:
    """Blocks may switch JAX's float64 off to show the default; the suite needs it back."""

    def __enter__(self) -> None:
        self.jax = sys.modules.get("jax")
        self.x64 = self.jax.config.jax_enable_x64 if self.jax else None

    def __exit__(self, *exc: object) -> None:
        if self.jax is not None:
            self.jax.config.update("jax_enable_x64", self.x64)


@dataclass
class PageRun:
    """A page's NumPy run: why requires-blocks were left out, the namespace before each block."""

    skipped: dict[int, str]
    before: dict[int, dict[str, Any]]


_RUNS: dict[str, PageRun] = {}


def run_page(page: str) -> PageRun:
    """Run a page's pycon blocks in order on NumPy, once per test session."""
    if page not in _RUNS:
        globs: dict[str, Any] = {"__name__": f"docs_{Path(page).stem.replace('-', '_')}"}
        run = PageRun(skipped={}, before={})
        for index, block in enumerate(b for b in blocks(page) if b.lang == "pycon"):
            kind, spec = block.marker or ("", "")
            if kind == "requires" and (reason := _unavailable(spec)):
                run.skipped[index] = reason
                continue
            if kind == "backend":
                run.before[index] = dict(globs)  # shallow: marked blocks build their own arrays
            _run(block, _on_numpy(block), globs)
        _RUNS[page] = run
    return _RUNS[page]


def _pycon_pages() -> list[str]:
    return [p for p in PAGES if any(b.lang == "pycon" for b in blocks(p))]


def _marked_blocks(kind: str) -> list[Any]:
    params = []
    for page in _pycon_pages():
        for index, block in enumerate(b for b in blocks(page) if b.lang == "pycon"):
            if block.marker and block.marker[0] == kind:
                params.append(pytest.param(page, index, block,
                                           id=f"{page}:{block.line}-{block.marker[1]}"))
    return params


# -- the pages' code runs --------------------------------------------------------------------


@pytest.mark.parametrize("page", _pycon_pages())
def test_page_runs_on_numpy(page: str) -> None:
    """Every block but the requires-blocks of missing backends ran and printed as shown."""
    run = run_page(page)
    pycon = [b for b in blocks(page) if b.lang == "pycon"]
    assert len(pycon) > len(run.skipped)


@pytest.mark.parametrize(("page", "index", "block"), _marked_blocks("requires"))
def test_requires_block_ran_where_its_backend_is(page: str, index: int, block: Block) -> None:
    run = run_page(page)
    if index in run.skipped:
        _skip_or_fail(run.skipped[index], block.marker[1])
    assert _unavailable(block.marker[1]) is None


@pytest.mark.parametrize(("page", "index", "block"), _marked_blocks("backend"))
def test_backend_block_runs_on_its_backend(page: str, index: int, block: Block) -> None:
    spec = block.marker[1]
    if reason := _unavailable(spec):
        _skip_or_fail(reason, spec)
    globs = dict(run_page(page).before[index])
    _run(block, block.text, globs)


# -- the pages keep to the rules that make the above meaningful ------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_every_python_block_is_run(page: str) -> None:
    """Python code on these pages is pycon (run here) or, on testing.md, a file run below."""
    for block in blocks(page):
        if block.lang == "pycon":
            assert block.text.startswith(">>> "), f"{block.where}: a pycon block starts with >>>"
            assert ">>> # backend:" not in block.text[4:] and ">>> # requires:" not in block.text[4:], (
                f"{block.where}: a marker must be the block's first line")
        elif block.lang == "python":
            assert page == TESTING_PAGE and block.title, (
                f"{block.where}: write Python as ```pycon so that the test suite runs it")
        else:
            assert block.lang in NOT_PYTHON, f"{block.where}: unexpected code block {block.lang!r}"


def test_the_tutorial_has_only_code_that_runs() -> None:
    tutorial = blocks("tutorial.md")
    assert len(tutorial) >= 10
    assert {b.lang for b in tutorial} == {"pycon"}, "every code block of the tutorial must run"


def test_backend_markers_name_real_backends() -> None:
    for page in PAGES:
        for block in blocks(page):
            if block.marker:
                name = block.marker[1].partition(":")[0]
                assert name in bp_xp.BACKEND_NAMES, f"{block.where}: unknown backend {name!r}"


# -- testing.md: its example suite passes on every available backend ------------------------


def _testing_page_files() -> dict[str, str]:
    files = {b.title: b.text for b in blocks(TESTING_PAGE) if b.lang == "python"}
    assert set(files) == {"conftest.py", "tanh_layer.py", "test_tanh_layer.py"}, sorted(files)
    return files


def _rows_per_test(fast_only: bool = False) -> tuple[int, int]:
    """(available, unavailable) backend x dtype rows of the matrix, counted here.

    ``fast_only`` leaves out the slow rows (JAX, Dask), as ``-m "not slow"`` does.
    """
    available = unavailable = 0
    for case in CASES:
        if not case.values:  # rows like torch:meta run only tests marked no_values
            continue
        if fast_only and case.slow:
            continue
        rows = 2 if case.float64 else 1
        if _unavailable(case.spec):
            unavailable += rows
        else:
            available += rows
    return available, unavailable


def _write_example_suite(pytester: pytest.Pytester) -> int:
    files = _testing_page_files()
    for name, text in files.items():
        (pytester.path / name).write_text(text, encoding="utf-8")
    return len(re.findall(r"^def test_\w+\(xb, dtype", files["test_tanh_layer.py"], flags=re.M))


@pytest.mark.parametrize("lane", [
    pytest.param("fast", id="fast_rows"),
    pytest.param("all", id="every_row", marks=pytest.mark.slow),  # JAX compiles, Dask runs graphs
])
def test_example_suite_of_testing_page_passes(pytester: pytest.Pytester,
                                              monkeypatch: pytest.MonkeyPatch, lane: str) -> None:
    """The page's suite, as its reader runs it: ``-m "not slow"`` (fast rows) and plain (all)."""
    monkeypatch.delenv("BP_XP_REQUIRE", raising=False)
    n_tests = _write_example_suite(pytester)
    assert n_tests >= 2
    available, unavailable = _rows_per_test(fast_only=lane == "fast")
    lane_args = ["-m", "not slow"] if lane == "fast" else []
    result = pytester.runpytest("-p", "no:cacheprovider", "-W", "error", "-q", *lane_args)
    slow_rows = sum(2 if c.float64 else 1 for c in CASES if c.values and c.slow)
    result.assert_outcomes(passed=n_tests * available, skipped=n_tests * unavailable,
                           deselected=n_tests * slow_rows if lane == "fast" else 0)


def test_bp_xp_require_turns_the_example_suites_skips_into_failures(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = [c for c in CASES if _unavailable(c.spec)]
    if not missing:
        pytest.skip("every backend of the matrix is available here: nothing to require")
    # a family whose rows are all fast, where there is one: then only the fast rows need to run
    family = next((c.family for c in missing if not c.slow), missing[0].family)
    fast = all(not c.slow for c in CASES if c.family == family)
    n_tests = _write_example_suite(pytester)
    monkeypatch.setenv("BP_XP_REQUIRE", family)
    # value-free rows (torch:meta) run only tests marked no_values; the example has none
    rows = sum(2 if c.float64 else 1 for c in missing if c.family == family and c.values)
    lane_args = ["-m", "not slow"] if fast else []
    result = pytester.runpytest("-p", "no:cacheprovider", "-W", "error", "-q", *lane_args)
    outcomes = result.parseoutcomes()  # the fixture fails, so pytest counts errors
    assert outcomes.get("failed", 0) + outcomes.get("errors", 0) == n_tests * rows
    result.stdout.fnmatch_lines(["*required by BP_XP_REQUIRE but unavailable*"])


# -- the site's Griffe extension renders numpydoc's reST as Markdown ------------------------


@pytest.mark.slow
def test_docstring_rest_becomes_markdown() -> None:
    griffe = pytest.importorskip("griffe", reason="the docs extra is not installed")
    sys.path.insert(0, str(DOCS / "_griffe"))
    try:
        import sphinx_roles
    finally:
        sys.path.remove(str(DOCS / "_griffe"))
    package = griffe.load("bp_xp", search_paths=[str(DOCS.parent)])
    where = package["nets"]
    text = ("Uses :func:`namespace_of` and :class:`~bp_xp.nonexistent.Thing`::\n\n"
            ">>> 1 + 1\n2\n\n.. warning::\n   Careful.\n\nExamples\n--------\n>>> 3\n3\n")
    converted = sphinx_roles.convert(text, where)
    assert '<autoref identifier="bp_xp.backends._namespace.namespace_of" optional>' in converted
    assert "`Thing`" in converted and ":class:" not in converted  # unknown target: plain code
    assert "```pycon\n>>> 1 + 1\n2\n```" in converted          # before the sections: fenced
    assert "!!! warning\n    Careful." in converted
    assert converted.endswith("Examples\n--------\n>>> 3\n3")     # numpydoc's own section kept


# -- the built site: markers stripped, prompts not copied, no formatter missing --------------


def _docs_hooks() -> Any:
    """docs/hooks.py, the MkDocs hook, imported by path (docs/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("page", PAGES)
def test_hook_removes_exactly_the_marker_lines(page: str) -> None:
    """The site shows the code without the test runner's markers; the source keeps them."""
    source = (DOCS / page).read_text(encoding="utf-8")
    shown = _docs_hooks().strip_markers(source)
    n_marked = sum(1 for b in blocks(page) if b.marker)
    removed = [line for line in source.splitlines() if _MARKER.match(line.strip())]
    assert len(removed) == n_marked
    assert not any(_MARKER.match(line.strip()) for line in shown.splitlines())
    kept = [line for line in source.splitlines() if not _MARKER.match(line.strip())]
    assert shown.splitlines() == kept  # nothing else changed


def test_hook_keeps_marker_text_outside_code_blocks() -> None:
    hooks = _docs_hooks()
    text = ("Prose.\n\n>>> # requires: jax\n\n!!! note\n\n    ```pycon\n    >>> # backend: torch\n"
            "    >>> 1\n    1\n    ```\n\n~~~text\n>>> # requires: jax\n~~~\n")
    assert hooks.strip_markers(text) == text.replace("    >>> # backend: torch\n", "").replace(
        "~~~text\n>>> # requires: jax\n~~~", "~~~text\n~~~")


# The site's build (mkdocs build --strict) takes about ten seconds: every test that needs it is
# slow, as is the Griffe rendering above (it loads the whole package); CI builds the site anyway.
@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The site built with ``mkdocs build --strict`` (docs extra needed), and its build log."""
    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    pytest.importorskip("material", reason="the docs extra is not installed")
    pytest.importorskip("mkdocstrings_handlers.python", reason="the docs extra is not installed")
    import subprocess

    site = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
                          cwd=DOCS.parent, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    return site, done.stdout + done.stderr


@pytest.mark.slow
def test_built_site_shows_no_markers(built_site: tuple[Path, str]) -> None:
    site, _ = built_site
    pages = list(site.rglob("*.html"))
    assert len(pages) > 10
    for html in pages:
        text = html.read_text(encoding="utf-8")
        assert "# requires:" not in text and "# backend:" not in text, html.name
    tutorial = (site / "tutorial.html").read_text(encoding="utf-8")
    assert 'src="img/training-curve.png"' in tutorial
    assert (site / "img" / "training-curve.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_build_log_asks_for_no_formatter(built_site: tuple[Path, str]) -> None:
    """mkdocstrings formats signatures with Ruff (in the docs extra); none missing, no warning."""
    _, log = built_site
    assert "requires either Black or Ruff" not in log
    assert "WARNING" not in log


@pytest.mark.slow
def test_copy_button_copies_only_the_typed_code(built_site: tuple[Path, str]) -> None:
    """Headless Chromium runs docs/javascripts/pycon-copy.js on the built tutorial."""
    import shutil
    import subprocess
    from html.parser import HTMLParser

    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
                    if shutil.which(b)), None)
    if browser is None:
        pytest.skip("no headless Chromium here to run the site's JavaScript")
    site, _ = built_site
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                           (site / "tutorial.html").as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

    class Copies(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.texts: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.texts += [value or "" for name, value in attrs if name == "data-copy"]

    copies = Copies()
    copies.feed(done.stdout)
    pycon = [b for b in blocks("tutorial.md") if b.lang == "pycon"]
    assert len(copies.texts) == len(pycon)
    for block, copied in zip(pycon, copies.texts):
        # What a reader typed, by doctest's rule (a "..." line continues source only right
        # after source; elsewhere it is output), without prompts and without the marker; a
        # blank line closes each compound statement.
        typed, in_source, continued = [], False, False
        for line in block.text.rstrip("\n").splitlines():
            if _MARKER.match(line):
                continue
            if line.startswith(">>>"):
                if continued:
                    typed.append("")
                typed.append(line[4:])
                in_source, continued = True, False
            elif line.startswith("...") and in_source:
                typed.append(line[4:])
                continued = True
            else:
                in_source = False
        assert copied == "\n".join(typed), block.where
        assert ">>>" not in copied
