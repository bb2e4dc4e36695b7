"""The data module: length-grouped batches, over-long examples, option tokens per vocabulary."""

import logging

import pytest

from loralab.data.datamodule import TaskDataModule
from loralab.data.sampler import ResumableSampler
from loralab.tasks.commonsense import CommonsenseTask
from loralab.tasks.demo import generate_demo_quiz
from loralab.tasks.scienceqa import ScienceQATask

DATA = {"max_length": 256, "overflow": "truncate", "batch_size": 4, "eval_batch_size": 8, "seed": 0}


def test_length_grouped_order_covers_each_example_once_per_epoch():
    lengths = [(i * 37) % 101 for i in range(403)]
    sampler = ResumableSampler(len(lengths), 8, seed=0, lengths=lengths)
    first, second = list(sampler), list(sampler)
    for epoch in (first, second):
        assert len(set(epoch)) == len(epoch) == 400  # 50 full batches, each example once
    assert first != second  # a fresh order each epoch
    assert list(ResumableSampler(len(lengths), 8, seed=0, lengths=lengths)) == first
    batches = [first[i : i + 8] for i in range(0, 400, 8)]
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches)
    assert spread / len(batches) < 10  # similar lengths inside a batch (random batches: ~80)


def test_sort_by_length_training_loader():
    task = ScienceQATask("demo", {"train": generate_demo_quiz("train", 64)})
    from loralab.models.tiny import build_tiny_tokenizer

    datamodule = TaskDataModule(task, build_tiny_tokenizer(), DATA | {"sort_by_length": True})
    datamodule.setup()
    batches = list(datamodule.train_dataloader())
    assert len(batches) == 16
    assert sum(int(b["attention_mask"].sum()) for b in batches) == sum(
        len(example.input_ids) for example, *_ in datamodule.encoded["train"]
    )


def test_over_long_examples_are_dropped_counted_and_logged(tokenizer, caplog):
    records = generate_demo_quiz("test", 6)
    task = ScienceQATask("demo", {"test": records})
    longest = max(len(tokenizer(task.prompt(r) + task.target(r))["input_ids"]) for r in records)
    records[2] = dict(records[2], hint="a very long context " * 100)
    limit = {"max_length": longest + 8}
    datamodule = TaskDataModule(task, tokenizer, DATA | limit | {"overflow": "drop"})
    with caplog.at_level(logging.WARNING):
        datamodule.setup()
    assert datamodule.dropped["test"] == 1 and "dropped 1 over-long examples" in caplog.text
    assert datamodule.records["test"] == records[:2] + records[3:]
    truncating = TaskDataModule(task, tokenizer, DATA | limit)
    truncating.setup()
    assert truncating.dropped["test"] == 0 and truncating.encoded["test"][2][0].truncated


def test_a_task_without_train_data_says_so(tokenizer):
    task = ScienceQATask("piqa", {"train": [], "test": generate_demo_quiz("test", 4)})
    datamodule = TaskDataModule(task, tokenizer, DATA)
    datamodule.setup()
    with pytest.raises(ValueError, match="task 'piqa' has no training examples"):
        datamodule.train_dataloader()


@pytest.mark.parametrize(
    "words",
    [
        ["true", "false"],
        ["solution1", "solution2"],
        ["answer1", "answer2", "answer3"],
        ["ending1", "ending2", "ending3", "ending4"],
        ["option1", "option2"],
    ],
)
def test_every_answer_vocabulary_can_be_scored(tokenizer, words):
    """Score mode needs the options to part ways at one token, for every vocabulary."""
    record = {
        "instruction": f"Pick.\n\nAnswer format: {'/'.join(words)}",
        "input": "",
        "output": f"the correct answer is {words[-1]}",
        "answer": words[-1],
        "choices": words,
        "task": "t",
    }
    datamodule = TaskDataModule(CommonsenseTask("t", {"test": [record]}), tokenizer, DATA)
    datamodule.setup()
    item = datamodule.encoded["test"][0]
    offset, options, gold = item.option_offset, item.option_ids, item.gold
    assert len(set(options)) == len(words) and gold == len(words) - 1
    batch = datamodule.collate(datamodule.encoded["test"])
    answer = batch["labels"][0][batch["labels"][0] != -100]
    assert answer[offset] == options[gold]
