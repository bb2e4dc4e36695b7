"""OpenBookQA and BoolQ in the MoE-LoRA reference's form (task.template=reference): its prompt,
target and parser string for string (THUDM/MoELoRA_Riemannian, dataset.py and prepare_data.py,
transcribed by hand below), both OpenBookQA schemas, BoolQ's original release, the refusals, the
config key and the Sun et al. experiments that use the form."""

import json
import re

import pytest
from omegaconf import OmegaConf

from loralab.tasks import DataError, build_task, task_config_errors
from loralab.tasks.commonsense import CommonsenseTask
from loralab.tasks.reference_forms import ReferenceBoolQ, ReferenceOpenBookQA
from tests.helpers import compose_config

ALL = {"train": None, "validation": None, "test": None}

# One OpenBookQA question in LLM-Adapters' records (the local copy's form) and in the Hub's
# allenai/openbookqa schema.
OBQA_LLM_ADAPTERS = {
    "instruction": "Please choose the correct answer to the question: The sun is responsible for"
    "\n\nAnswer1: puppies learning new tricks Answer2: children growing up and getting old "
    "Answer3: flowers wilting in a vase Answer4: plants sprouting, blooming and wilting\n\n"
    "Answer format: answer1/answer2/answer3/answer4",
    "input": "",
    "output": "the correct answer is answer4",
    "answer": "answer4",
}
OBQA_HUB = {
    "id": "7-980",
    "question_stem": "The sun is responsible for",
    "choices": {
        "text": [
            "puppies learning new tricks",
            "children growing up and getting old",
            "flowers wilting in a vase",
            "plants sprouting, blooming and wilting",
        ],
        "label": ["A", "B", "C", "D"],
    },
    "answerKey": "D",
}
# prepare_data.py's create_one_example("CQM-A", ...) input with context "N/A" (get_context_text
# of an empty hint), in ScienceQADataset's prompt_no_input; its output is the target.
OBQA_PROMPT = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\n"
    "Context: N/A\nQuestion: The sun is responsible for\nOptions: (A) puppies learning new "
    "tricks (B) children growing up and getting old (C) flowers wilting in a vase (D) plants "
    "sprouting, blooming and wilting\n"
    "\n\n### Response:\n"
)
OBQA_TARGET = "Answer: The answer is D."

# One question of BoolQ's original release (train.jsonl), as BoolQDataset reads it.
BOOLQ_RELEASE = {
    "question": "do iran and afghanistan speak the same language",
    "title": "Persian language",
    "answer": True,
    "passage": "Persian, also known by its endonym Farsi, is one of the Western Iranian languages.",
}
BOOLQ_PROMPT = (
    "Below is a passage followed by a question. Read the whole passage, and write a response to "
    "answer the question by Yes or No.\n\n### Passage And Question:\n\n"
    "Title:Persian language\nPersian, also known by its endonym Farsi, is one of the Western "
    "Iranian languages.\nQuestion:do iran and afghanistan speak the same language?"
    "\n\n### Response:\n"
)


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def task_cfg(name, source, template="reference", **caps):
    return {
        "name": name,
        "source": str(source),
        "template": template,
        "seed": 0,
        "max_examples": ALL | caps,
    }


def build(name, source, splits=("train",), template="reference", validation=0):
    """The task on ``source``; by default none of a one-file train split held out."""
    cfg = task_cfg(name, source, template=template, validation=validation)
    return build_task(cfg, splits=splits)


@pytest.mark.parametrize("row", [OBQA_LLM_ADAPTERS, OBQA_HUB], ids=["llm_adapters", "hub"])
def test_obqa_prompt_and_target_are_the_references_strings(row, tmp_path):
    task = build("obqa", write_jsonl(tmp_path / "q.jsonl", [row]))
    (record,) = task.splits["train"]
    assert isinstance(task, ReferenceOpenBookQA)
    assert task.prompt(record) == OBQA_PROMPT
    assert task.target(record) == OBQA_TARGET
    assert task.option_targets(record) == [f"Answer: The answer is {x}." for x in "ABCD"]
    assert task.option_labels(record) == list("ABCD") and task.gold_index(record) == 3
    assert task.cloze(record) == (
        "Question: The sun is responsible for\nAnswer:",
        OBQA_HUB["choices"]["text"],
    )


def test_boolq_prompt_and_target_are_the_references_strings(tmp_path):
    no = BOOLQ_RELEASE | {"answer": False}
    task = build("boolq", write_jsonl(tmp_path / "train.jsonl", [BOOLQ_RELEASE, no]))
    yes_record, no_record = task.splits["train"]
    assert isinstance(task, ReferenceBoolQ)
    assert task.prompt(yes_record) == BOOLQ_PROMPT
    assert task.target(yes_record) == "The answer is Yes"
    assert task.target(no_record) == "The answer is No"
    assert task.option_targets(yes_record) == ["The answer is Yes", "The answer is No"]
    assert task.option_labels(yes_record) == ["Yes", "No"]
    assert (task.gold_index(yes_record), task.gold_index(no_record)) == (0, 1)


def reference_evaluate(prompt: str, generated: str, split: str, regex: str) -> str:
    """The reference's evaluate(): the decoded prompt + output split at the response marker,
    [1] stripped, its regex matching exactly once, else its failure string."""
    response = (prompt + generated).split(split)[1].strip()
    found = re.compile(regex).findall(response)
    return found[0] if len(found) == 1 else "FAILD"


OBQA_PARSES = [
    ("Answer: The answer is D.", "D"),
    (" The answer is B.\n\nBelow is", "B"),
    ("The answer is C!", "C"),  # the reference's dot is unescaped
    ("The answer is AB", "A"),
    ("The answer is C", None),  # the dot needs one more character
    ("The answer is C\n", None),  # ... and the response is stripped first
    ("the answer is A.", None),  # case-sensitive
    ("The correct answer is A.", None),  # CommonsenseQA's form is not this task's
    ("the correct answer is answer1", None),  # nor LLM-Adapters'
    ("The answer is a.", None),
    ("The answer is A. The answer is B.", None),  # more than one match
    ("Answer: The answer is A.\n### Response:\nThe answer is B.", "A"),
    ("The answer is E.", "E"),  # parsed by the regex; labels none of the four options
    ("", None),
]


@pytest.mark.parametrize("generated, letter", OBQA_PARSES)
def test_obqa_parser_reads_what_the_references_regex_reads(generated, letter, tmp_path):
    task = build("obqa", write_jsonl(tmp_path / "q.jsonl", [OBQA_HUB]))
    (record,) = task.splits["train"]
    expected = reference_evaluate(
        OBQA_PROMPT, generated, "### Response:", r"The answer is ([A-Z])."
    )
    assert expected == (letter or "FAILD")
    assert task.parse(record, generated) == (None if letter == "E" else letter)


BOOLQ_PARSES = [
    ("The answer is Yes", "Yes"),
    (" The answer is No.\n\nBelow is", "No"),
    ("The answer is Yes, because", "Yes"),
    ("The answer is yes", None),  # case-sensitive
    ("the answer is Yes", None),
    ("The answer is true", None),
    ("the correct answer is true", None),  # LLM-Adapters' form is not this one
    ("The answer is Yes. The answer is No", None),  # more than one match
    ("The answer is No\n### Response:\nThe answer is Yes", "No"),
    ("The answer is Ye", "Ye"),  # the regex's [s]? is optional: a match, but not Yes
    ("The answer is Nos", "Nos"),
    ("", None),
]


@pytest.mark.parametrize("generated, word", BOOLQ_PARSES)
def test_boolq_parser_reads_what_the_references_regex_reads(generated, word, tmp_path):
    task = build("boolq", write_jsonl(tmp_path / "train.jsonl", [BOOLQ_RELEASE]))
    (record,) = task.splits["train"]
    expected = reference_evaluate(
        BOOLQ_PROMPT, generated, "### Response:", r"The answer is ([YN][eo][s]?)"
    )
    assert expected == (word or "FAILD")
    # a match that is neither Yes nor No is wrong in the reference (it differs from the label)
    assert task.parse(record, generated) == (word if word in ("Yes", "No") else None)


def test_boolq_reads_the_original_releases_files_dev_as_validation_and_test(tmp_path):
    rows = [BOOLQ_RELEASE | {"question": f"is {i} even", "answer": i % 2 == 0} for i in range(9)]
    write_jsonl(tmp_path / "train.jsonl", rows[:6])
    write_jsonl(tmp_path / "dev.jsonl", rows[6:])
    task = build("boolq", tmp_path, splits=("train", "validation", "test"), validation=None)
    assert {s: len(r) for s, r in task.splits.items()} == {"train": 6, "validation": 3, "test": 3}
    assert task.splits["validation"] == task.splits["test"]  # dev is both, as the reference


def test_boolq_refuses_records_that_cannot_give_its_prompt(tmp_path):
    llm_adapters = {
        "instruction": "Please answer the following question with true or false, question: do "
        "iran and afghanistan speak the same language?\n\nAnswer format: true/false",
        "input": "",
        "output": "the correct answer is true",
        "answer": "true",
    }
    file = write_jsonl(tmp_path / "boolq" / "train.jsonl", [llm_adapters])
    with pytest.raises(DataError, match=r"record 0: LLM-Adapters' BoolQ records .* no passage"):
        build("boolq", tmp_path)
    assert build("boolq", tmp_path, template="llm_adapters").splits["train"][0]["answer"] == "true"
    hub = {k: v for k, v in BOOLQ_RELEASE.items() if k != "title"}  # google/boolq: no titles
    write_jsonl(file, [hub])
    with pytest.raises(DataError, match=r"missing field 'title' .*google/boolq has no titles"):
        build("boolq", tmp_path)
    write_jsonl(file, [BOOLQ_RELEASE | {"answer": "true"}])
    with pytest.raises(DataError, match=r"field 'answer'='true' is not true or false"):
        build("boolq", tmp_path)


def test_obqa_refuses_a_record_in_neither_schema(tmp_path):
    file = write_jsonl(tmp_path / "q.jsonl", [OBQA_HUB, {"question": "?", "answerKey": "A"}])
    with pytest.raises(DataError, match=r"record 1: neither the Hub's OpenBookQA schema"):
        build("obqa", file)
    other = OBQA_LLM_ADAPTERS | {"instruction": "Pick one: x\n\nAnswer format: answer1/answer2"}
    write_jsonl(file, [other | {"answer": "answer1", "output": "the correct answer is answer1"}])
    with pytest.raises(DataError, match=r"record 0: field 'instruction' is not LLM-Adapters'"):
        build("obqa", file)


def test_the_template_key_is_checked_and_defaults_to_llm_adapters(tmp_path):
    write_jsonl(tmp_path / "openbookqa" / "train.jsonl", [OBQA_LLM_ADAPTERS])
    file = tmp_path  # LLM-Adapters' root layout, read by both forms
    for name in ("obqa", "boolq"):
        errors = task_config_errors(task_cfg(name, file, template="sun"))
        assert errors == [
            "task.template='sun' must be one of ['llm_adapters', 'reference'] (llm_adapters: "
            "LLM-Adapters' instruction and answer words; reference: the MoE-LoRA reference's "
            "prompt, target and parser, Sun et al.'s)"
        ]
        assert task_config_errors(task_cfg(name, file, template="llm_adapters")) == []
    assert isinstance(build("obqa", file, template="llm_adapters"), CommonsenseTask)
    unset = {k: v for k, v in task_cfg("obqa", file).items() if k != "template"}
    assert isinstance(build_task(unset, splits=("train",)), CommonsenseTask)
    assert compose_config(["task=obqa"]).task.template == "llm_adapters"
    assert compose_config(["task=boolq"]).task.template == "llm_adapters"


def test_a_bad_template_is_a_config_error_of_the_composed_config():
    from loralab.cli.validation import ConfigError, validate_config

    cfg = compose_config(["experiment=paper_obqa", "task.template=sun"])
    with pytest.raises(ConfigError, match=r"task\.template='sun' must be one of"):
        validate_config(cfg)


def test_the_sun_et_al_configs_use_the_reference_form():
    cfg = compose_config(["experiment=paper_obqa", "optimizer=rsgd"])
    OmegaConf.resolve(cfg)
    assert cfg.task.name == "obqa" and cfg.task.template == "reference"
    assert cfg.data.target_layout == "reference" and cfg.task.max_examples.validation == 120
    twin = compose_config(["experiment=paper_obqa_cpu", "data_root=/data"])
    OmegaConf.resolve(twin)
    assert twin.task.template == "reference" and twin.task.source == "/data/commonsense"
    assert twin.model.name == "smollm2_135m" and twin.data.target_layout == "reference"
    boolq = compose_config(["experiment=paper_boolq", "optimizer=radamw"], hydra=True)
    assert boolq.task.name == "boolq" and boolq.task.template == "reference"
    assert boolq.task.source == "https://storage.googleapis.com/boolq"
    assert boolq.task.max_examples.validation is None  # the whole dev split, as the reference
    assert len(boolq.hydra.sweeper.params.optimizer.split(",")) == 8
    OmegaConf.resolve(boolq)
    assert boolq.data.max_length == 256 and boolq.model.name == "llama3_2_3b"


def test_the_obqa_cpu_twin_renders_every_local_question_in_the_reference_form(shared_data):
    cfg = compose_config(["experiment=paper_obqa_cpu", f"data_root={shared_data}"])
    task_node = OmegaConf.to_container(cfg, resolve=True)["task"]
    task = build_task(task_node)
    assert isinstance(task, ReferenceOpenBookQA)
    counts = {split: len(records) for split, records in task.splits.items()}
    assert counts == {"train": 4837, "validation": 120, "test": 500}
    # the same questions, split the same way, as the llm_adapters form
    plain = build_task(task_node | {"template": "llm_adapters"})
    for split, records in task.splits.items():
        for ours, theirs in zip(records, plain.splits[split], strict=True):
            options = " ".join(f"Answer{i + 1}: {text}" for i, text in enumerate(ours["choices"]))
            assert f": {ours['question']}\n\n{options}\n\n" in theirs["instruction"]
            assert theirs["choices"][ours["answer"]] == theirs["answer"]
            assert task.prompt(ours).endswith("\n\n\n### Response:\n")
            assert task.option_labels(ours) == list("ABCD")


def test_the_local_boolq_records_are_refused_in_the_reference_form(shared_data):
    with pytest.raises(DataError, match="no title and no passage"):
        build("boolq", shared_data / "commonsense", splits=("test",))


@pytest.mark.integration
def test_the_obqa_cpu_twin_runs_end_to_end_in_the_reference_form(shared_data, tmp_path):
    """paper_obqa_cpu at two steps: trained, scored and generated in the reference's form."""
    from loralab.cli.train import run

    overrides = [
        "experiment=paper_obqa_cpu",
        "optimizer=rsgd",
        f"data_root={shared_data}",
        "logger=csv",
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "evaluation.generate_every=2",
        "task.max_examples.train=16",
        "task.max_examples.validation=4",
        "task.max_examples.test=6",
    ]
    summary, _ = run(compose_config(overrides), tmp_path / "run")
    assert summary["steps"] == 2
    predictions = tmp_path / "run" / "predictions" / "test_generate_step2.jsonl"
    lines = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(lines) == 6 and all(line["gold"] in "ABCD" for line in lines)
