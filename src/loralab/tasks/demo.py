"""The bundled ``demo`` task: a procedurally generated multiple-choice science quiz.

Same schema as ScienceQA (question, choices, answer index, hint, subject, ...), deterministic for
a seed. Like many ScienceQA problems, most questions are answered by the context (an experiment's
result, facts about animals) and the rest by one rule (opposite magnetic poles attract). The
skill to learn is general (read the context, find the matching option, answer with its letter),
so a small model visibly learns it within a few minutes on a CPU while the untrained model sits
near chance.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from typing import Any

from loralab.tasks.scienceqa import ScienceQATask, scienceqa_prompt, scienceqa_target

SPLIT_OFFSETS = {"train": 0, "validation": 1, "test": 2}
BUNDLED = "bundled"  # the demo's task.source: the quiz is generated, no data is read
USED_KEYS = {"name", "source", "answer_form", "seed", "max_examples"}

MATERIALS = ["copper", "wooden", "plastic", "glass", "steel", "rubber", "paper", "wool"]
TESTS = [  # (object, what was measured, verb phrase)
    ("spoon", "warmed up fastest in hot water", "warmed up fastest"),
    ("ball", "bounced highest", "bounced highest"),
    ("block", "floated in water", "floated"),
    ("cup", "kept the tea warm longest", "kept the tea warm longest"),
    ("strip", "bent the most", "bent the most"),
]
NAMES = ["Mia", "Leo", "Ava", "Sam", "Zoe", "Omar", "Ivy", "Ben", "Nora", "Raj"]
ANIMAL_TRAITS = [  # (animal, trait)
    ("fox", "fur"),
    ("eagle", "feathers"),
    ("salmon", "gills"),
    ("lizard", "dry scales"),
    ("frog", "moist skin"),
    ("crab", "a hard shell"),
    ("snail", "a soft body"),
    ("bee", "six legs"),
    ("spider", "eight legs"),
    ("whale", "blowholes"),
]
POLES = ["north", "south"]


def _experiment(rng: random.Random) -> dict:
    """The answer is reported in the context: read it, then find it among the options."""
    thing, measured, verb = rng.choice(TESTS)
    materials = rng.sample(MATERIALS, rng.choice([2, 3, 4]))
    winner = materials[0]
    rng.shuffle(materials)
    return dict(
        question=f"Which {thing} {verb}?",
        hint=f"{rng.choice(NAMES)} tested {len(materials)} {thing}s. The {winner} {thing} {measured}.",
        choices=[f"the {m} {thing}" for m in materials],
        answer=materials.index(winner),
        subject="natural science",
        topic="science-and-engineering-practices",
    )


def _traits(rng: random.Random) -> dict:
    """Match a trait to the animal the context gives it to."""
    pairs = rng.sample(ANIMAL_TRAITS, rng.choice([2, 3]))
    target_animal, target_trait = pairs[0]
    facts = " ".join(
        f"{'An' if animal[0] in 'aeiou' else 'A'} {animal} has {trait}."
        for animal, trait in rng.sample(pairs, len(pairs))
    )
    animals = [animal for animal, _ in pairs]
    rng.shuffle(animals)
    return dict(
        question=f"Based on the text, which animal has {target_trait}?",
        hint=facts,
        choices=animals,
        answer=animals.index(target_animal),
        subject="natural science",
        topic="biology",
    )


def _magnets(rng: random.Random) -> dict:
    """A rule: opposite poles attract, like poles repel."""
    first, second = rng.choice(POLES), rng.choice(POLES)
    choices = ["attract", "repel"]
    rng.shuffle(choices)
    return dict(
        question="Will these magnets attract or repel each other?",
        hint=f"The {first} pole of one magnet faces the {second} pole of the other magnet.",
        choices=choices,
        answer=choices.index("attract" if first != second else "repel"),
        subject="natural science",
        topic="physics",
    )


TEMPLATES = [_experiment, _traits, _magnets, _experiment, _traits]


def generate_demo_quiz(split: str, n: int, seed: int = 0) -> list[dict]:
    """``n`` quiz records for ``split``; the same (split, n, seed) always gives the same list."""
    if split not in SPLIT_OFFSETS:
        raise ValueError(f"demo split {split!r} is unknown; choose one of {sorted(SPLIT_OFFSETS)}")
    rng = random.Random(f"loralab-demo/{seed}/{split}")
    records = []
    for index in range(n):
        record = TEMPLATES[index % len(TEMPLATES)](rng)
        record.update(grade="grade4", split=split, id=f"demo-{split}-{index}")
        records.append(record)
    rng.shuffle(records)
    return records


def demo_corpus() -> Iterator[str]:
    """Text that covers the demo task's vocabulary (used to train the tiny test tokenizer)."""
    for record in generate_demo_quiz("train", 500, seed=0):
        yield scienceqa_prompt(record) + scienceqa_target(record["answer"])
    for _ in range(50):  # every answer letter common enough to get its own token
        yield from (scienceqa_target(index) for index in range(5))


def build(task_cfg: Mapping[str, Any], splits: tuple[str, ...]) -> ScienceQATask:
    sizes, seed = task_cfg["max_examples"], int(task_cfg["seed"])
    quiz = {split: generate_demo_quiz(split, int(sizes[split]), seed=seed) for split in splits}
    return ScienceQATask(task_cfg["name"], quiz)


def config_errors(task_cfg: Mapping[str, Any]) -> list[str]:
    """The generated quiz reads no data: a ``source`` or other key given to it would be
    silently ignored, so it is refused by name."""
    errors = []
    caps = task_cfg.get("max_examples") or {}
    if any(caps.get(split) is None for split in ("train", "validation", "test")):
        errors.append("task.max_examples: the generated demo task needs a size for every split")
    if task_cfg.get("source") != BUNDLED:
        errors.append(
            f"task.source={task_cfg.get('source')!r} is not read by the demo task (its quiz is "
            f"generated; source: {BUNDLED}); for your own data pick a data task, e.g. "
            "task=scienceqa task.source=<path>"
        )
    for key in sorted(set(task_cfg) - USED_KEYS):
        errors.append(f"task.{key} is not read by the demo task: remove it")
    return errors
