"""The decision token's loss and accuracy: the one answer token where the options part ways."""

import math

import torch

from loralab.evaluation.scoring import decision_token


def test_decision_token_on_a_hand_checked_batch():
    # Two rows; answers of 3 and 2 tokens (logits at answer positions, row after row), a
    # vocabulary of 4. Row 0 decides at its 3rd answer token, row 1 at its 1st.
    logits = torch.tensor(
        [
            [9.0, 0.0, 0.0, 0.0],  # row 0, "Answer" (format token: ignored)
            [0.0, 9.0, 0.0, 0.0],  # row 0, "is" (ignored)
            [0.0, 0.0, math.log(3.0), 0.0],  # row 0, the letter: p(gold=2) = 3 / 6
            [0.0, 0.0, 0.0, 0.0],  # row 1, the letter: uniform, argmax 0 != gold 3
            [5.0, 0.0, 0.0, 0.0],  # row 1, "." (ignored)
        ]
    )
    targets = torch.tensor([0, 1, 2, 3, 0])
    counts = torch.tensor([3, 2])
    offsets = torch.tensor([2, 0])
    loss, correct = decision_token(logits, targets, counts, offsets)
    torch.testing.assert_close(loss, torch.tensor([math.log(2.0), math.log(4.0)]))
    assert correct.tolist() == [1.0, 0.0]


def test_runs_log_decision_token_curves(tmp_path):
    import pandas as pd

    from loralab.cli.train import run
    from tests.helpers import compose_config

    cfg = compose_config(
        [
            "model=tiny_llama",
            "logger=csv",
            "trainer.max_steps=4",
            "trainer.val_check_interval=2",
            "evaluation.before_training=false",
            "task.max_examples.train=32",
            "task.max_examples.validation=8",
            "task.max_examples.test=8",
        ]
    )
    run(cfg, tmp_path)
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert metrics.dropna(subset=["train/decision_loss"])["step"].tolist() == [0, 1, 2, 3]
    # at step 0 (before training, as the reference) and after steps 2 and 4, each at the step
    # whose weights it evaluated
    assert metrics.dropna(subset=["val/decision_acc"])["step"].tolist() == [0, 2, 4]
    full, decision = metrics["train/loss"].dropna(), metrics["train/decision_loss"].dropna()
    assert (decision.to_numpy() != full.to_numpy()).all()  # one token, not the mean of all
