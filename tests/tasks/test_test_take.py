"""task.test_take: a cap on the test split takes a seeded sample (loralab's default: sources
may be ordered) or its first N questions (lm-eval's --limit), the same questions lm-eval scores."""

import pytest
from datasets import load_from_disk

from loralab.tasks import build_task, task_config_errors
from tests.helpers import compose_config


def scienceqa(shared_data, *overrides):
    source = shared_data / "scienceqa" / "hf_sample"
    cfg = compose_config(["task=scienceqa", f"task.source={source}", *overrides]).task
    return build_task(cfg, splits=("test",)).splits["test"], source


def test_first_takes_the_first_questions_of_the_test_split(shared_data):
    first, source = scienceqa(shared_data, "task.max_examples.test=7", "task.test_take=first")
    rows = load_from_disk(str(source))["test"]
    texts = [row["question"] for row in rows if row["image"] is None]
    assert [record["question"] for record in first] == texts[:7]
    sampled, _ = scienceqa(shared_data, "task.max_examples.test=7")
    assert len(sampled) == 7 and [r["question"] for r in sampled] != texts[:7]


def test_an_unknown_take_is_a_config_error():
    cfg = dict(compose_config(["task=scienceqa"]).task, test_take="last")
    (error,) = [e for e in task_config_errors(cfg) if "test_take" in e]
    assert "task.test_take='last' must be one of ['sample', 'first']" in error
    assert not [e for e in task_config_errors(dict(cfg, test_take="first")) if "test_take" in e]


@pytest.mark.parametrize("task", ["csqa", "arc_e", "obqa"])
def test_every_task_with_a_capped_test_split_reads_the_key(task):
    assert compose_config([f"task={task}"]).task.test_take == "sample"
