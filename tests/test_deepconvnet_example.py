"""examples/train_deepconvnet.py with the book's evaluation and a time budget.

The book's ``train_deepnet.py`` evaluates on the first 1,000 images of each set after each
epoch (``evaluate_sample_num_per_epoch``); the example's ``--eval-samples`` does that and then
takes the final test accuracy on the whole test set, ``--time-limit`` stops starting epochs
after a wall-clock budget, and ``--history`` writes the per-epoch record with wall and CPU
seconds. The final accuracy is checked against the network's own predictions, recomputed here
from a checkpoint the example saves.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bp_xp
from bp_xp.checkpoint import load
from bp_xp.data import load_dataset

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "train_deepconvnet.py"


@pytest.mark.slow
def test_the_books_schedule_within_a_time_budget(tmp_path):
    history, checkpoint = tmp_path / "deep.json", tmp_path / "deep.safetensors"
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--backend", "numpy", "--epochs", "3", "--eval-samples",
         "50", "--time-limit", "0.001", "--history", str(history), "--save", str(checkpoint),
         "--no-progress"],
        capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads(history.read_text())
    # The budget is spent after the first epoch: no second one starts.
    assert record["epoch"] == [1.0] and record["epochs_asked"] == 3
    assert record["eval_samples"] == 50 and record["test_images"] == 1000
    assert 0 < record["cpu_time"][0] and 0 < record["time"][0] <= record["wall"]
    # Accuracies on 50 images are multiples of 1/50; the final one is over all 1,000.
    assert record["test_acc"][0] * 50 == pytest.approx(round(record["test_acc"][0] * 50))
    net, _ = load(checkpoint)
    (_, _), (x_test, t_test) = load_dataset("mnist-5k", flatten=False)
    predicted = np.argmax(bp_xp.to_numpy(net.predict(x_test.astype(np.float32))), axis=1)
    assert record["final_test_acc"] == pytest.approx(np.mean(predicted == t_test), abs=1e-6)
    assert f"test acc {record['final_test_acc']:.4f} on all 1,000 test images" in done.stdout


def test_epochs_and_iters_keep_the_models_default():
    # --iters alone is a length too: the example's default of 5 epochs must not clash with it
    sys.path.insert(0, str(EXAMPLE.parent))
    try:
        import train_deepconvnet
    finally:
        sys.path.remove(str(EXAMPLE.parent))
    parser = train_deepconvnet.build_parser()
    args = parser.parse_args(["--iters", "3"])
    assert args.epochs is None and args.iters == 3 and args.model == "deepconvnet"
    with pytest.raises(SystemExit):
        parser.parse_args(["--eval-samples", "0"])
