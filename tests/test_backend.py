"""Backend and device choice: names, errors, moving data, and the matrix's own rules."""

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
    with pytest.raises(BackendUnavailableError, match="'float64' is not available on array_api_strict:no_float64"):
        backend.dtype("float64")
    with pytest.raises(BackendUnavailableError, match="float64"):
        bp_xp.TwoLayerNet(2, 2, 2, backend="array_api_strict:no_float64", dtype="float64")


def test_namespace_of_names_both_sides_of_a_mismatch():
    strict = bp_xp.to_device([1.0], "array_api_strict")
    with pytest.raises(BackendMismatchError, match="x is a numpy array, W is a array_api_strict"):
        bp_xp.namespace_of(np.ones(1), strict, names=("x", "W"))
    with pytest.raises(TypeError, match="at least one array"):
        bp_xp.namespace_of(1.0, None)


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
