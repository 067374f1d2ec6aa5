"""The trainer learns from the images: on a task only the images can solve, held-out documents score
better with their own images than with images shuffled among documents (bench.grounding, smaller)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def grounding(tmp_path, *args) -> dict:
    done = subprocess.run([sys.executable, "-m", "bench.grounding", "--out", str(tmp_path), *args],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    last = done.stdout.strip().splitlines()[-1]
    return {k: float(v) for k, v in (item.split("=") for item in last.split())}


def test_trained_model_reads_its_images(shared_data, tmp_path):
    result = grounding(tmp_path, "--steps", "60", "--train-docs", "400", "--eval-docs", "60")
    assert set(result) == {"grounding_gap_nats", "loss_right", "loss_shuffled", "steps", "seconds"}
    assert result["loss_shuffled"] > result["loss_right"]
    assert result["grounding_gap_nats"] > 0


def test_an_untrained_model_shows_no_gap(shared_data, tmp_path):
    """The control can fail the other way: gates at 0 make images irrelevant, so shuffling changes nothing."""
    from model import evaluate, train

    grounding(tmp_path, "--steps", "1", "--train-docs", "50", "--eval-docs", "20")
    train.main(["--shards", str(tmp_path / "train"), "--out", str(tmp_path / "zero"), "--steps", "0"])
    right = evaluate.main(["--checkpoint", str(tmp_path / "zero"), "--shards", str(tmp_path / "eval")])
    blind = evaluate.main(["--checkpoint", str(tmp_path / "zero"), "--shards", str(tmp_path / "eval"),
                           "--shuffle-images"])
    assert right == blind and right["docs"] == 20
