"""Backend and device choice: names, errors, moving data, and the matrix's own rules."""

import sys

import numpy as np
import pytest

import bp_xp
from bp_xp import BackendMismatchError, BackendUnavailableError


def test_to_device_and_back_round_trips_values_dtype_and_placement(xb, dtype, rng):
    host = rng.standard_normal((5, 3))
    arr = xb.asarray(host, dtype)
    xb.assert_on_backend(arr, dtype)
    assert bp_xp.backend_of(arr).name == xb.backend.name
    np.testing.assert_array_equal(bp_xp.to_numpy(arr), host.astype(dtype))


def test_backend_asarray_copies_so_the_caller_array_cannot_change(xb):
    host = np.arange(6.0).reshape(2, 3)
    arr = xb.backend.asarray(host, dtype="float32")
    host[0, 0] = 99.0
    assert xb.to_numpy(arr)[0, 0] == 0.0


@pytest.mark.parametrize(
    ("text", "name", "device"),
    [
        ("numpy", "numpy", "cpu"),
        ("np", "numpy", "cpu"),
        ("array_api_strict", "array_api_strict", "CPU_DEVICE"),
        ("array_api_strict:device1", "array_api_strict", "device1"),
        ("dask", "dask", "cpu"),
    ],
)
def test_resolve_backend_names(text, name, device):
    backend = bp_xp.resolve_backend(text)
    assert backend.name == name
    assert str(backend.device) == device or getattr(backend.device, "_device", None) == device


def test_resolve_backend_from_namespace_and_device_object():
    strict = pytest.importorskip("array_api_strict")
    backend = bp_xp.resolve_backend(strict, strict.Device("device2"))
    assert (backend.name, str(backend)) == ("array_api_strict", "array_api_strict:device2")
    assert bp_xp.resolve_backend(np).name == "numpy"


def test_torch_device_strings():
    torch = pytest.importorskip("torch")
    assert bp_xp.resolve_backend("torch").device == torch.device("cpu")
    assert bp_xp.resolve_backend("torch", "cpu").device == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailableError, match="torch.cuda is not available"):
            bp_xp.resolve_backend("torch:cuda:0")


def test_jax_device_strings():
    jax = pytest.importorskip("jax")
    assert bp_xp.resolve_backend("jax:cpu").device == jax.devices("cpu")[0]
    if not any(d.platform == "gpu" for d in jax.devices()):
        with pytest.raises(BackendUnavailableError, match="JAX has no 'gpu' devices"):
            bp_xp.resolve_backend("jax:gpu")


def test_unknown_backend_lists_what_is_available():
    with pytest.raises(BackendUnavailableError, match=r"unknown backend 'tensorflow'.*Installed here: numpy"):
        bp_xp.resolve_backend("tensorflow")
    with pytest.raises(BackendUnavailableError, match="has no device 'device9'; its devices are"):
        bp_xp.resolve_backend("array_api_strict:device9")
    with pytest.raises(BackendUnavailableError, match="only the device 'cpu'"):
        bp_xp.resolve_backend("numpy:gpu")


def test_unavailable_cupy_explains_itself():
    if "cupy" in bp_xp.available_backends():
        pytest.skip("CuPy works here: the unavailable path cannot be exercised")
    with pytest.raises(BackendUnavailableError, match="cupy"):
        bp_xp.resolve_backend("cupy")


def test_available_backends_always_has_numpy_and_only_working_ones():
    names = bp_xp.available_backends()
    assert names[0] == "numpy"
    for name in names:
        backend = bp_xp.resolve_backend(name)
        assert float(bp_xp.to_numpy(backend.xp.sum(backend.asarray([1.0, 2.0])))) == 3.0
    info = {row["name"]: row for row in bp_xp.backend_info()}
    assert set(info) == set(bp_xp.BACKEND_NAMES)
    for name, row in info.items():
        assert row["available"] == (name in names)
        assert row["available"] or row["reason"]


def test_dtype_not_on_device_is_a_clear_error():
    backend = bp_xp.resolve_backend("array_api_strict:no_float64")
    with pytest.raises(BackendUnavailableError,
                       match="'float64' is not available on array_api_strict:no_float64"):
        backend.dtype("float64")
    with pytest.raises(BackendUnavailableError, match="float64"):
        bp_xp.TwoLayerNet(2, 2, 2, backend="array_api_strict:no_float64", dtype="float64")


def test_namespace_of_names_both_sides_of_a_mismatch():
    strict = bp_xp.to_device([1.0], "array_api_strict")
    with pytest.raises(BackendMismatchError, match="x is a numpy array, W is a array_api_strict"):
        bp_xp.namespace_of(np.ones(1), strict, names=("x", "W"))
    with pytest.raises(TypeError, match="at least one array"):
        bp_xp.namespace_of(1.0, None)


@pytest.mark.slow
def test_bp_xp_require_turns_a_skip_into_a_failure(pytester, monkeypatch):
    pytester.makeconftest('pytest_plugins = ["bp_xp.testing"]')
    pytester.makepyfile("def test_any(xb):\n    assert xb.xp is not None\n")
    monkeypatch.setenv("BP_XP_REQUIRE", "")
    result = pytester.runpytest_subprocess("-k", "numpy or cupy", "-p", "no:cacheprovider")
    cupy_ok = "cupy" in bp_xp.available_backends()
    result.assert_outcomes(passed=3 if cupy_ok else 2, skipped=0 if cupy_ok else 1)
    if not cupy_ok:
        monkeypatch.setenv("BP_XP_REQUIRE", "cupy")
        result = pytester.runpytest_subprocess("-k", "numpy or cupy", "-p", "no:cacheprovider")
        result.assert_outcomes(passed=2, errors=1)
        result.stdout.fnmatch_lines(["*cupy is required by BP_XP_REQUIRE but unavailable*"])


def test_readonly_numpy_case_really_is_read_only():
    from bp_xp.testing import CASES, XB

    case = next(c for c in CASES if c.readonly)
    arr = XB(case, bp_xp.resolve_backend(case.spec)).asarray(np.zeros(3), "float32")
    with pytest.raises(ValueError, match="read-only"):
        arr[0] = 1.0


# --------------------------------------------------------------------------------------
# bp_xp.backends: one file per backend, copies out, clear errors (issues 9 and 10)
# --------------------------------------------------------------------------------------


def test_to_numpy_is_a_copy_that_never_shares_memory(xb):
    original = np.arange(6.0).reshape(2, 3)
    arr = xb.asarray(original, "float32")
    host = bp_xp.to_numpy(arr)
    host[...] = -1.0  # writeable, and writing into it must not reach arr
    np.testing.assert_array_equal(bp_xp.to_numpy(arr), original)
    assert not np.shares_memory(bp_xp.to_numpy(arr), bp_xp.to_numpy(arr))


def test_to_numpy_of_a_networks_parameter_cannot_change_the_network(xb):
    net = bp_xp.TwoLayerNet(3, 4, 2, backend=xb.backend, dtype="float32", seed=0)
    before = {key: bp_xp.to_numpy(value) for key, value in net.params.items()}
    for value in net.params.values():
        bp_xp.to_numpy(value)[...] = 123.0
    for key, value in net.params.items():
        np.testing.assert_array_equal(bp_xp.to_numpy(value), before[key])


def test_backend_of_and_spec_of_name_the_cases_backend(xb):
    arr = xb.asarray([1.0, 2.0], "float32")
    assert bp_xp.backends.spec_of(arr).name == xb.backend.name
    assert str(bp_xp.backend_of(arr)) == str(xb.backend)
    assert bp_xp.resolve_backend(str(xb.backend)).device == xb.device  # the string round trips


def test_synchronize_waits_and_never_computes_a_lazy_graph(xb):
    arr = xb.xp.sum(xb.asarray(np.arange(4.0), "float32") * 2)
    computes = []
    if xb.case.family == "dask":
        from dask.callbacks import Callback

        with Callback(start=lambda dsk: computes.append(1)):
            assert xb.backend.synchronize(arr) is None
            assert xb.backend.synchronize() is None
    else:
        assert xb.backend.synchronize(arr) is None
        assert xb.backend.synchronize() is None
    assert computes == []
    assert float(bp_xp.to_numpy(arr)) == 12.0


def test_mixed_backends_suggest_the_first_operands_backend(xb):
    """With two arrays, the first (the network's own) says where to move the other."""
    own = xb.asarray([1.0, 2.0], "float32")
    other_spec = "array_api_strict:device1" if xb.case.family != "array_api_strict" else "numpy"
    other = bp_xp.to_device([1.0, 2.0], other_spec, dtype="float32")
    with pytest.raises(BackendMismatchError) as info:
        bp_xp.namespace_of(own, other, names=("W", "x"))
    message = str(info.value)
    assert f"bp_xp.to_device(x, {str(xb.backend)!r})" in message
    assert "torch:cuda:0" not in message or str(xb.backend) == "torch:cuda:0"


def test_mixed_devices_suggest_the_first_operands_device():
    own = bp_xp.to_device([1.0], "array_api_strict:device1")
    other = bp_xp.to_device([1.0], "array_api_strict")
    with pytest.raises(BackendMismatchError,
                       match=r"W is on .*device1.*x is on .*CPU_DEVICE.*"
                             r"bp_xp.to_device\(x, 'array_api_strict:device1'\)"):
        bp_xp.namespace_of(own, other, names=("W", "x"))


@pytest.mark.parametrize(("typo", "meant"), [("troch", "torch"), ("numpi", "numpy"),
                                             ("jaxx", "jax"), ("array_api_strikt", "array_api_strict"),
                                             ("pytorc", "torch")])
def test_a_typo_in_a_backend_name_gets_did_you_mean(typo, meant):
    with pytest.raises(BackendUnavailableError,
                       match=f"unknown backend '{typo}:cpu'; did you mean '{meant}'\\?"):
        bp_xp.resolve_backend(f"{typo}:cpu")


def test_a_name_like_no_backend_gets_no_guess():
    with pytest.raises(BackendUnavailableError) as info:
        bp_xp.resolve_backend("tensorflow")
    assert "did you mean" not in str(info.value)


def _accepted_float_forms(case) -> list[tuple[object, str]]:
    forms: list[tuple[object, str]] = [("float32", "float32"), (np.float32, "float32"),
                                       (np.dtype("float32"), "float32"), ("f4", "float32")]
    if case.float64:
        forms += [("float64", "float64"), (float, "float64"), (np.float64, "float64"),
                  (np.dtype("float64"), "float64")]
    try:
        import torch
    except ImportError:
        pass
    else:
        forms.append((torch.float32, "float32"))
    return forms


def test_float_dtype_accepts_every_spelling_of_a_float(xb):
    for given, name in _accepted_float_forms(xb.case):
        assert xb.backend.float_dtype(given) == xb.dtype(name), given
        assert bp_xp.backends.float_dtype(xb.backend, given) == xb.dtype(name)


@pytest.mark.parametrize("given", ["int32", np.int32, bool, np.bool_, "complex64", np.complex128,
                                   int, "uint8", "bogus"])
def test_float_dtype_refuses_what_is_not_a_float_naming_it_and_the_choices(xb, given):
    with pytest.raises(bp_xp.backends.DTypeError) as info:
        xb.backend.float_dtype(given)
    message = str(info.value)
    assert isinstance(info.value, TypeError) and isinstance(info.value, bp_xp.BackendError)
    assert (repr(given) if not isinstance(given, str) else f"'{given}'") in message
    choices = message.split("must be one of ")[1].split(" on ")[0]
    assert choices == ("float32, float64" if xb.case.float64 else "float32")


def test_float64_on_a_device_without_it_names_the_float_dtypes_it_has():
    backend = bp_xp.resolve_backend("array_api_strict:no_float64")
    with pytest.raises(BackendUnavailableError,
                       match=r"<class 'float'> \(float64\) is not available on "
                             r"array_api_strict:no_float64; its float dtypes are float32"):
        backend.float_dtype(float)


def test_one_dtype_name_for_every_spelling():
    from bp_xp.backends import dtype_name

    strict = pytest.importorskip("array_api_strict")
    torch = pytest.importorskip("torch")
    jnp = pytest.importorskip("jax.numpy")
    for given in ("float32", " float32", "f4", np.float32, np.dtype("float32"), torch.float32,
                  strict.float32, jnp.float32, jnp.zeros(1, dtype=jnp.float32).dtype):
        assert dtype_name(given) == "float32", given
    assert [dtype_name(d) for d in (float, "float", np.float64, torch.float64)] == ["float64"] * 4
    assert dtype_name(torch.int32) == "int32" and dtype_name(bool) == "bool"


def test_errors_print_as_bp_xp_names():
    import traceback

    for cls in (bp_xp.BackendError, BackendUnavailableError, BackendMismatchError,
                bp_xp.backends.DTypeError):
        assert cls.__module__ == "bp_xp"
    try:
        bp_xp.resolve_backend("numpy:cuda")
    except BackendUnavailableError as exc:
        last = traceback.format_exception_only(type(exc), exc)[-1]
    assert last.startswith("bp_xp.BackendUnavailableError: backend 'numpy' has only")


def test_install_hints_name_one_command_that_works_from_a_checkout():
    from bp_xp.backends._util import require

    with pytest.raises(BackendUnavailableError,
                       match=r'install it from a bp_xp checkout with: pip install -e "\.\[torch\]"'):
        require("bp_xp_no_such_module", "torch", "torch")
    for name in bp_xp.BACKEND_NAMES:
        extra = bp_xp.backends.get_spec(name).extra
        assert extra in ("numpy", "test") or extra == name


def test_every_backend_file_declares_one_spec_that_is_registered():
    from bp_xp.backends import BackendSpec, get_spec

    for name in bp_xp.BACKEND_NAMES:
        module = __import__(f"bp_xp.backends.{name}", fromlist=["SPEC"])
        assert isinstance(module.SPEC, BackendSpec), f"bp_xp/backends/{name}.py has no SPEC"
        assert module.SPEC.name == name and get_spec(name) is module.SPEC
        assert module.SPEC.kernels is getattr(module, "KERNELS", module.SPEC.kernels)
    from bp_xp.testing import CASES

    assert {case.family for case in CASES} == set(bp_xp.BACKEND_NAMES)


def test_the_backends_table_fits_in_100_columns(capsys):
    from bp_xp.cli import main

    assert main(["backends"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 100
    starts = [line.split()[0] for line in lines[1:] if not line[:1].isspace()]
    assert starts == list(bp_xp.BACKEND_NAMES)


def test_assert_close_still_fails_on_a_wrong_value(xb, dtype):
    rtol, atol = bp_xp.testing.TOLERANCES[dtype]
    expected = np.array([1.0, -2.0, 3.0])
    actual = xb.asarray(expected, dtype)
    xb.assert_close(actual, expected * (1 + rtol / 10), dtype)
    with pytest.raises(AssertionError):
        xb.assert_close(actual, expected * (1 + rtol * 10), dtype)
    with pytest.raises(AssertionError, match="shape"):
        xb.assert_close(actual, expected[:2], dtype)
    xb.assert_equal(actual, expected, dtype)
    with pytest.raises(AssertionError):
        xb.assert_equal(actual, expected + 1, dtype)


@pytest.mark.slow
def test_the_plugin_reports_the_matrix_in_the_header_and_the_summary(pytester):
    pytester.makeconftest('pytest_plugins = ["bp_xp.testing"]')
    pytester.makepyfile("def test_any(xb):\n    assert xb.xp is not None\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", "numpy or cupy or strict")
    out = result.stdout.str()
    result.stdout.fnmatch_lines(["bp_xp test matrix*", "  numpy * runs on numpy",
                                 "  strict_device1 * runs on array_api_strict:device1"])
    result.stdout.fnmatch_lines(["*bp_xp matrix: tests per backend case*", "numpy * 1 passed",
                                 "numpy_readonly * 1 passed", "strict_no_float64 * 1 passed"])
    if "cupy" not in bp_xp.available_backends():
        result.stdout.fnmatch_lines(["  cupy * skipped: *cupy*", "cupy * 1 skipped"])
    assert "torch_cpu  " not in out.split("tests per backend case")[-1]  # deselected: not counted


def test_slow_rows_leaves_the_named_rows_of_one_test_to_the_slow_lane(pytester):
    pytester.makeconftest('pytest_plugins = ["bp_xp.testing"]')
    pytester.makepyfile(
        "import pytest\n"
        "@pytest.mark.slow_rows('numpy_readonly')\n"
        "def test_marked(xb):\n    pass\n"
        "def test_plain(xb):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "-m", "not slow", "-k", "numpy",
                                "--collect-only", "-q")
    collected = {line for line in result.stdout.lines if "::" in line}
    assert collected == {"test_slow_rows_leaves_the_named_rows_of_one_test_to_the_slow_lane.py::"
                         + name for name in ("test_marked[numpy]", "test_plain[numpy]",
                                             "test_plain[numpy_readonly]")}
    everything = pytester.runpytest("-p", "no:cacheprovider", "-k", "numpy", "--collect-only", "-q")
    assert sum("test_marked[" in line for line in everything.stdout.lines) == 2


def test_slow_rows_naming_no_row_is_an_error(pytester):
    pytester.makeconftest('pytest_plugins = ["bp_xp.testing"]')
    pytester.makepyfile("import pytest\n@pytest.mark.slow_rows('numpy_typo')\n"
                        "def test_marked(xb):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--collect-only", "-q")
    assert "slow_rows names no matrix row ['numpy_typo']" in result.stdout.str()
    assert result.ret != 0


@pytest.mark.slow  # a fresh interpreter importing jax: seconds of CPU
def test_importing_the_plugin_leaves_jax_alone_until_the_session_starts(pytester):
    pytest.importorskip("jax")
    code = ("import bp_xp.testing, jax\n"
            "assert not jax.config.jax_enable_x64, 'x64 switched on at import'\n")
    result = pytester.run(sys.executable, "-c", code)
    assert result.ret == 0, result.stderr.str()


def test_mixed_backends_suggest_where_most_arrays_are():
    W = bp_xp.to_device([[1.0]], "array_api_strict:device1")
    b = bp_xp.to_device([1.0], "array_api_strict:device1")
    x = np.ones((1, 1))
    with pytest.raises(BackendMismatchError, match=r"bp_xp.to_device\(x, 'array_api_strict:device1'\)"):
        bp_xp.namespace_of(x, W, b, names=("x", "W", "b"))
    with pytest.raises(BackendMismatchError, match=r"bp_xp.to_device\(x, 'array_api_strict:device1'\)"):
        bp_xp.namespace_of(W, x, names=("W", "x"))
    with pytest.raises(BackendMismatchError, match=r"bp_xp.to_device\(array, 'numpy'\)"):
        bp_xp.namespace_of(x, W)


def test_a_jax_tracer_meets_a_concrete_array_without_a_false_device_error():
    jax = pytest.importorskip("jax")
    import bp_xp

    constant = jax.numpy.arange(3.0)

    @jax.jit
    def weighted_sum(x):
        xp = bp_xp.namespace_of(x, constant, names=("x", "constant"))
        return xp.sum(x * constant)

    assert float(weighted_sum(jax.numpy.ones(3))) == 3.0


# --------------------------------------------------------------------------------------
# Fast kernels: each gives what the portable spelling gives; the portable path elsewhere
# --------------------------------------------------------------------------------------


def _ulps(got, expected, magnitude, dtype) -> float:
    """Largest difference in units of the last place of ``magnitude`` (0 where bit-equal).

    For ``a - s * b`` the magnitude is that of the operands, ``|a| + |s * b|``: one
    rounding fewer moves the result by up to one of their ulps, however small the result.
    """
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    spacing = np.spacing(np.abs(magnitude).astype(dtype)).astype(np.float64)
    return float(np.max(np.abs(got - expected) / spacing))


def test_subtract_scaled_is_the_portable_update_within_one_ulp(xb, dtype, rng):
    """``a - s * b``: torch's one-kernel ``sub(alpha=)`` may round once instead of twice.

    Also checked against a float64 reference, which the portable spelling could not fail.
    """
    from bp_xp.backends import subtract_scaled

    host_a, host_b = rng.standard_normal((300, 40)), rng.standard_normal((300, 40))
    a, b = xb.asarray(host_a, dtype), xb.asarray(host_b, dtype)
    got = subtract_scaled(a, b, 0.37)
    xb.assert_on_backend(got, dtype)
    assert tuple(got.shape) == (300, 40)
    magnitude = np.abs(host_a) + np.abs(0.37 * host_b)
    assert _ulps(xb.to_numpy(got), xb.to_numpy(a - 0.37 * b), magnitude, dtype) <= 1.0
    reference = host_a.astype(dtype).astype(np.float64) - 0.37 * host_b.astype(dtype)
    assert _ulps(xb.to_numpy(got), reference, magnitude, dtype) <= 2.0
    np.testing.assert_array_equal(xb.to_numpy(a), host_a.astype(dtype))  # inputs untouched
    np.testing.assert_array_equal(xb.to_numpy(b), host_b.astype(dtype))


def test_a_fast_kernel_is_used_only_by_the_backend_that_has_it(xb):
    """The portable spelling is the default: only the backend file's ``KERNELS`` replace it."""
    from bp_xp.backends import fast_kernel, spec_of

    x = xb.asarray(np.ones((2, 2)), "float32")
    bp_xp.namespace_of(x)  # the kernels are learned with the namespace
    own = spec_of(x).kernels
    for name in ("zero_where", "subtract_scaled"):
        assert fast_kernel(name, x) is own.get(name), (xb.case.family, name)
    expected = {"numpy": {"zero_where", "column_major"},
                "torch": {"zero_where", "subtract_scaled", "matmul_layout", "column_major",
                          "weight_gradient", "relu", "relu_backward"},
                "jax": {"zero_where"}}
    native = {"conv2d", "max_pool2d"}  # issue 22's native kernels (tests/test_fast_kernels.py)
    for family, names in {"numpy": native, "torch": native | {"softmax_cross_entropy_labels"},
                          "jax": native, "cupy": native}.items():
        expected[family] = expected.get(family, set()) | names
    assert set(own) == expected.get(xb.case.family, set())


def test_every_kernel_a_backend_lists_has_a_dispatcher():
    from bp_xp import backends

    for name in bp_xp.BACKEND_NAMES:
        for kernel in bp_xp.backends.get_spec(name).kernels:
            assert kernel in backends.__all__ and callable(getattr(backends, kernel)), (name, kernel)


def test_a_fast_kernel_that_does_not_apply_falls_back_to_the_portable_spelling():
    """A Python number for ``b``: torch's kernel declines, the portable spelling answers."""
    torch = pytest.importorskip("torch")
    from bp_xp.backends import subtract_scaled

    a = torch.tensor([1.0, 2.0], dtype=torch.float64)
    bp_xp.namespace_of(a)
    assert bp_xp.backends.fast_kernel("subtract_scaled", a)(
        a, 2.0, 0.5) is None
    assert torch.equal(subtract_scaled(a, 2.0, 0.5), torch.tensor([0.0, 1.0], dtype=torch.float64))
