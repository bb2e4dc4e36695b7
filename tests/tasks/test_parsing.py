"""The papers' answer parsers on tricky outputs."""

import pytest

from loralab.tasks.commonsense import parse_commonsense
from loralab.tasks.scienceqa import parse_scienceqa


@pytest.mark.parametrize(
    "output,letter",
    [
        ("Answer: The answer is B.", "B"),
        ("The answer is C. Because magnets with opposite poles attract.", "C"),  # trailing text
        ("Answer: The answer is A.</s> ignored", "A"),
        ("The answer is A, I think", "A"),  # the reference's unescaped dot: any character
        ("The answer is A. No wait, The answer is B.", None),  # two answers: not exactly one
        ("The answer is A. The answer is A.", None),  # even when both agree
        ("the answer is b.", None),  # lowercase
        ("The answer is b.", None),
        ("Answer: The answer is B", None),  # cut right after the letter: nothing for the dot
        ("I do not know.", None),
        ("", None),
    ],
)
def test_scienceqa_pattern_must_match_exactly_once(output, letter):
    assert parse_scienceqa(output) == letter


@pytest.mark.parametrize(
    "output,gold,word",
    [
        ("the correct answer is answer2", "answer1", "answer2"),
        ("answer3, not answer1", "answer1", "answer3"),  # the first match wins
        ("the correct answer is answer12", "answer1", "answer1"),  # the reference's regex
        ("the correct answer is Answer2", "answer1", None),  # case-sensitive
        ("the correct answer is answer6", "answer1", None),  # outside the vocabulary
        ("the correct answer is true", "false", "true"),
        ("it is untrue", "false", "true"),  # substring match, as in the reference
        ("the correct answer is solution2", "solution1", "solution2"),
        ("the correct answer is ending4", "ending1", "ending4"),
        ("the correct answer is option1", "option2", "option1"),
        ("the correct answer is ending1", "option2", None),  # another task's vocabulary
        ("no idea", "true", None),
    ],
)
def test_commonsense_takes_the_first_vocabulary_word(output, gold, word):
    assert parse_commonsense(output, gold) == word
