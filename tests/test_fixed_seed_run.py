"""A fixed-seed tiny run gives the losses, accuracies and adapter weights recorded in
tests/golden/tiny_run.json: refactoring (moving code, merging configs) must not change what a
run computes. Every setting is spelled out on the command line so that changed defaults do not
move it. Tolerances allow for other CPUs' float32 summation order over 12 steps."""

import csv
import json
import math
import shlex
from pathlib import Path

from safetensors.torch import load_file

from tests.helpers import run_cli

GOLDEN = json.loads((Path(__file__).parent / "golden" / "tiny_run.json").read_text())


def test_fixed_seed_tiny_run_matches_the_recorded_run(tmp_path):
    args = shlex.split(GOLDEN["command"])[1:] + [f"hydra.run.dir={tmp_path / 'run'}"]
    result = run_cli("loralab.cli.train", args, tmp_path, LORALAB_CACHE=str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    for key in ("train/loss", "train/decision_loss", "val/loss", "test/loss"):
        logged = [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]
        assert [s for s, _ in logged] == [s for s, _ in GOLDEN[key]], key
        for (step, value), (_, expected) in zip(logged, GOLDEN[key], strict=True):
            assert math.isclose(value, expected, rel_tol=1e-4), (key, step, value, expected)
    accuracy = [(int(r["step"]), float(r["test/acc"])) for r in rows if r.get("test/acc")]
    for (step, value), (golden_step, expected) in zip(accuracy, GOLDEN["test/acc"], strict=True):
        assert step == golden_step and abs(value - expected) <= 1 / 32 + 1e-9  # one question
    tensors = load_file(tmp_path / "run" / "adapter" / "adapter.safetensors")
    assert sorted(tensors) == sorted(GOLDEN["adapter"])
    for name, (shape, total, magnitude) in GOLDEN["adapter"].items():
        tensor = tensors[name].double()
        assert list(tensor.shape) == shape, name
        assert abs(float(tensor.sum()) - total) <= 1e-4 * magnitude, name
        assert math.isclose(float(tensor.abs().sum()), magnitude, rel_tol=1e-4), name
