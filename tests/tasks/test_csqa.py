"""CommonsenseQA: the MoE-LoRA reference's template and parser string for string, both schemas
read to the same records, the official dev split, and task=csqa run end to end."""

import gzip
import json
import re

import pytest
from omegaconf import OmegaConf

from loralab.tasks import DataError, build_task
from loralab.tasks.csqa import parse_csqa
from tests.helpers import compose_config

ALL = {"train": None, "validation": None, "test": None}
DEV_QUESTIONS = 1221

# The first question of the official dev split, in the Hub's schema (as the shared copy has it).
HUB_RECORD = {
    "id": "1afa02df02c908a558b4036e80242fac",
    "question": "A revolving door is convenient for two direction travel, but it also serves as "
    "a security measure at a what?",
    "question_concept": "revolving door",
    "choices": {
        "label": ["A", "B", "C", "D", "E"],
        "text": ["bank", "library", "department store", "mall", "new york"],
    },
    "answerKey": "A",
}
# The reference's rendering of it (dataset.py, CommonsenseQADataset), checked by hand.
REFERENCE_PROMPT = (
    "Below is a question followed by several possible answers. Please choose the correct "
    "answer.\n\n### Question and Possible Answers:\n\n"
    "A revolving door is convenient for two direction travel, but it also serves as a security "
    "measure at a what?\n(A). bank\n(B). library\n(C). department store\n(D). mall\n"
    "(E). new york\n\n### Correct Answer:\n"
)
REFERENCE_TARGET = "The correct answer is A."


def original(row: dict) -> dict:
    """A Hub-schema record in the original release's schema."""
    choices = [
        {"label": label, "text": text}
        for label, text in zip(row["choices"]["label"], row["choices"]["text"], strict=True)
    ]
    question = {"question_concept": row["question_concept"], "choices": choices}
    return {
        "answerKey": row["answerKey"],
        "id": row["id"],
        "question": question | {"stem": row["question"]},
    }


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def csqa(source, splits=("train", "validation", "test"), hold_out=None, **caps):
    cfg = {
        "name": "csqa",
        "source": str(source),
        "test_split": "validation",
        "hold_out": {"validation": None, "test": None} | (hold_out or {}),
        "seed": 0,
        "max_examples": ALL | caps,
    }
    return build_task(cfg, splits=splits)


def dev_rows(shared_data) -> list[dict]:
    with gzip.open(shared_data / "commonsenseqa" / "dev_rand_split.jsonl.gz", "rt") as handle:
        return [json.loads(line) for line in handle]


@pytest.mark.parametrize("schema", ["hub", "original"])
def test_prompt_and_target_are_the_references_strings(schema, tmp_path):
    row = HUB_RECORD if schema == "hub" else original(HUB_RECORD)
    task = csqa(write_jsonl(tmp_path / "q.jsonl", [row]), splits=("train",))
    (record,) = task.splits["train"]
    assert task.prompt(record) == REFERENCE_PROMPT
    assert task.target(record) == REFERENCE_TARGET
    assert task.option_targets(record) == [f"The correct answer is {x}." for x in "ABCDE"]
    assert task.option_labels(record) == list("ABCDE") and task.gold_index(record) == 0
    assert task.cloze(record) == (
        f"Question: {HUB_RECORD['question']}\nAnswer:",
        HUB_RECORD["choices"]["text"],
    )


def reference_parse(prompt: str, generated: str) -> str:
    """The reference's evaluate(): the decoded prompt + output split at the response marker,
    stripped, its regex matching exactly once, else its failure string."""
    response = (prompt + generated).split("### Correct Answer:")[1].strip()
    found = re.compile(r"The correct answer is ([A-Z]).").findall(response)
    return found[0] if len(found) == 1 else "FAILD"


PARSES = [
    ("The correct answer is A.", "A"),
    (" The correct answer is B.\n\nBelow is", "B"),
    ("The correct answer is D!", "D"),  # the reference's dot is unescaped
    ("The correct answer is AB", "A"),
    ("The correct answer is C", None),  # the dot needs one more character
    ("The correct answer is C\n", None),  # ... and the response is stripped first
    ("The correct answer is C ", None),
    ("the correct answer is A.", None),  # case-sensitive
    ("The answer is A.", None),  # ScienceQA's form is not this task's
    ("The correct answer is (A).", None),
    ("The correct answer is a.", None),
    ("The correct answer is A. The correct answer is B.", None),  # more than one match
    ("The correct answer is A.\n### Correct Answer:\nThe correct answer is B.", "A"),
    ("", None),
]


@pytest.mark.parametrize("generated, letter", PARSES)
def test_the_parser_reads_what_the_references_regex_reads(generated, letter):
    assert parse_csqa(generated) == letter
    assert reference_parse(REFERENCE_PROMPT, generated) == (letter or "FAILD")


def test_a_letter_outside_the_options_is_no_answer(tmp_path):
    task = csqa(write_jsonl(tmp_path / "q.jsonl", [HUB_RECORD]), splits=("train",))
    (record,) = task.splits["train"]
    assert task.parse(record, "The correct answer is E.") == "E"
    assert task.parse(record, "The correct answer is F.") is None  # wrong in the reference too


def test_both_schemas_read_to_identical_records(shared_data, tmp_path):
    """The shared dev split (Hub schema) as jsonl, as a datasets folder (typed columns, the
    Hub's route), and in the original release's schema and file names."""
    import datasets

    rows = dev_rows(shared_data)[:40]
    write_jsonl(tmp_path / "hub" / "validation.jsonl", rows)
    hub = csqa(tmp_path / "hub", splits=("validation",))
    saved = tmp_path / "saved"
    datasets.DatasetDict(validation=datasets.Dataset.from_list(rows)).save_to_disk(str(saved))
    typed = csqa(saved, splits=("validation",))
    release = tmp_path / "release"
    write_jsonl(release / "dev_rand_split.jsonl", [original(r) for r in rows])
    orig = csqa(release, splits=("validation",))
    assert hub.splits == typed.splits == orig.splits
    first = hub.splits["validation"][0]
    assert first == {
        "id": HUB_RECORD["id"],
        "question": HUB_RECORD["question"],
        "labels": list("ABCDE"),
        "choices": HUB_RECORD["choices"]["text"],
        "answer": "A",
        "concept": "revolving door",
    }


def reference_rendering(row: dict) -> tuple[str, str]:
    """The reference's prompt and output for an original-release record, step by step as its
    CommonsenseQADataset builds them."""
    question = row["question"]
    lines = [f"({c['label'].strip()}). {c['text']}" for c in question["choices"]]
    instruction = question["stem"] + "\n" + "\n".join(lines)
    prompt = (
        "Below is a question followed by several possible answers. Please choose the correct "
        "answer.\n\n### Question and Possible Answers:\n\n"
        + instruction
        + "\n\n### Correct Answer:\n"
    )
    return prompt, "The correct answer is " + row["answerKey"] + "."


def test_every_dev_question_renders_as_the_reference_renders_it(shared_data):
    rows = dev_rows(shared_data)
    task = csqa(shared_data / "commonsenseqa", splits=("validation",))
    assert len(task.splits["validation"]) == len(rows)
    for row, record in zip(rows, task.splits["validation"], strict=True):
        expected = reference_rendering(original(row))
        assert (task.prompt(record), task.target(record)) == expected, row["id"]


def test_the_shared_dev_split_holds_the_official_1221_questions(shared_data):
    folder = shared_data / "commonsenseqa"  # read as the original release: dev = validation
    task = csqa(folder, splits=("validation", "test"))
    assert len(task.splits["validation"]) == len(task.splits["test"]) == DEV_QUESTIONS
    assert len({r["id"] for r in task.splits["test"]}) == DEV_QUESTIONS
    answers = {r["answer"] for r in task.splits["test"]}
    assert answers == set("ABCDE")


def test_the_cpu_twin_trains_and_tests_on_disjoint_parts_of_dev(shared_data):
    cfg = compose_config(["experiment=paper_csqa_cpu", f"data_root={shared_data}"])
    task = build_task(OmegaConf.to_container(cfg, resolve=True)["task"])
    ids = {split: [r["id"] for r in records] for split, records in task.splits.items()}
    assert {split: len(v) for split, v in ids.items()} == {
        "train": 601,
        "validation": 120,
        "test": 500,
    }
    train, validation, test = (set(ids[s]) for s in ("train", "validation", "test"))
    assert not (train & test or train & validation or validation & test)
    assert len(train | validation | test) == DEV_QUESTIONS
    again = build_task(OmegaConf.to_container(cfg, resolve=True)["task"])
    assert [r["id"] for r in again.splits["test"]] == ids["test"]  # seeded


def test_hold_out_carves_a_single_file_test_first_and_only_where_a_split_is_missing(tmp_path):
    rows = [HUB_RECORD | {"id": str(i), "question": f"Question {i}?"} for i in range(30)]
    file = write_jsonl(tmp_path / "pool.jsonl", rows)
    task = csqa(file, hold_out={"test": 10, "validation": 5})
    counts = {split: len(records) for split, records in task.splits.items()}
    assert counts == {"train": 15, "validation": 5, "test": 10}
    only_test = csqa(file, splits=("test",), hold_out={"test": 10, "validation": 20})
    assert only_test.splits["test"] == task.splits["test"]
    folder = tmp_path / "splits"  # a source with its own splits reads them: hold_out unused
    write_jsonl(folder / "train.jsonl", rows[:20])
    write_jsonl(folder / "validation.jsonl", rows[20:])
    own = csqa(folder, hold_out={"test": 10, "validation": 5})
    assert {split: len(records) for split, records in own.splits.items()} == {
        "train": 20,
        "validation": 10,
        "test": 10,
    }
    assert own.splits["test"] == own.splits["validation"]  # the dev split, as the reference
    with pytest.raises(DataError, match=r"task.hold_out.validation=25: .* has 20 questions"):
        csqa(file, hold_out={"test": 10, "validation": 25})
    with pytest.raises(
        DataError,
        match=r"no validation split \(task\.test_split\) to score as test; .*\(task\.hold_out\.test=N\)",
    ):
        csqa(file, splits=("test",))


BAD = [
    ({"question": None}, "missing field 'question' (the question text"),
    ({"question": 3}, "field 'question'=3 is neither text"),
    ({"choices": None}, "missing field 'choices'"),
    ({"choices": {"label": list("ABCDE")}}, "missing field 'choices.text'"),
    ({"choices": {"label": list("ABCD"), "text": list("vwxyz")}}, "hold 4 and 5 entries"),
    ({"choices": {"label": ["A", "BB"], "text": ["x", "y"]}}, "each label is one letter"),
    ({"choices": {"label": ["A", "A"], "text": ["x", "y"]}}, "repeats a label"),
    ({"choices": {"label": ["A", "B"], "text": ["x", 2]}}, "entry 1 of field 'choices.text'"),
    ({"answerKey": None}, "missing field 'answerKey'"),
    ({"answerKey": ""}, "the released test split has no answers"),
    ({"answerKey": "F"}, "field 'answerKey'='F' is not among the labels"),
    ({"question": ""}, "field 'question' is empty"),
]


@pytest.mark.parametrize("change, message", BAD, ids=[m for _, m in BAD])
def test_a_record_in_neither_schema_names_the_record_and_field(change, message, tmp_path):
    bad = {k: v for k, v in (HUB_RECORD | change).items() if v is not None}
    file = write_jsonl(tmp_path / "q.jsonl", [HUB_RECORD, bad])
    with pytest.raises(DataError) as err:
        csqa(file, splits=("train",))
    assert str(err.value).startswith(f"{file}: record 1 (id '{HUB_RECORD['id']}'): ")
    assert message in str(err.value)


ORIGINAL_BAD = [
    ({"stem": None}, "missing field 'question.stem'"),
    ({"choices": None}, "missing field 'question.choices'"),
    ({"choices": [{"label": "A"}, {"label": "B", "text": "y"}]}, "'question.choices[0].text'"),
    ({"choices": ["x", "y"]}, "field 'question.choices[0]'='x' is not an object"),
]


@pytest.mark.parametrize("change, message", ORIGINAL_BAD, ids=[m for _, m in ORIGINAL_BAD])
def test_a_bad_original_release_record_names_its_field(change, message, tmp_path):
    row = original(HUB_RECORD)
    row["question"] = {k: v for k, v in (row["question"] | change).items() if v is not None}
    file = write_jsonl(tmp_path / "q.jsonl", [row])
    with pytest.raises(DataError, match=re.escape(message)):
        csqa(file, splits=("train",))


def test_config_keys_are_checked():
    from loralab.tasks import task_config_errors

    cfg = {"name": "csqa", "source": "x", "seed": 0, "max_examples": ALL}
    errors = task_config_errors(cfg | {"test_split": "train", "hold_out": {"test": -1}})
    assert any(e.startswith("task.test_split='train' must be one of") for e in errors)
    assert "task.hold_out.test=-1 must be null or an integer >= 0" in errors
    assert task_config_errors(cfg | {"test_split": "test", "hold_out": {"test": 3}}) == []


def test_paper_config_states_the_papers_settings():
    cfg = compose_config(["experiment=paper_csqa", "optimizer=rsgd"])
    OmegaConf.resolve(cfg)
    assert cfg.task.name == "csqa" and cfg.task.source == "tau/commonsense_qa"
    assert cfg.task.test_split == "validation" and cfg.task.max_examples.validation is None
    assert cfg.model.name == "llama3_2_3b" and cfg.data.max_length == 256
    assert cfg.data.target_layout == "reference" and cfg.trainer.max_steps == 2000
    twin = compose_config(["experiment=paper_csqa_cpu", "data_root=/data"])
    OmegaConf.resolve(twin)
    assert twin.model.name == "smollm2_135m"
    assert twin.task.source == "/data/commonsenseqa/dev_rand_split.jsonl.gz"
    assert (twin.adapter.num_experts, twin.adapter.top_k, twin.adapter.rank) == (20, 10, 4)


TINY_RUN = [
    "logger=csv",
    "trainer.max_steps=2",
    "trainer.val_check_interval=2",
    "evaluation.generate_every=2",
    "task.max_examples.train=16",
    "task.max_examples.validation=4",
    "task.max_examples.test=6",
]


@pytest.mark.integration
@pytest.mark.parametrize("schema", ["hub", "original"])
def test_task_csqa_runs_end_to_end_on_the_dev_split(schema, shared_data, tmp_path):
    """The CPU twin at a few steps: on the shared dev split as the twin reads it (Hub schema),
    and on the original release's files (trained on part of dev). The twin's own model: the
    tiny test tokenizer has no single tokens for " D" and " E", so score mode cannot tell the
    five answers apart at one token."""
    from loralab.cli.train import run

    overrides = ["experiment=paper_csqa_cpu", "optimizer=rsgd", f"data_root={shared_data}"]
    if schema == "original":
        rows = [original(r) for r in dev_rows(shared_data)[:60]]
        release = tmp_path / "release"
        write_jsonl(release / "train_rand_split.jsonl", rows[:40])
        write_jsonl(release / "dev_rand_split.jsonl", rows[40:])
        overrides.append(f"task.source={release}")  # its own dev split: hold_out unused
    summary, _ = run(compose_config([*overrides, *TINY_RUN]), tmp_path / "run")
    assert summary["steps"] == 2
    assert (tmp_path / "run" / "adapter" / "adapter.safetensors").is_file()
    predictions = tmp_path / "run" / "predictions" / "test_generate_step2.jsonl"
    lines = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(lines) == 6 and all(line["gold"] in "ABCDE" for line in lines)
