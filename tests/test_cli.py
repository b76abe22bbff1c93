"""The ``bp-xp`` command: backends, train, gradcheck, bench, and errors without tracebacks."""

import re
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

import bp_xp
from bp_xp.cli import main
from bp_xp.data import DatasetError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def mnist_5k():
    try:
        return bp_xp.data.load_dataset("mnist-5k", announce=False)
    except DatasetError as exc:
        pytest.skip(f"the offline dataset is not available: {exc}")


def test_backends_lists_numpy_as_available(capsys):
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]
            if not line[:1].isspace()}  # indented lines continue a wrapped row
    assert set(rows) == set(bp_xp.BACKEND_NAMES)
    assert rows["numpy"][1] == "yes" and rows["numpy"][2] == np.__version__
    for name in bp_xp.available_backends():
        assert rows[name][1] == "yes"


def test_train_saves_a_checkpoint_that_loads(tmp_path, capsys, mnist_5k):
    from bp_xp import checkpoint

    path, png = tmp_path / "ckpt.npz", tmp_path / "curves.png"
    status = main(["train", "--iters", "50", "--hidden", "20", "--seed", "3", "--no-progress",
                   "--save", str(path), "--plot", str(png)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "Traceback" not in captured.err
    epoch_lines = [line for line in captured.out.splitlines() if line.startswith("epoch")]
    assert len(epoch_lines) == 2  # 40 steps per epoch: one full epoch, then the last 10 steps
    final = re.search(r"final: train acc ([\d.]+), test acc ([\d.]+)", captured.out)
    assert final, captured.out

    net, optimizer = checkpoint.load(path)
    (x_train, t_train), (x_test, t_test) = mnist_5k
    assert float(net.accuracy(x_test, t_test)) == pytest.approx(float(final[2]), abs=1e-4)
    assert float(net.accuracy(x_train, t_train)) == pytest.approx(float(final[1]), abs=1e-4)
    assert float(net.accuracy(x_test, t_test)) > 0.3  # 50 steps are well above chance
    assert optimizer.step_count == 50 and optimizer.lr == 0.1
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_train_example_is_the_same_command(tmp_path, capsys, mnist_5k):
    example = runpy.run_path(str(EXAMPLES / "train_mnist.py"))
    assert example["main"](["--iters", "5", "--hidden", "10", "--no-progress"]) == 0
    assert "final: train acc" in capsys.readouterr().out


def test_gradcheck_on_numpy_passes(capsys):
    assert main(["gradcheck", "--backend", "numpy"]) == 0
    out = capsys.readouterr().out
    errors = {line.split(":")[0]: float(line.split(":")[1]) for line in out.splitlines()
              if line[:2] in ("W1", "b1", "W2", "b2")}
    assert set(errors) == {"W1", "b1", "W2", "b2"} and max(errors.values()) < 1e-6


@pytest.mark.parametrize("command", ["train", "gradcheck"])
def test_an_unknown_backend_fails_with_the_available_ones(command, capsys):
    status = main([command, "--backend", "tpu-please", "--iters", "1"] if command == "train"
                  else [command, "--backend", "tpu-please"])
    err = capsys.readouterr().err
    assert status == 2
    assert "Traceback" not in err and err.count("\n") == 1
    assert "unknown backend 'tpu-please'" in err
    available = re.search(r"Available backends: ([\w, ]+)\.", err)
    assert available and set(available[1].split(", ")) == set(bp_xp.available_backends())


def test_a_bad_training_value_is_one_line(capsys, mnist_5k):
    assert main(["train", "--batch-size", "4001", "--iters", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "batch_size must be between 1 and the number of training samples (4000)" in err
    assert "Traceback" not in err


def test_an_unwritable_output_fails_before_training(tmp_path, capsys):
    target = tmp_path / "missing" / "ckpt.npz"
    assert main(["train", "--save", str(target), "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert "--save" in captured.err and "does not exist" in captured.err
    assert "epoch" not in captured.out


def test_bench_hands_its_arguments_to_the_checkouts_script(monkeypatch, tmp_path, capsys):
    """Found through the current directory; the script's sibling modules import; its status is returned."""
    import bp_xp.cli as cli

    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "_fake_sibling.py").write_text("STATUS = 7\n")
    (tmp_path / "benchmarks" / "fake_step.py").write_text(
        "import _fake_sibling\n\n"
        "def main(argv, prog):\n"
        "    print(repr((prog, argv)))\n"
        "    return _fake_sibling.STATUS\n")
    monkeypatch.setattr(cli, "_BENCH_SCRIPT", str(Path("benchmarks", "fake_step.py")))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "_fake_sibling", raising=False)
    path_before = list(sys.path)
    assert main(["bench", "--quick", "--nets", "book"]) == 7
    assert capsys.readouterr().out.strip() == repr(("bp-xp bench", ["--quick", "--nets", "book"]))
    assert sys.path == path_before


def test_bench_without_the_benchmarks_says_what_to_do(monkeypatch, tmp_path, capsys):
    """As from a wheel: no benchmarks/ beside the package nor in the current directory."""
    import bp_xp.cli as cli

    monkeypatch.setattr(cli, "_BENCH_SCRIPT", str(Path("benchmarks", "not_in_the_wheel.py")))
    monkeypatch.chdir(tmp_path)
    assert main(["bench"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "not_in_the_wheel.py" in err and "source" in err and "pip install -e ." in err


def test_bench_help_names_itself_bp_xp_bench(monkeypatch, tmp_path, capsys):
    """Run from elsewhere, ``bp-xp bench`` still finds the checkout bp_xp is imported from."""
    import bp_xp.cli as cli

    monkeypatch.chdir(tmp_path)
    if cli._find_bench_script() is None:
        pytest.skip("bp_xp is not imported from a source checkout with benchmarks/")
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: bp-xp bench ") and "bench_step.py" not in out


def test_missing_or_unknown_command_is_a_usage_error(capsys):
    for argv in ([], ["fly"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    assert "backends" in capsys.readouterr().err


# --------------------------------------------------------------------------------------
# Nothing lost: save before plotting, save on Ctrl-C, never save NaNs
# --------------------------------------------------------------------------------------


def test_a_failing_plot_does_not_cost_the_checkpoint(tmp_path, capsys, mnist_5k, monkeypatch):
    from bp_xp import checkpoint, train

    def broken_plot(history, path):
        raise OSError(f"{path}: the plotting backend failed (simulated)")

    monkeypatch.setattr(train, "plot", broken_plot)
    path = tmp_path / "net.npz"
    status = main(["train", "--iters", "5", "--hidden", "8", "--no-progress",
                   "--save", str(path), "--plot", str(tmp_path / "c.png")])
    assert status == 2 and "simulated" in capsys.readouterr().err
    net, optimizer = checkpoint.load(path)
    assert optimizer.step_count == 5


def test_ctrl_c_with_save_keeps_the_state_reached(tmp_path, capsys, mnist_5k, monkeypatch):
    from bp_xp import checkpoint
    from bp_xp.train import Trainer

    real_step = Trainer.train_step

    def interrupted_step(self):
        if self.iteration == 7:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(Trainer, "train_step", interrupted_step)
    path = tmp_path / "net.npz"
    status = main(["train", "--iters", "50", "--hidden", "8", "--no-progress", "--save", str(path)])
    err = capsys.readouterr().err
    assert status == 130
    assert "interrupted at step 7" in err and str(path) in err
    net, optimizer = checkpoint.load(path)
    assert optimizer.step_count == 7
    assert checkpoint.read_metadata(path)["user"]["interrupted"] is True


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's own overflow warnings on the way
def test_a_nan_loss_stops_training_and_saves_nothing(tmp_path, capsys, mnist_5k):
    path = tmp_path / "net.npz"
    status = main(["train", "--iters", "40", "--hidden", "8", "--lr", "1e30", "--no-progress",
                   "--save", str(path)])
    err = capsys.readouterr().err
    assert status == 2
    assert re.search(r"the loss became (nan|inf) at step \d+", err), err
    assert "Lower the learning rate" in err and "nothing was saved" in err
    assert not path.exists()


def test_a_negative_seed_names_the_flag(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--seed", "-1"])
    assert exit_.value.code == 2
    assert "argument --seed: must be an integer >= 0" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"bp-xp {bp_xp.__version__}"


# -- every flag and path is checked before anything is loaded or trained -------------------


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if anything gets as far as loading data (so: before any training)."""
    def refuse(*args, **kwargs):
        raise AssertionError("the command loaded the dataset before refusing its flags")

    monkeypatch.setattr(bp_xp.data, "load_dataset", refuse)


@pytest.mark.parametrize(("argv", "message"), [
    (["--save", ""], "--save needs a file name, got an empty one"),
    (["--plot", ""], "--plot needs a file name"),
    (["--save", "{tmp}"], "is a directory"),
    (["--save", "{tmp}/"], "is a directory"),
    (["--model", "convnet", "--hidden", "10", "20"],
     "--model convnet has 1 hidden layer(s): --hidden takes 1 size(s), got 2 (10 20)"),
    (["--hidden", "1000000000"], "parameters"),
])
def test_bad_flags_and_paths_are_refused_before_loading_anything(argv, message, tmp_path, capsys,
                                                                  no_training):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["train", "--no-progress", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_flag_a_model_does_not_take_is_refused_naming_it(monkeypatch, capsys, no_training):
    """A model without hidden sizes (as a new entry of MODELS may be) refuses --hidden."""
    from bp_xp import cli

    plain = cli.ModelSpec(help="no hidden layers", build=lambda *a: None,
                          parameters=lambda *a: 0)
    monkeypatch.setitem(cli.MODELS, "plain", plain)
    assert main(["train", "--model", "plain", "--hidden", "50", "--no-progress"]) == 2
    assert "--hidden does not apply to --model plain" in capsys.readouterr().err


def test_convnet_hidden_size_is_the_one_given():
    """``--model convnet --hidden 50`` used to build 100 hidden units."""
    from bp_xp import cli

    args = cli.build_parser().parse_args(["train", "--model", "convnet", "--hidden", "50"])
    spec = cli.check_train_arguments(args)
    net = spec.build(args, (1, 28, 28), bp_xp.resolve_backend("numpy"))
    assert tuple(net.params["W2"].shape) == (30 * 12 * 12, 50)
    args = cli.build_parser().parse_args(["train", "--model", "convnet"])
    cli.check_train_arguments(args)
    assert args.hidden == [100]
    args = cli.build_parser().parse_args(["train"])
    cli.check_train_arguments(args)
    assert args.hidden == [50]


def test_python_dash_m_bp_xp_is_the_command():
    import subprocess

    done = subprocess.run([sys.executable, "-m", "bp_xp", "--version"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"bp-xp {bp_xp.__version__}"


def test_trainer_without_progress_needs_no_tqdm(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name == "tqdm" or name.startswith("tqdm."):
            raise ImportError("No module named 'tqdm'", name="tqdm")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    rng = np.random.default_rng(0)
    x, t = rng.random((20, 4)).astype(np.float32), rng.integers(0, 3, 20)
    net = bp_xp.TwoLayerNet(4, 5, 3, seed=0)
    trainer = bp_xp.train.Trainer(net, x, t, x, t, iters=3, batch_size=10, progress=False)
    assert len(trainer.train()["loss"]) == 3


def test_plot_without_matplotlib_is_refused_before_training(monkeypatch, tmp_path, capsys,
                                                             no_training):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real_find_spec(name, *a))
    assert main(["train", "--plot", str(tmp_path / "c.png"), "--no-progress"]) == 2
    assert "--plot needs matplotlib" in capsys.readouterr().err


@pytest.mark.parametrize(("module", "hint"), [
    ("tqdm", 'pip install "bp_xp[train]"'), ("matplotlib.pyplot", 'pip install "bp_xp[train]"'),
    ("jax.numpy", 'pip install "bp_xp[jax]"'), ("torch", 'pip install "bp_xp[torch]"'),
    ("array_api_strict", 'pip install "bp_xp[test]"'),
])
def test_a_missing_optional_module_is_one_line_naming_its_extra(capsys, module, hint):
    """Backends' libraries are learned from the registry (each spec names its extra)."""
    from bp_xp.cli import run_command

    def needs_it(args):
        raise ImportError(f"No module named {module!r}", name=module)

    assert run_command(needs_it, None) == 2
    err = capsys.readouterr().err
    assert err.startswith("bp-xp: error: No module named") and err.rstrip().endswith(hint)


def test_a_missing_module_that_is_not_optional_keeps_its_traceback():
    from bp_xp.cli import run_command

    def broken(args):
        raise ImportError("No module named 'bp_xp_internal_typo'", name="bp_xp_internal_typo")

    with pytest.raises(ImportError):
        run_command(broken, None)
