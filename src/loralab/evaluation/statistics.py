"""How sure a figure is: intervals over seeds and questions, and paired verdicts.

A run's test accuracy varies for two reasons: the seed (initialisation, data order, dropout)
and the test set, one sample of the questions a task could ask. The standard deviation over
seeds sees only the first; a binomial standard error only the second. Here both enter one 95 %
interval, by a two-level bootstrap: each draw takes seeds with replacement and questions with
replacement (one question draw shared by every seed), and averages. Two variants tested on the
same questions are compared pairwise: the same question draw for both, and, where both ran the
same seeds, the same seed draw (seed s of one against seed s of the other), so what the
questions have in common cancels. A claim ``b > a`` then *holds* when the interval of b - a
lies above zero, is *reversed* when it lies below, and is *not resolved at this size*
otherwise; the interval's half-width says how large a difference this test set and these seeds
could resolve. McNemar's exact test over the discordant (seed, question) pairs is given beside
it, as papers often report it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
DRAWS = 4000
HOLDS, REVERSED, NOT_RESOLVED = "holds", "reversed", "not resolved at this size"


@dataclass(frozen=True)
class Estimate:
    """A mean accuracy over seeds and questions, the sample standard deviation of the seeds'
    accuracies (None for one seed) and its 95 % bootstrap interval."""

    mean: float
    seed_std: float | None
    low: float
    high: float
    seeds: int
    questions: int


@dataclass(frozen=True)
class Comparison:
    """``b - a`` on the same questions: its mean, 95 % interval, the verdict on ``b > a``,
    whether seeds were paired, and McNemar's two-sided exact p-value (paired seeds only)."""

    effect: float
    low: float
    high: float
    verdict: str
    paired_seeds: bool
    mcnemar_p: float | None
    b_only: int  # (seed, question) pairs b got right and a wrong
    a_only: int

    @property
    def resolution(self) -> float:
        """Half the interval's width: differences much smaller than this are not resolved."""
        return (self.high - self.low) / 2


def _outcomes(values) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.size == 0:
        raise ValueError(
            f"outcomes must be a non-empty (seeds, questions) table, got shape {array.shape}"
        )
    return array


def estimate(outcomes, draws: int = DRAWS, seed: int = 0) -> Estimate:
    """``outcomes``: a (seeds, questions) table of 0/1 (right/wrong), every seed on the same
    questions in the same order."""
    table = _outcomes(outcomes)
    seeds, questions = table.shape
    per_seed = table.mean(axis=1)
    rng = np.random.default_rng(seed)
    values = np.empty(draws)
    for d in range(draws):
        weights = np.bincount(rng.integers(0, questions, questions), minlength=questions)
        chosen = rng.integers(0, seeds, seeds)
        values[d] = (table[chosen] @ weights).sum() / (seeds * questions)
    low, high = np.quantile(values, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    std = float(per_seed.std(ddof=1)) if seeds > 1 else None
    return Estimate(float(table.mean()), std, float(low), float(high), seeds, questions)


def compare(a, b, paired_seeds: bool | None = None, draws: int = DRAWS, seed: int = 0):
    """`Comparison` of ``b`` against ``a``, each a (seeds, questions) table of 0/1 on the same
    questions (columns aligned). Seeds are paired (row s with row s) when both have the same
    number of rows, unless ``paired_seeds`` says otherwise."""
    first, second = _outcomes(a), _outcomes(b)
    if first.shape[1] != second.shape[1]:
        raise ValueError(
            f"the two tables hold {first.shape[1]} and {second.shape[1]} questions: a paired "
            "comparison needs both evaluated on the same questions"
        )
    if paired_seeds is None:
        paired_seeds = first.shape[0] == second.shape[0]
    if paired_seeds and first.shape[0] != second.shape[0]:
        raise ValueError("paired seeds need the same number of seeds on both sides")
    questions = first.shape[1]
    rng = np.random.default_rng(seed)
    values = np.empty(draws)
    for d in range(draws):
        weights = np.bincount(rng.integers(0, questions, questions), minlength=questions)
        rows_a = rng.integers(0, first.shape[0], first.shape[0])
        rows_b = rows_a if paired_seeds else rng.integers(0, second.shape[0], second.shape[0])
        mean_a = (first[rows_a] @ weights).sum() / (len(rows_a) * questions)
        mean_b = (second[rows_b] @ weights).sum() / (len(rows_b) * questions)
        values[d] = mean_b - mean_a
    low, high = (float(v) for v in np.quantile(values, [(1 - LEVEL) / 2, (1 + LEVEL) / 2]))
    verdict = HOLDS if low > 0 else REVERSED if high < 0 else NOT_RESOLVED
    b_only = a_only = 0
    p_value = None
    if paired_seeds:
        b_only = int(((second == 1) & (first == 0)).sum())
        a_only = int(((first == 1) & (second == 0)).sum())
        p_value = mcnemar_exact(b_only, a_only)
    effect = float(second.mean() - first.mean())
    return Comparison(effect, low, high, verdict, paired_seeds, p_value, b_only, a_only)


def mcnemar_exact(b_only: int, a_only: int) -> float:
    """Two-sided exact McNemar p-value: the binomial(n, 1/2) probability of a split of the
    ``n = b_only + a_only`` discordant pairs at least as uneven as the one observed."""
    n = b_only + a_only
    if n == 0:
        return 1.0
    k = min(b_only, a_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)
