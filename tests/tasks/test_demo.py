"""The bundled demo quiz: deterministic, well-formed, in the ScienceQA prompt format."""

import pytest

from loralab.tasks.demo import generate_demo_quiz
from loralab.tasks.scienceqa import scienceqa_prompt, scienceqa_target


def test_deterministic_for_a_seed():
    assert generate_demo_quiz("train", 50, seed=3) == generate_demo_quiz("train", 50, seed=3)
    assert generate_demo_quiz("train", 50, seed=3) != generate_demo_quiz("train", 50, seed=4)
    assert generate_demo_quiz("test", 50) != generate_demo_quiz("train", 50)


def test_records_are_scienceqa_shaped():
    for record in generate_demo_quiz("validation", 100):
        assert {"question", "choices", "answer", "hint", "subject"} <= set(record)
        assert 2 <= len(record["choices"]) <= 4
        assert len(set(record["choices"])) == len(record["choices"])
        assert 0 <= record["answer"] < len(record["choices"])


def test_answers_are_balanced_enough_to_need_learning():
    answers = [r["answer"] for r in generate_demo_quiz("train", 1000)]
    assert max(answers.count(i) for i in set(answers)) / len(answers) < 0.6


def test_prompt_format_is_scienceqa():
    record = {"question": "Which is hot?", "choices": ["ice", "fire"], "answer": 1, "hint": ""}
    assert scienceqa_prompt(record) == (
        "Below is an instruction that describes a task. Write a response that appropriately "
        "completes the request.\n\n### Instruction:\nContext: N/A\nQuestion: Which is hot?\n"
        "Options: (A) ice (B) fire\n\n\n### Response:\n"
    )
    assert scienceqa_target(1) == "Answer: The answer is B."


def test_unknown_split():
    with pytest.raises(ValueError, match="demo split 'dev'"):
        generate_demo_quiz("dev", 3)
