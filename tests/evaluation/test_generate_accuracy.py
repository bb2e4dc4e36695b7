"""The paper's accuracy curve: generate-mode test accuracy at step 0 and every N optimizer
steps (counted under accumulation), unparsable outputs counted."""

import json

import pandas as pd
import pytest

from loralab.cli.train import run
from loralab.cli.validation import ConfigError, validate_config
from loralab.evaluation.predict import predict_split
from tests.helpers import compose_config


def test_generate_accuracy_curve_at_its_cadence(tmp_path):
    cfg = compose_config(
        [
            "model=tiny_llama",
            "logger=csv",
            "trainer.max_steps=4",
            "trainer.accumulate_grad_batches=2",
            "trainer.val_check_interval=4",
            "evaluation.generate_every=2",
            "evaluation.max_new_tokens=6",
            "task.max_examples.train=64",
            "task.max_examples.validation=8",
            "task.max_examples.test=12",
        ]
    )
    _, model = run(cfg, tmp_path)
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    rows = metrics.dropna(subset=["test/gen_acc"])
    assert rows["step"].tolist() == [0, 2, 4]  # optimizer steps, not micro-batches
    assert rows["test/gen_unparsable"].between(0, 1).all()
    # The last point is what loralab-eval's generate mode says of the trained model.
    from loralab.models import load_model
    from loralab.tasks import build_task

    _, tokenizer = load_model(cfg.model)
    data = dict(cfg.data, max_length=cfg.data.max_length + 6)
    results, dropped = predict_split(
        model, tokenizer, build_task(cfg.task), "test", "generate", data, max_new_tokens=6
    )
    assert dropped == 0 and len(results) == 12
    assert rows["test/gen_acc"].iloc[-1] == pytest.approx(sum(r["correct"] for r in results) / 12)
    unparsable = sum(r["prediction"] is None for r in results) / 12
    assert rows["test/gen_unparsable"].iloc[-1] == pytest.approx(unparsable)
    # each measurement's per-problem record: the generated text, its parse and its pick
    folder = tmp_path / "predictions"
    names = sorted(p.name for p in folder.glob("test_generate_step*.jsonl"))
    assert names == [f"test_generate_step{s}.jsonl" for s in (0, 2, 4)]
    lines = [json.loads(x) for x in (folder / "test_generate_step4.jsonl").read_text().splitlines()]
    assert [x["output"] for x in lines] == [r["output"] for r in results]
    hits = [x["picks"]["generate"] == x["gold_index"] for x in lines]
    assert sum(hits) / 12 == pytest.approx(rows["test/gen_acc"].iloc[-1])


@pytest.mark.parametrize("accumulate", [1, 2])
def test_generate_accuracy_can_skip_the_untrained_step(tmp_path, accumulate):
    """generate_at_start=false: a grid measures the untrained model once, not in every run
    (under accumulation the first micro-batch ended at step 0 and measured it anyway)."""
    cfg = compose_config(
        [
            "model=tiny_llama",
            f"trainer.accumulate_grad_batches={accumulate}",
            "logger=csv",
            "trainer.max_steps=4",
            "trainer.val_check_interval=4",
            "evaluation.generate_every=2",
            "evaluation.generate_at_start=false",
            "evaluation.max_new_tokens=4",
            "task.max_examples.train=32",
            "task.max_examples.validation=8",
            "task.max_examples.test=8",
        ]
    )
    run(cfg, tmp_path)
    rows = pd.read_csv(tmp_path / "metrics.csv").dropna(subset=["test/gen_acc"])
    assert rows["step"].tolist() == [2, 4]


@pytest.mark.parametrize(
    "override",
    [
        "evaluation.generate_every=-1",
        "evaluation.generate_split=dev",
        "evaluation.generate_at_start=maybe",
    ],
)
def test_bad_generate_settings_are_config_errors(override):
    with pytest.raises(ConfigError, match=override.split("=")[0]):
        validate_config(compose_config(["model=tiny_llama", override]))
