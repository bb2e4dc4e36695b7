"""The papers' answer parsers for generated text (``generate`` mode).

ScienceQA (THUDM/MoELoRA_Riemannian): ``re.findall(r"The answer is ([A-Z]).", output)`` must
find exactly one match; anything else (no match, two answers, lowercase) is a failed parse and
counts as wrong. The pattern is the reference's, unescaped dot included: any one character must
follow the letter, so an output cut right after the letter does not parse.

Commonsense (LLM-Adapters / MoSLoRA ``extract_answer``): the first occurrence, anywhere in the
output and case-sensitive, of any word of the task's answer vocabulary; no occurrence is wrong.
"""

from __future__ import annotations

import re

SCIENCEQA_ANSWER = re.compile(r"The answer is ([A-Z]).")

# Per answer family, the words the reference searches for, in the reference's order.
VOCABULARIES = {
    "true": ("true", "false"),
    "false": ("true", "false"),
    "solution": ("solution1", "solution2"),
    "answer": ("answer1", "answer2", "answer3", "answer4", "answer5"),
    "ending": ("ending1", "ending2", "ending3", "ending4"),
    "option": ("option1", "option2"),
}


def parse_scienceqa(text: str) -> str | None:
    """The answer letter, or None unless the pattern matches exactly once."""
    found = SCIENCEQA_ANSWER.findall(text)
    return found[0] if len(found) == 1 else None


def answer_family(word: str) -> str:
    """``answer3`` -> ``answer``; ``true`` -> ``true``."""
    return word.rstrip("0123456789")


def parse_commonsense(text: str, gold_word: str) -> str | None:
    """The first word of ``gold_word``'s vocabulary found in ``text``, or None."""
    words = VOCABULARIES[answer_family(gold_word)]
    found = re.search("|".join(map(re.escape, words)), text.strip())
    return found.group(0) if found else None
