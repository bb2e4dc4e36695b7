"""Intervals and paired verdicts on constructed outcomes whose answer is known."""

import math

import numpy as np
import pytest

from loralab.evaluation.statistics import (
    HOLDS,
    NOT_RESOLVED,
    REVERSED,
    compare,
    estimate,
    mcnemar_exact,
)


def outcomes(right: list[int], questions: int) -> np.ndarray:
    """(seeds, questions) 0/1: seed s answers its first ``right[s]`` questions right."""
    table = np.zeros((len(right), questions))
    for s, count in enumerate(right):
        table[s, :count] = 1
    return table


def test_one_seed_interval_is_the_binomial_one():
    table = np.random.default_rng(1).permutation(outcomes([200], 400)[0])[None]
    result = estimate(table)
    half = (result.high - result.low) / 2
    assert result.mean == 0.5 and result.seed_std is None
    assert half == pytest.approx(1.96 * math.sqrt(0.25 / 400), rel=0.1)


def test_seed_spread_widens_the_interval_and_is_the_sample_std():
    steady = estimate(outcomes([200, 200, 200], 400))
    spread = estimate(outcomes([160, 200, 240], 400))
    assert spread.mean == steady.mean == 0.5
    assert spread.seed_std == pytest.approx(np.std([0.4, 0.5, 0.6], ddof=1))  # not ddof=0
    assert steady.seed_std == 0
    assert spread.high - spread.low > 1.5 * (steady.high - steady.low)


def test_a_clear_gain_holds_its_reverse_is_reversed_and_a_tie_is_not_resolved():
    a, b = outcomes([120, 125, 118], 400), outcomes([200, 205, 198], 400)
    gain = compare(a, b)
    assert gain.verdict == HOLDS and gain.low > 0 and gain.effect == pytest.approx(0.2)
    assert compare(b, a).verdict == REVERSED
    tie = compare(a, a)
    assert tie.verdict == NOT_RESOLVED and tie.effect == 0 and tie.mcnemar_p == 1.0


def test_pairing_resolves_a_small_gain_the_separate_intervals_cannot():
    """b answers exactly what a answers plus 12 more of 1000 questions, on every seed: the
    separate intervals overlap widely, the paired one excludes zero."""
    rng = np.random.default_rng(0)
    order = rng.permutation(1000)
    a = outcomes([500, 500, 500], 1000)[:, order]
    b = outcomes([512, 512, 512], 1000)[:, order]
    alone_a, alone_b = estimate(a), estimate(b)
    assert alone_b.low < alone_a.high  # overlapping: no verdict from the means alone
    paired = compare(a, b)
    assert paired.verdict == HOLDS and paired.effect == pytest.approx(0.012)
    assert (paired.b_only, paired.a_only) == (36, 0)
    assert paired.resolution < 0.012


def test_unpaired_seeds_are_allowed_and_different_questions_refused():
    result = compare(outcomes([100, 110], 300), outcomes([200, 190, 210], 300))
    assert not result.paired_seeds and result.mcnemar_p is None and result.verdict == HOLDS
    with pytest.raises(ValueError, match="same questions"):
        compare(outcomes([1], 10), outcomes([1], 11))


def test_mcnemar_exact_p_value():
    expected = 2 * (1 + 12 + 66) / 2**12  # binomial(12, 1/2), 2 or fewer of the discordant
    assert mcnemar_exact(10, 2) == pytest.approx(expected)
    assert mcnemar_exact(2, 10) == pytest.approx(expected)
    assert mcnemar_exact(5, 5) == 1.0
