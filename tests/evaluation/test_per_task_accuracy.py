"""A run on the commonsense mix logs each task's test accuracy and their mean (MoSLoRA's table)
in the run itself, equal to a per-record scoring of the saved adapter grouped by task, and
loralab-figures tabulates them."""

import json

import pandas as pd
import pytest
from omegaconf import OmegaConf

from loralab.adapters import load_adapter
from loralab.cli.figures import main as figures
from loralab.cli.train import run
from loralab.data.datamodule import TaskDataModule
from loralab.evaluation.predict import predict_split
from loralab.models import load_model
from loralab.runs.summary import format_summary
from loralab.tasks import build_task
from loralab.tasks.commonsense import FOLDERS
from tests.helpers import compose_config

# Each task's answer words, as its LLM-Adapters instruction lists them.
WORDS = {
    "boolq": ["true", "false"],
    "piqa": ["solution1", "solution2"],
    "siqa": ["answer1", "answer2", "answer3"],
    "hellaswag": ["ending1", "ending2", "ending3", "ending4"],
    "winogrande": ["option1", "option2"],
    "arc_e": ["answer1", "answer2", "answer3", "answer4"],
    "arc_c": ["answer1", "answer2", "answer3", "answer4"],
    "obqa": ["answer1", "answer2", "answer3", "answer4"],
}
WITH_TRAIN = ("boolq", "siqa", "obqa")


def records(task: str, count: int) -> list[dict]:
    words = WORDS[task]
    rows = []
    for i in range(count):
        answer = words[(i * 7 + len(task)) % len(words)]
        question = f"{task} question {i}: " + "why " * (i % 6)
        rows.append(
            {
                "instruction": f"{question}\n\nAnswer format: {'/'.join(words)}",
                "input": "",
                "output": f"the correct answer is {answer}",
                "answer": answer,
            }
        )
    return rows


@pytest.fixture(scope="module")
def commonsense_root(tmp_path_factory):
    """The eight tasks' folders in LLM-Adapters' layout: a test file each, train for three."""
    root = tmp_path_factory.mktemp("commonsense")
    for task, folder in FOLDERS.items():
        (root / folder).mkdir()
        (root / folder / "test.json").write_text(json.dumps(records(task, 9)))
        if task in WITH_TRAIN:
            (root / folder / "train.json").write_text(json.dumps(records(task, 40)))
    return root


def run_config(root, task: str = "commonsense"):
    mix = ["task.train_source=null"] if task == "commonsense" else []
    return compose_config(
        [
            "model=tiny_llama",
            f"task={task}",
            f"task.source={root}",
            *mix,
            "task.max_examples.validation=9",
            "adapter=lora",
            "optimizer=adamw",
            "optimizer.lr=1e-2",
            "logger=csv",
            "trainer.precision=32-true",
            "trainer.max_steps=4",
            "trainer.val_check_interval=4",
            "checkpoint.every_n_steps=0",
            "evaluation.generate_every=0",
        ]
    )


@pytest.fixture(scope="module")
def mix_run(commonsense_root, tmp_path_factory):
    """A short run of the tiny model on the mix: (config, summary)."""
    cfg = run_config(commonsense_root)
    summary, _ = run(cfg, tmp_path_factory.mktemp("mix") / "run")
    return cfg, summary


def accuracy_by_task(model, tokenizer, task, data_cfg) -> dict[str, float]:
    results, dropped = predict_split(model, tokenizer, task, "test", "score", data_cfg)
    assert dropped == 0
    correct: dict[str, list[bool]] = {}
    for record, result in zip(task.splits["test"], results, strict=True):
        correct.setdefault(record["task"], []).append(result["correct"])
    return {name: sum(hits) / len(hits) for name, hits in correct.items()}


def test_mixed_splits_carry_each_rows_task_and_single_tasks_do_not(commonsense_root, tokenizer):
    data_cfg = {"max_length": 256, "overflow": "truncate", "batch_size": 4}
    data_cfg |= {"eval_batch_size": 4, "seed": 0}
    for name, expected in (("commonsense", 8), ("siqa", 0)):
        cfg = {"name": name, "source": str(commonsense_root), "seed": 0, "train_source": None}
        cfg["max_examples"] = {"train": None, "validation": 9, "test": None}
        task = build_task(cfg)
        data = TaskDataModule(task, tokenizer, data_cfg)
        data.setup()
        batch = data.collate(data.encoded["test"])
        tasks = batch.get("task", [])
        assert tasks == [r["task"] for r in data.records["test"]][: len(tasks)]
        assert len(set(tasks)) == expected


@pytest.mark.integration
def test_run_logs_each_tasks_test_accuracy_and_their_mean(mix_run):
    cfg, summary = mix_run
    resolved = OmegaConf.to_container(cfg, resolve=True)
    task = build_task(resolved["task"], splits=("test",))
    model, tokenizer = load_model(resolved["model"])
    before = accuracy_by_task(model, tokenizer, task, resolved["data"])
    load_adapter(model, summary["adapter_dir"])
    after = accuracy_by_task(model, tokenizer, task, resolved["data"])

    logged = summary["test_acc_by_task"]
    assert sorted(logged) == sorted(WORDS)
    for name in WORDS:
        assert logged[name]["before"] == pytest.approx(before[name], abs=1e-6), name
        assert logged[name]["after"] == pytest.approx(after[name], abs=1e-6), name
    assert summary["test_task_mean_before"] == pytest.approx(sum(before.values()) / 8, abs=1e-6)
    assert summary["test_task_mean_after"] == pytest.approx(sum(after.values()) / 8, abs=1e-6)
    assert "mean of 8 tasks" in format_summary(summary)

    metrics = pd.read_csv(summary["metrics_csv"])
    trained_tasks = {f"val/acc/{name}" for name in WITH_TRAIN}
    assert trained_tasks <= set(metrics.columns)  # validation is held out of three tasks' train
    assert metrics["test/acc/piqa"].notna().sum() == 2  # before and after


@pytest.mark.integration
def test_single_task_run_has_no_per_task_columns(commonsense_root, tmp_path):
    summary, _ = run(run_config(commonsense_root, "siqa"), tmp_path)
    assert "test_acc_by_task" not in summary
    assert not [c for c in pd.read_csv(summary["metrics_csv"]).columns if c.count("/") > 1]


@pytest.mark.integration
def test_figures_tabulate_per_task_accuracy(mix_run, tmp_path):
    """per_task.md, computed from the run's per-question records, gives each task the accuracy
    the run logged for it, before (the untrained column) and after training."""
    _, summary = mix_run
    figures([summary["run_dir"], "--out", str(tmp_path / "figures")])
    lines = (tmp_path / "figures" / "per_task.md").read_text().splitlines()
    rows = [line.strip("|").split(" | ") for line in lines if line.startswith("| ")][1:]
    assert [row[0].strip() for row in rows] == [*sorted(WORDS), "all"]
    for row in rows[:-1]:
        name = row[0].strip()
        for cell, when in ((row[2], "before"), (row[4], "after")):  # row[3]: a constant answer
            logged = summary["test_acc_by_task"][name][when]
            assert cell.startswith(f"{100 * logged:.1f} ["), (name, when, cell)
    for cell, when in ((rows[-1][2], "before"), (rows[-1][4], "after")):
        mean = summary[f"test_task_mean_{when}"]  # equal shares: the pooled row is the mean
        assert cell.startswith(f"{100 * mean:.1f} ["), (when, cell)
