"""The papers' claims, tested on a grid's per-question records: ``claims.md``.

Each claim compares two variants of one grid that differ in one switch, on the same test
questions (`evaluation.statistics.compare`): Riemannian preconditioning against plain, gate
rescaling against none (Sun et al.), MoSLoRA against LoRA (Wu et al.), LoRA+ and LoRA-RITE
against AdamW and against the Riemannian AdamW variants; and every variant against the
untrained model and against always giving the most common answer (the answer prior a
label-form adapter can learn without the questions). A claim is stated as "b above a"; its
verdict is read from the paired 95 % interval, not from the means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loralab.evaluation.statistics import Comparison, compare, estimate
from loralab.runs.records import PRIOR, Outcomes, RunRecord, most_common_answer

# (claim, the switch it varies, (a, b) pairs of that switch's values: "b above a")
CLAIMS = (
    (
        "Riemannian preconditioning above plain",
        "optimizer",
        (("sgd", "rsgd"), ("gsgd", "grsgd"), ("adamw", "radamw"), ("gadamw", "gradamw")),
    ),
    (
        "gate rescaling above none",
        "optimizer",
        (("sgd", "gsgd"), ("rsgd", "grsgd"), ("adamw", "gadamw"), ("radamw", "gradamw")),
    ),
    ("MoSLoRA above LoRA", "adapter", (("lora", "moslora"),)),
    ("LoRA+ above AdamW", "optimizer", (("adamw", "loraplus"),)),
    ("LoRA-RITE above AdamW", "optimizer", (("adamw", "lorarite"),)),
    (  # the reviewer's question to Sun et al.: better than the other LoRA optimizers?
        "Riemannian AdamW above LoRA+ / LoRA-RITE",
        "optimizer",
        tuple(
            (other, ours) for other in ("loraplus", "lorarite") for ours in ("radamw", "gradamw")
        ),
    ),
)
TRAINED = "training above the untrained model"
ABOVE_PRIOR = "training above the most common answer"


@dataclass(frozen=True)
class Claim:
    claim: str
    a: str
    b: str
    result: Comparison
    seeds: tuple[int, int]


def outcome_table(
    runs: list[RunRecord], metric: str, when: str = "after"
) -> tuple[list, np.ndarray]:
    """(question ids, a (seeds, questions) 0/1 table) of ``runs`` ordered by seed; ValueError
    when their test questions differ."""
    runs = sorted(runs, key=lambda r: (r.seed is None, r.seed))
    maps: list[Outcomes] = [getattr(run, when)[metric] for run in runs]
    ids = sorted(maps[0])
    for run, outcomes in zip(runs, maps, strict=True):
        if set(outcomes) != set(ids):
            raise ValueError(
                f"{run.run_dir}: its test questions differ from {runs[0].run_dir}'s; a grid's "
                "runs must share one test split to be compared"
            )
    return ids, np.array([[outcomes[q] for q in ids] for outcomes in maps], dtype=float)


def has_records(runs: list[RunRecord], metric: str, when: str = "after") -> bool:
    return bool(runs) and all(metric in getattr(run, when) for run in runs)


def paired_claims(groups: dict[str, list[RunRecord]], metric: str = "acc") -> list[Claim]:
    """Every claim this grid can test: each pair of groups that differ only in a claim's switch,
    each group against the untrained model (where the runs' "before" is recorded) and against
    the most common answer (where the records hold the gold answers)."""
    claims = []
    by_variant = {_key(runs[0]): name for name, runs in groups.items() if runs}
    for claim, switch, pairs in CLAIMS:
        for name_a, runs_a in groups.items():
            if not has_records(runs_a, metric):
                continue
            for low, high in pairs:
                if runs_a[0].variant[switch] != low:
                    continue
                other = dict(runs_a[0].variant, **{switch: high})
                name_b = by_variant.get(_key(runs_a[0], other))
                if name_b is None or not has_records(groups[name_b], metric):
                    continue
                claims.append(_claim(claim, name_a, runs_a, name_b, groups[name_b], metric))
    for name, runs in groups.items():
        if has_records(runs, metric) and has_records(runs, metric, "before"):
            _, before = outcome_table(runs, metric, "before")
            if (before == before[0]).all():  # one untrained model for every seed
                before = before[:1]
            _, after = outcome_table(runs, metric)
            result = compare(before, after)
            claims.append(Claim(TRAINED, "untrained", name, result, (len(before), len(after))))
    prior = most_common_answer([run for runs in groups.values() for run in runs])
    for name, runs in groups.items():
        if not has_records(runs, metric):
            continue
        ids, after = outcome_table(runs, metric)
        constant = prior_table(prior, ids)
        if constant is not None:
            result = compare(constant, after)
            claims.append(Claim(ABOVE_PRIOR, PRIOR, name, result, (1, len(after))))
    return claims


def prior_table(prior: Outcomes | None, ids: list) -> np.ndarray | None:
    """The constant answer's (1, questions) 0/1 table on ``ids`` (`most_common_answer`), or
    None where it is not known for every one of them."""
    if prior is None or not all(q in prior for q in ids):
        return None
    return np.array([[prior[q] for q in ids]], dtype=float)


def _key(run: RunRecord, variant: dict | None = None) -> tuple:
    """A run's variant with the rest of its configuration that a comparison holds fixed."""
    variant = variant or run.variant
    task = run.config.get("task", {})
    return (variant["adapter"], variant["optimizer"], task.get("name"), task.get("answer_form"))


def _claim(claim, name_a, runs_a, name_b, runs_b, metric) -> Claim:
    ids_a, table_a = outcome_table(runs_a, metric)
    ids_b, table_b = outcome_table(runs_b, metric)
    if ids_a != ids_b:
        raise ValueError(f"{name_a} and {name_b} were tested on different questions")
    seeds_a = [r.seed for r in sorted(runs_a, key=lambda r: r.seed)]
    seeds_b = [r.seed for r in sorted(runs_b, key=lambda r: r.seed)]
    result = compare(table_a, table_b, paired_seeds=seeds_a == seeds_b)
    return Claim(claim, name_a, name_b, result, (len(runs_a), len(runs_b)))


def accuracy_cells(runs: list[RunRecord], metric: str, when: str = "after") -> str:
    """``mean ± sample std [95 % interval]`` in points, or n/a without records."""
    if not has_records(runs, metric, when):
        return "n/a"
    _, table = outcome_table(runs, metric, when)
    if when == "before" and (table == table[0]).all():
        table = table[:1]
    return estimate_cell(table)


def estimate_cell(table: np.ndarray) -> str:
    """``mean ± sample std [95 % interval]`` in points of a (seeds, questions) 0/1 table."""
    found = estimate(table)
    spread = "" if found.seed_std is None else f" ± {100 * found.seed_std:.1f}"
    return f"{100 * found.mean:.1f}{spread} [{100 * found.low:.1f}, {100 * found.high:.1f}]"


def signed_points(fraction: float) -> str:
    """A difference of accuracies in points with its sign, one decimal; what rounds to zero
    reads 0.0 (a "-0.0" would suggest a direction the table cannot show)."""
    text = f"{100 * fraction:+.1f}"
    return "0.0" if text in ("+0.0", "-0.0") else text


def _p_value(p: float) -> str:
    """Three significant digits; a p below what a float holds reads "< 1e-300", not "0"."""
    return f"{p:.3g}" if p > 0 else "< 1e-300"


def claims_markdown(claims: list[Claim], setting: str, metric: str = "acc") -> str:
    """The claims table: effect b - a in points with its paired 95 % interval and verdict."""
    lines = [
        f"Setting: {setting}. Metric: `{metric}`. Effect = b - a in points, mean over seeds "
        "and questions; 95 % interval from a paired bootstrap over seeds and questions; "
        "McNemar's exact p over the discordant (seed, question) pairs where seeds are paired."
        + (
            f" `{PRIOR}`: always the option most often right among the test questions (per "
            "task where the split mixes tasks)."
            if any(c.a == PRIOR for c in claims)
            else ""
        ),
        "",
        "| claim | a | b | seeds (a, b) | effect (points) | 95 % interval | resolves | "
        "McNemar p | verdict |",
        "|---|---|---|---|---:|---|---:|---:|---|",
    ]
    for c in claims:
        r = c.result
        p = "" if r.mcnemar_p is None else _p_value(r.mcnemar_p)
        lines.append(
            f"| {c.claim} | {c.a} | {c.b} | {c.seeds[0]}, {c.seeds[1]} | {signed_points(r.effect)} | "
            f"[{signed_points(r.low)}, {signed_points(r.high)}] | ±{100 * r.resolution:.1f} | {p} | "
            f"{r.verdict} |"
        )
    if not claims:
        lines.append("| (no pair of variants with per-question records) | | | | | | | | |")
    return "\n".join(lines) + "\n"
