"""``cloze`` mode: each option's own text scored after the bare question (score mode on the
task's text form). Batched scores equal a one-sequence-at-a-time reference (per adapter kind and
precision: test_option_likelihood.py); every task's records give the question and option texts."""

import json

import pytest
import torch
from omegaconf import OmegaConf

from loralab.data.encoding import IGNORE_INDEX, encode_continuation, encode_prompt
from loralab.data.options import encode_option, option_batch
from loralab.evaluation.likelihood import option_loglikelihoods
from loralab.models import load_model
from loralab.tasks import DataError, build_task
from loralab.tasks.commonsense import FOLDERS, CommonsenseTask, cloze_form
from loralab.tasks.scienceqa import ScienceQATask
from loralab.tasks.text_answers import with_answer_form
from tests.evaluation.test_modes_and_cli import eval_cli
from tests.helpers import compose_config

QUESTIONS = [
    ("Question: which is a mammal?\nAnswer:", ["a whale", "a shark", "a trout swimming upstream"]),
    ("Context: magnets\nQuestion: will they attract?\nAnswer:", ["attract", "repel"]),
    ("Question: " + "why " * 40 + "\nAnswer:", ["because", "it is so", "no"]),
]


@pytest.fixture(scope="module")
def tiny():
    cfg = compose_config(["model=tiny_llama"])
    return load_model(OmegaConf.to_container(cfg, resolve=True)["model"])


def reference_scores(model, tokenizer, context: str, options: list[str]) -> list[float]:
    """One sequence at a time, full logits, explicit log-softmax: the mean log-probability of
    the option's tokens after the context."""
    scores = []
    for option in options:
        context_ids, _ = encode_prompt(tokenizer, context)
        option_ids = tokenizer(" " + option, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([context_ids + option_ids])
        with torch.no_grad():
            log_probs = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
        start = len(context_ids)
        picked = [log_probs[start + i - 1, token] for i, token in enumerate(option_ids)]
        scores.append(float(sum(picked) / len(picked)))
    return scores


def test_batched_scores_equal_the_one_at_a_time_reference(tiny):
    model, tokenizer = tiny
    questions = [
        tuple(encode_option(tokenizer, context, " " + option, max_length=512) for option in options)
        for context, options in QUESTIONS
    ]
    with torch.no_grad():
        scores = option_loglikelihoods(model, option_batch(questions, tokenizer.pad_token_id))
    batched = (scores.loglik / scores.tokens).tolist()
    expected = [
        s for c, options in QUESTIONS for s in reference_scores(model, tokenizer, c, options)
    ]
    assert batched == pytest.approx(expected, abs=1e-5)
    assert len({round(s, 6) for s in batched}) > 3  # not all alike


def test_a_long_context_is_cut_on_its_side_and_the_option_kept(tiny):
    _, tokenizer = tiny
    context, options = QUESTIONS[2]
    whole = encode_continuation(tokenizer, context, " " + options[1], max_length=10_000)
    short = encode_continuation(tokenizer, context, " " + options[1], max_length=24)
    full, cut = whole.input_ids, short.input_ids
    n = sum(label != IGNORE_INDEX for label in short.labels)
    assert short.labels[-n:] == cut[-n:]  # only the option's ids are scored
    assert len(full) > 24 and len(cut) == 24 and short.truncated and not whole.truncated
    assert cut[-n:] == full[-n:] and n == len(
        tokenizer(" it is so", add_special_tokens=False)["input_ids"]
    )
    lead = encode_prompt(tokenizer, context)[1]
    assert cut[:lead] == full[:lead]  # the BOS stays


@pytest.mark.parametrize(
    "instruction, choices, question, texts",
    [
        (  # ARC / OBQA / SIQA: options on one line
            "Please choose the correct answer to the question: Which is hot?\n\nAnswer1: ice "
            "Answer2: the sun\n\nAnswer format: answer1/answer2",
            ["answer1", "answer2"],
            "Which is hot?",
            ["ice", "the sun"],
        ),
        (  # PIQA: one paragraph per option
            "Please choose the correct solution to the question: dry a towel\n\nSolution1: hang "
            "it\n\nSolution2: soak it\n\nAnswer format: solution1/solution2",
            ["solution1", "solution2"],
            "dry a towel",
            ["hang it", "soak it"],
        ),
        (  # WinoGrande: no blank line before the format line; a colon inside the question
            "Please choose the correct answer to fill in the blank to complete the given "
            "sentence: Note: Ann beat Bo so _ won.\n\nOption1: Ann Option2: Bo Answer format: "
            "option1/option2",
            ["option1", "option2"],
            "Note: Ann beat Bo so _ won.",
            ["Ann", "Bo"],
        ),
        (  # BoolQ: no options listed, the answer words are the texts
            "Please answer the following question with true or false, question: is ice cold?"
            "\n\nAnswer format: true/false",
            ["true", "false"],
            "is ice cold?",
            ["true", "false"],
        ),
    ],
)
def test_commonsense_cloze_form(instruction, choices, question, texts):
    record = {"instruction": instruction, "choices": choices, "id": "t-0"}
    assert cloze_form(record) == (f"Question: {question}\nAnswer:", texts)


def test_commonsense_record_with_missing_option_text_is_named():
    record = {
        "instruction": "Pick: q\n\nAnswer1: a Answer3: c\n\nAnswer format: answer1/answer2/answer3",
        "choices": ["answer1", "answer2", "answer3"],
        "id": "arc_e-7",
    }
    with pytest.raises(DataError, match=r"'arc_e'.*'arc_e-7'.*\['1', '3'\]"):
        with_answer_form(CommonsenseTask("arc_e", {"test": [record]}), "text")


def test_scienceqa_cloze_form_has_the_hint_as_context():
    task = ScienceQATask("scienceqa", {})
    record = {"question": "Which is a mammal?", "choices": ["whale", "shark"], "hint": "Sea life."}
    assert task.cloze(record) == (
        "Context: Sea life.\nQuestion: Which is a mammal?\nAnswer:",
        [
            "whale",
            "shark",
        ],
    )
    assert task.cloze(dict(record, hint=""))[0] == "Question: Which is a mammal?\nAnswer:"


def test_every_commonsense_test_record_has_a_cloze_form(shared_data):
    for name in FOLDERS:
        cfg = {"name": name, "source": str(shared_data / "commonsense"), "seed": 0}
        cfg["max_examples"] = {"train": None, "validation": 0, "test": None}
        task = build_task(cfg, splits=("test",))
        for record in with_answer_form(task, "text").splits["test"]:
            context, texts = record["cloze"]
            assert len(texts) == len(record["choices"]) and all(texts), record["id"]
            assert context.startswith("Question: ") and "Answer format" not in context


def test_eval_cli_cloze_mode(tmp_path):
    run_dir = tmp_path / "eval"
    args = ["model=tiny_llama", "task=demo", "task.max_examples.test=24", "mode=cloze"]
    done = eval_cli([*args, f"hydra.run.dir={run_dir}"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((run_dir / "eval.json").read_text())
    assert report["config"]["mode"] == "cloze" and report["summary"]["overall"]["n"] == 24
    assert {r["prediction"] for r in report["records"]} <= set("ABCDE")
    assert "cloze test" in done.stderr and "q/s" in done.stderr  # the progress bar

    overall = report["summary"]["overall"]
    for metric in ("acc", "acc_norm", "acc_per_token"):
        assert 0 <= overall[metric] <= 1 and overall[f"{metric}_stderr"] > 0
    assert overall["accuracy"] == overall["acc"]  # the headline figure is lm-eval's acc
    assert "| acc | acc_norm | acc_per_token |" in done.stdout and "lm-eval" in done.stdout
    lines = (run_dir / "predictions.jsonl").read_text().splitlines()
    predictions = [json.loads(line) for line in lines]
    assert len(predictions) == 24 and "predictions.jsonl" in done.stdout
    for metric in ("acc", "acc_norm", "acc_per_token"):  # the picks reproduce the figures
        hits = [p["picks"][metric] == p["gold_index"] for p in predictions]
        assert sum(hits) / 24 == overall[metric]
    records = {r["id"]: r for r in report["records"]}
    for line in predictions:
        options = line["options"]
        assert len(options) == records[line["id"]]["options"] >= 2
        assert all(o["loglik"] < 0 and o["tokens"] >= 1 and o["chars"] >= 1 for o in options)
        assert all(o["bytes"] >= o["chars"] for o in options)
        sums = [o["loglik"] for o in options]
        assert line["picks"]["acc"] == sums.index(max(sums))
        per_char = [o["loglik"] / o["chars"] for o in options]
        assert line["picks"]["acc_norm"] == per_char.index(max(per_char))
        assert "ABCDE"[line["picks"]["acc"]] == records[line["id"]]["prediction"]


def test_eval_cli_names_a_record_without_option_texts(tmp_path):
    folder = tmp_path / "data" / FOLDERS["arc_e"]
    folder.mkdir(parents=True)
    record = {
        "instruction": "Pick: q\n\nAnswer1: a Answer3: c\n\nAnswer format: answer1/answer2/answer3",
        "input": "",
        "output": "the correct answer is answer1",
        "answer": "answer1",
    }
    (folder / "test.json").write_text(json.dumps([record]))
    args = ["model=tiny_llama", "task=arc_e", f"task.source={tmp_path / 'data'}", "mode=cloze"]
    done = eval_cli([*args, f"hydra.run.dir={tmp_path / 'eval'}"], tmp_path)
    assert done.returncode == 2 and "'arc_e-0'" in done.stderr and "cloze" in done.stderr
    assert not (tmp_path / "eval" / "eval.json").exists()
