"""bp_xp.graph: what the recorder captures, the DOT it writes, the pictures it renders."""

import importlib.util
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import bp_xp
from bp_xp.graph import GraphvizUnavailableError, record, recordable
from bp_xp.layers import AddLayer, MulLayer, Relu, Sigmoid

ROOT = Path(__file__).resolve().parent.parent


def _example(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _graphviz_or_skip():
    pytest.importorskip("graphviz", reason="rendering needs the graphviz Python package")
    if shutil.which("dot") is None:
        pytest.skip("rendering needs the Graphviz `dot` binary on PATH")


def _edge_labels(dot):
    """(source, target, forward label) and (source, target, backward label) from DOT text."""
    forward, backward = [], []
    for src, dst, attrs in re.findall(r"^\s*(\w+) -> (\w+) \[(.*)\];$", dot, flags=re.M):
        label = re.search(r'label="([^"]*)"', attrs)
        (backward if "dir=back" in attrs else forward).append((src, dst, label and label[1]))
    return forward, backward


def test_apple_graph_carries_the_books_values():
    g = _example("apple_graph").apple_graph()
    forward, backward = _edge_labels(g.to_dot())
    assert sorted(label for *_, label in forward) == sorted(["100", "2", "200", "1.1", "220"])
    assert sorted(label for *_, label in backward) == sorted(["2.2", "110", "1.1", "200", "1"])
    assert [str(node) for node in g.nodes] == ["apple", "apple_num", "tax", "×", "×", "price"]


def test_apple_orange_graph_carries_the_books_values():
    g = _example("apple_graph").apple_orange_graph()
    edges = {(e.source.label, e.target.label, e.slot): e for e in g.edges}
    expected = {  # (source, target, slot): (forward, backward), the book's figure
        ("apple", "×", 0): (100, 2.2), ("apple_num", "×", 1): (2, 110),
        ("orange", "×", 0): (150, 3.3), ("orange_num", "×", 1): (3, 165),
        ("tax", "×", 1): (1.1, 650), ("×", "price", 0): (715, 1), ("+", "×", 0): (650, 1.1),
    }
    for key, (fwd, bwd) in expected.items():
        assert (edges[key].forward, edges[key].backward) == pytest.approx((fwd, bwd)), key
    forward_only = g.to_dot(show="forward")
    assert "red" not in forward_only and 'label="715"' in forward_only
    backward_only = g.to_dot(show="backward")
    assert 'label="715"' not in backward_only and 'label="3.3"' in backward_only


def test_fan_out_draws_one_input_with_an_edge_per_use():
    f_and_grads = _example("staged_computation").f_and_grads
    x, y = 3.0, -4.0
    with record(x=x, y=y) as g:
        f, dx, dy = f_and_grads(x, y)
    from_x = [e for e in g.edges if e.source.label == "x"]
    assert len(from_x) == 3  # x + sigmoid(y), sigmoid(x), x + y
    assert sum(e.backward for e in from_x) == pytest.approx(2.059569795572165, abs=1e-12)
    assert sum(e.backward for e in g.edges if e.source.label == "y") == pytest.approx(dy)
    assert {n.kind for n in g.nodes} == {"input", "op", "output"}
    assert len([n for n in g.nodes if n.kind == "op"]) == 8


def test_constants_are_labelled_by_value_and_names_can_come_later():
    x = 0.5
    with record() as g:
        m, a = MulLayer(), AddLayer()
        y = a.forward(m.forward(x, -1), 1)
    g.name(x, "x")  # naming after the block works too
    g.name(y, "y")
    labels = [n.label for n in g.nodes]
    assert labels == ["x", "-1", "1", "×", "+", "y"]


def test_arrays_are_shown_by_shape_dtype_and_first_values_as_they_were(xb):
    h = np.array([[1.0, -2.0, 3.0], [-4.0, 5.0, -6.0]])
    relu = Relu()
    with record() as g:
        out = relu.forward(xb.asarray(h, "float32"))
        relu.backward(xb.asarray(np.ones((2, 3)), "float32"))
    edge = g.edges[0]
    text = bp_xp.graph.format_value(edge.forward)
    assert text == "float32 (2, 3)\n[1, -2, 3, …]"
    assert bp_xp.graph.format_value(edge.backward) == "float32 (2, 3)\n[1, 0, 1, …]"
    if xb.case.family == "numpy" and not xb.case.readonly:
        out += 100  # changed after recording: the picture keeps what flowed
        assert bp_xp.graph.format_value(g.edges[-1].forward).endswith("[1, 0, 3, …]")


def test_zero_d_arrays_print_as_numbers(xb):
    s = Sigmoid()
    with record() as g:
        s.forward(xb.asarray(np.array(0.0), "float32"))
        s.backward(xb.asarray(np.array(1.0), "float32"))
    assert str(g.edges[0]) == "input 0 -> sigmoid: 0 | 0.25"


def test_not_recording_runs_the_layers_own_functions():
    before = {cls: (cls.__dict__["forward"], cls.__dict__["backward"])
              for cls in (MulLayer, AddLayer, Relu, Sigmoid)}
    with record():
        assert MulLayer.__dict__["forward"] is not before[MulLayer][0]  # wrapped inside
        with record():  # nesting keeps the wrappers until the outermost block ends
            pass
        assert MulLayer.__dict__["forward"] is not before[MulLayer][0]
    after = {cls: (cls.__dict__["forward"], cls.__dict__["backward"]) for cls in before}
    assert after == before
    with pytest.raises(ZeroDivisionError), record():
        bp_xp.layers.DivLayer().forward(1, 0)
    assert MulLayer.__dict__["forward"] is before[MulLayer][0]  # restored after an error


def test_nested_recorders_get_the_innermost_calls():
    with record() as outer:
        MulLayer().forward(2.0, 3.0)
        with record() as inner:
            AddLayer().forward(2.0, 3.0)
    assert [n.label for n in outer.nodes if n.kind == "op"] == ["×"]
    assert [n.label for n in inner.nodes if n.kind == "op"] == ["+"]


def test_a_user_layer_can_be_marked():
    @recordable("tanh")
    class Tanh(bp_xp.Layer):
        def forward(self, x):
            self.out = np.tanh(x)
            return self.out

        def backward(self, dout):
            return dout * (1 - self.out ** 2)

    with record(x=(x := np.zeros(2))) as g:
        layer = Tanh()
        layer.forward(x)
        layer.backward(np.ones(2))
    assert [str(e) for e in g.edges][0].startswith("x -> tanh: float64 (2,)")


def test_dot_escapes_names_and_rejects_unknown_show():
    with record(**{'say "hi"': (v := 1.5)}) as g:
        MulLayer().forward(v, 2.0)
    assert 'label="say \\"hi\\""' in g.to_dot()
    with pytest.raises(ValueError, match="show must be 'both', 'forward' or 'backward'"):
        g.to_dot(show="sideways")
    with pytest.raises(ValueError, match="give it a suffix"):
        g.save("picture")


def test_dot_and_notebook_bundle_without_graphviz(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz fails
    g = _example("apple_graph").apple_graph()
    with pytest.raises(GraphvizUnavailableError, match="pip install graphviz"):
        g.to_svg()
    assert g._repr_svg_() is None
    bundle = g._repr_mimebundle_()
    assert "image/svg+xml" not in bundle and bundle["text/vnd.graphviz"].startswith("digraph")
    assert g.save(tmp_path / "apple.dot").read_text(encoding="utf-8") == g.to_dot()


def test_svg_and_png_render_with_graphviz(tmp_path):
    _graphviz_or_skip()
    g = _example("apple_graph").apple_orange_graph()
    svg = g.to_svg(show="both")
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    for value in ("715", "650", "2.2", "110", "3.3", "165", "price", "apple"):
        assert value in texts
    assert g._repr_mimebundle_()["image/svg+xml"] == svg
    assert g.save(tmp_path / "apple.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("stem", list(_example("apple_graph").FIGURES))
def test_committed_figures_are_current(stem):
    """docs/img's SVGs show the labels the example draws now (rerun the example if not)."""
    build, show = _example("apple_graph").FIGURES[stem]
    dot = build().to_dot(show=show)
    expected = sorted(re.findall(r'label="([^"]*)"', dot))
    svg = (ROOT / "docs" / "img" / f"{stem}.svg").read_text(encoding="utf-8")
    drawn = sorted(t.replace("&#45;", "-") for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg))
    assert drawn == expected, "run `python examples/apple_graph.py` to redraw docs/img"


def test_svg_shows_the_values_of_the_last_backward(tmp_path):
    _graphviz_or_skip()
    x, y = 3.0, -4.0
    with record(x=x, y=y) as g:
        f = g.name(MulLayer().forward(AddLayer().forward(x, y), 7.0), "f")  # (x + y) * 7
    g.backward(f)

    def texts(svg):
        return [t.replace("&#45;", "-") for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]

    first = texts(g.to_svg())
    assert first.count("7") == 5 and "70" not in first  # 7 back to x, y, x + y; the constant 7 twice
    g.backward(f, dout=10.0)
    second = texts(g.save(tmp_path / "f.svg").read_text(encoding="utf-8"))
    assert second.count("70") == 3 and "-10" in second and second.count("7") == 2


def test_the_test_extra_and_ci_bring_the_rendering_dependencies():
    """`pip install .[test]` brings the graphviz package; CI installs Graphviz's dot."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    assert any(r.startswith("graphviz") for r in extras["graph"])
    assert "bp_xp[graph]" in extras["test"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "apt-get install -y -qq graphviz" in ci and "\nensure_dot\n" in ci


def test_every_layer_class_gets_its_own_functions_back():
    from bp_xp.layers.base import Layer, registered_layers

    def functions():
        own = {cls: (cls.__dict__.get("forward"), cls.__dict__.get("backward"))
               for cls in registered_layers().values()}
        return own, Layer.__dict__["__init_subclass__"]

    before = functions()
    with record():
        assert bp_xp.layers.Affine.__dict__["forward"] is not before[0][bp_xp.layers.Affine][0]
    assert functions() == before


def test_a_name_that_is_also_an_option_goes_in_a_dict():
    v, w = 0.5, 2.0
    with record({"head": v}, head=1, w=w) as g:
        f = MulLayer().forward(v, w)
    assert g.backward(f) == pytest.approx({"head": 2.0, "w": 0.5})
    with pytest.raises(ValueError, match="head must be an integer >= 0"):
        with record(head=-1):
            pass
