"""``task.answer_form=text``: the bare question as prompt, the right option's text as target,
every option scored whole (equal to a one-sequence-at-a-time reference) and generated text
parsed by the option it begins with."""

import math

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from loralab.cli.train import run
from loralab.data.datamodule import TaskDataModule
from loralab.data.encoding import IGNORE_INDEX, encode_prompt
from loralab.evaluation.predict import predict_split
from loralab.evaluation.scoring import decision_token, whole_option_choices
from loralab.models import load_model
from loralab.tasks import DataError, build_task, task_config_errors
from loralab.tasks.commonsense import CommonsenseTask
from loralab.tasks.scienceqa import ScienceQATask
from loralab.tasks.text_answers import TextAnswers, with_answer_form
from tests.evaluation.test_cloze import reference_scores
from tests.helpers import compose_config

ARC_RECORD = {
    "instruction": "Please choose the correct answer to the question: Which is hot?\n\nAnswer1: "
    "ice Answer2: the sun Answer3: the sun and moon\n\nAnswer format: answer1/answer2/answer3",
    "input": "",
    "output": "the correct answer is answer2",
    "answer": "answer2",
    "choices": ["answer1", "answer2", "answer3"],
    "task": "arc_e",
    "id": "arc_e-0",
}
SCIENCEQA_RECORD = {
    "question": "Which is a mammal?",
    "choices": ["shark", "whale"],
    "answer": 1,
    "hint": "",
    "id": "sqa-0",
}
DATA = {"max_length": 256, "overflow": "truncate", "batch_size": 4, "eval_batch_size": 4}


@pytest.fixture(scope="module")
def tiny():
    cfg = compose_config(["model=tiny_llama"])
    return load_model(OmegaConf.to_container(cfg, resolve=True)["model"])


def text_task(task):
    return with_answer_form(task, "text")


def test_commonsense_record_in_text_form():
    task = text_task(CommonsenseTask("arc_e", {"test": [ARC_RECORD]}))
    record = task.splits["test"][0]
    assert task.prompt(record) == "Question: Which is hot?\nAnswer:"
    assert task.target(record) == " the sun"
    assert task.option_targets(record) == [" ice", " the sun", " the sun and moon"]
    assert task.option_labels(record) == ["answer1", "answer2", "answer3"]
    assert task.gold_index(record) == 1 and task.groups(record) == {"task": "arc_e"}


def test_scienceqa_record_in_text_form():
    task = text_task(ScienceQATask("scienceqa", {"test": [SCIENCEQA_RECORD]}))
    record = task.splits["test"][0]
    assert task.prompt(record) == "Question: Which is a mammal?\nAnswer:"
    assert task.target(record) == " whale" and task.option_labels(record) == ["A", "B"]


@pytest.mark.parametrize(
    "output, label",
    [
        (" the sun.", "answer2"),  # F1 1 with "the sun", 2/3 with "the sun and moon"
        ("The  SUN\nQuestion: next", "answer2"),  # case and punctuation aside; F1 1/2 vs 2/5
        (" the sun and moon", "answer3"),
        ("ice, surely", "answer1"),
        ("icebergs", None),  # no word in common with any option
        ("moon", "answer3"),
        ("ice or sun", None),  # F1 2/3 with "ice" and with "the sun": a tie
        ("", None),
    ],
)
def test_generated_text_answers_with_the_option_whose_words_it_shares_most(output, label):
    task = text_task(CommonsenseTask("arc_e", {"test": [ARC_RECORD]}))
    assert task.parse(task.splits["test"][0], output) == label


def test_label_form_is_the_task_itself():
    task = CommonsenseTask("arc_e", {"test": [ARC_RECORD]})
    assert with_answer_form(task, "label") is task


def test_a_record_without_option_texts_is_named():
    listed = "Pick: q\n\nAnswer1: a Answer3: c\n\nAnswer format: answer1/answer2/answer3"
    record = dict(ARC_RECORD, instruction=listed, id="arc_e-7")
    with pytest.raises(DataError, match=r"'arc_e' in its text form.*'arc_e-7'"):
        text_task(CommonsenseTask("arc_e", {"test": [record]}))


def test_bad_answer_form_is_named():
    cfg = compose_config(["task.answer_form=letters"])
    errors = task_config_errors(OmegaConf.to_container(cfg.task))
    assert any("task.answer_form='letters'" in e and "label" in e for e in errors)


def test_build_task_applies_the_answer_form():
    cfg = compose_config(["task.answer_form=text", "task.max_examples.test=3"])
    task = build_task(OmegaConf.to_container(cfg.task), splits=("test",))
    assert isinstance(task, TextAnswers) and len(task.splits["test"]) == 3
    assert task.prompt(task.splits["test"][0]).endswith("\nAnswer:")


def test_items_label_the_answer_text_and_carry_every_option(tiny):
    _, tokenizer = tiny
    task = text_task(CommonsenseTask("arc_e", {"test": [ARC_RECORD]}))
    datamodule = TaskDataModule(task, tokenizer, dict(DATA, seed=0))
    datamodule.setup()
    item = datamodule.encoded["test"][0]
    sun = tokenizer(" the sun", add_special_tokens=False)["input_ids"]
    labelled = [t for t in item.example.labels if t != IGNORE_INDEX]
    assert labelled == sun + [tokenizer.eos_token_id]  # the text, then EOS
    assert (item.option_offset, item.decision_length) == (0, len(sun))
    assert len(item.options) == 3
    record = task.splits["test"][0]
    for option, text in zip(item.options, task.option_targets(record), strict=True):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert list(option.tokens) == ids  # no EOS scored
        assert list(option.context) == encode_prompt(tokenizer, task.prompt(record))[0]


def test_whole_option_choices_equal_the_one_at_a_time_reference(tiny):
    model, tokenizer = tiny
    cfg = compose_config(["task.answer_form=text", "task.max_examples.test=12"])
    task = build_task(OmegaConf.to_container(cfg.task), splits=("test",))
    datamodule = TaskDataModule(task, tokenizer, dict(DATA, seed=0))
    datamodule.setup()
    items = datamodule.encoded["test"]
    with torch.no_grad():
        chosen = whole_option_choices(model, datamodule.collate(items)).tolist()
    expected = []
    for record in datamodule.records["test"]:
        context, options = task.cloze(record)
        scores = reference_scores(model, tokenizer, context, options)
        expected.append(max(range(len(scores)), key=scores.__getitem__))
    assert chosen == expected
    assert len({len(task.cloze(r)[1]) for r in datamodule.records["test"]}) > 1  # ragged


def test_score_mode_in_text_form_is_cloze_mode_in_label_form(tiny):
    model, tokenizer = tiny
    overrides = ["task.max_examples.test=10"]
    label_cfg = OmegaConf.to_container(compose_config(overrides).task)
    text_cfg = OmegaConf.to_container(compose_config([*overrides, "task.answer_form=text"]).task)
    label, text = (build_task(c, splits=("test",)) for c in (label_cfg, text_cfg))
    cloze, _ = predict_split(model, tokenizer, label, "test", "cloze", DATA)
    score, _ = predict_split(model, tokenizer, text, "test", "score", DATA)
    assert [r["prediction"] for r in score] == [r["prediction"] for r in cloze]
    assert {r["prediction"] for r in score} <= set("ABCDE")


def test_decision_span_is_the_mean_over_the_answer_text():
    # Two rows, vocabulary 3: row 0's answer text is its first 2 answer tokens (then EOS),
    # row 1's its only token; the span of row 0 averages a certain and a uniform token.
    logits = torch.tensor(
        [
            [0.0, 50.0, 0.0],  # row 0, text token 1: gold 1, certain
            [0.0, 0.0, 0.0],  # row 0, text token 2: gold 2, uniform, argmax 0
            [9.0, 0.0, 0.0],  # row 0, EOS (not in the span)
            [0.0, 0.0, math.log(2.0)],  # row 1, gold 2: p = 2 / 4
        ]
    )
    targets, counts = torch.tensor([1, 2, 0, 2]), torch.tensor([3, 1])
    loss, correct = decision_token(
        logits, targets, counts, torch.tensor([0, 0]), torch.tensor([2, 1])
    )
    torch.testing.assert_close(loss, torch.tensor([math.log(3.0) / 2, math.log(2.0)]))
    assert correct.tolist() == [0.5, 1.0]


def test_a_run_in_text_form_logs_whole_option_accuracy(tmp_path):
    cfg = compose_config(
        [
            "model=tiny_llama",
            "logger=csv",
            "task.answer_form=text",
            "trainer.max_steps=4",
            "trainer.val_check_interval=2",
            "evaluation.generate_every=2",
            "task.max_examples.train=32",
            "task.max_examples.validation=8",
            "task.max_examples.test=8",
        ]
    )
    summary, _ = run(cfg, tmp_path)
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert metrics.dropna(subset=["val/acc"])["step"].tolist() == [0, 2, 4]
    assert len(metrics["test/gen_acc"].dropna()) == 3
    for metric in ("acc", "acc_norm", "acc_per_token"):  # options scored whole: all three
        assert metrics[f"test/{metric}"].notna().sum() == 2  # before and after
        assert metrics[f"test/{metric}_stderr"].notna().sum() == 2
    full, decision = metrics["train/loss"].dropna(), metrics["train/decision_loss"].dropna()
    assert (decision.to_numpy() != full.to_numpy()).all()  # the text only, not its EOS
    assert 0.0 <= summary["test_acc_after"] <= 1.0
