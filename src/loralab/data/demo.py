"""The bundled ``demo`` task: a procedurally generated multiple-choice science quiz.

Same schema as ScienceQA (question, choices, answer index, hint, subject, ...), deterministic for
a seed. The questions follow a handful of ScienceQA-like templates whose answers follow simple,
learnable rules (compare two numbers, recall a category from a fixed lexicon, opposite magnetic
poles attract), so a small model visibly learns it in a few minutes on a CPU.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

SPLIT_OFFSETS = {"train": 0, "validation": 1, "test": 2}

ANIMALS = {
    "mammal": ["cow", "dolphin", "bat", "elephant", "fox", "rabbit", "horse", "whale", "lion"],
    "bird": ["eagle", "penguin", "robin", "ostrich", "parrot", "owl", "duck", "crow", "swan"],
    "fish": ["salmon", "trout", "shark", "tuna", "goldfish", "cod", "eel", "carp", "herring"],
    "reptile": ["lizard", "snake", "turtle", "crocodile", "gecko", "iguana", "cobra", "tortoise"],
    "amphibian": ["frog", "toad", "salamander", "newt", "axolotl", "bullfrog", "caecilian"],
}
MATTER = {
    "solid": ["rock", "ice cube", "wooden spoon", "coin", "brick", "pencil", "glass marble"],
    "liquid": ["milk", "orange juice", "rain water", "olive oil", "vinegar", "honey", "tea"],
    "gas": ["steam", "air in a balloon", "helium", "oxygen", "water vapor", "carbon dioxide"],
}
OBJECTS = ["cup of tea", "pot of soup", "bowl of water", "mug of cocoa", "glass of milk"]
MOVERS = ["car", "bicycle", "horse", "boat", "train", "runner", "bus", "skateboard"]
POLES = ["north", "south"]


def _thermal(rng: random.Random) -> dict:
    thing = rng.choice(OBJECTS)
    mass = rng.choice([150, 200, 250, 300, 350, 400])
    temps = rng.sample(range(10, 95), 2)
    choices = [f"the {thing} at {t}°C" for t in temps]
    return dict(
        question="Which object has more thermal energy?",
        hint=f"The objects are identical except for their temperatures. Each is a {mass}-gram {thing}.",
        choices=choices,
        answer=temps.index(max(temps)),
        subject="natural science",
        topic="physics",
    )


def _speed(rng: random.Random) -> dict:
    movers = rng.sample(MOVERS, 2)
    speeds = rng.sample(range(5, 120), 2)
    slower = rng.random() < 0.5
    choices = [f"a {m} moving at {s} km/h" for m, s in zip(movers, speeds, strict=True)]
    pick = min(speeds) if slower else max(speeds)
    return dict(
        question=f"Which is moving {'more slowly' if slower else 'faster'}?",
        hint="",
        choices=choices,
        answer=speeds.index(pick),
        subject="natural science",
        topic="physics",
    )


def _category(rng: random.Random, lexicon: dict[str, list[str]], noun: str, topic: str) -> dict:
    kinds = rng.sample(sorted(lexicon), min(len(lexicon), rng.choice([2, 3, 3, 4])))
    target = kinds[0]
    choices = [rng.choice(lexicon[k]) for k in kinds]
    order = list(range(len(choices)))
    rng.shuffle(order)
    article = "an" if target[0] in "aeiou" else "a"
    return dict(
        question=f"Which {noun} is {article} {target}?",
        hint="",
        choices=[choices[i] for i in order],
        answer=order.index(0),
        subject="natural science",
        topic=topic,
    )


def _magnets(rng: random.Random) -> dict:
    first, second = rng.choice(POLES), rng.choice(POLES)
    choices = ["attract", "repel"]
    rng.shuffle(choices)
    attract = first != second
    return dict(
        question="Will these magnets attract or repel each other?",
        hint=f"The {first} pole of one magnet faces the {second} pole of the other magnet.",
        choices=choices,
        answer=choices.index("attract" if attract else "repel"),
        subject="natural science",
        topic="physics",
    )


TEMPLATES = [
    _thermal,
    _speed,
    lambda rng: _category(rng, ANIMALS, "animal", "biology"),
    lambda rng: _category(rng, MATTER, "of these", "chemistry"),
    _magnets,
]


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
    from loralab.data.prompts import scienceqa_prompt, scienceqa_target

    for record in generate_demo_quiz("train", 500, seed=0):
        yield scienceqa_prompt(record) + scienceqa_target(record["answer"])
