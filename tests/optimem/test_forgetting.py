from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optimem.errors import InvalidInputError
from optimem.forgetting import (
    ARCHIVE_TIERS,
    TIER_TOKENS,
    ForgettingPolicy,
    combine_score,
    retention,
    strengthen,
    tier_for,
    tier_rank,
)

ages = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False)
strengths = st.floats(min_value=1e-2, max_value=1e6, allow_nan=False)


@given(t=ages, s1=strengths, s2=strengths)
def test_higher_strength_gives_higher_retention(t, s1, s2):
    # the released MemoryBank code computes exp(-t / 5 * S) = exp(-t*S/5): stronger memories fade faster
    if s1 == s2:
        return
    lo, hi = sorted((s1, s2))
    assert retention(t, hi) >= retention(t, lo)
    if retention(t, lo) > 1e-300 and retention(t, hi) < 1.0:  # not both saturated in float
        assert retention(t, hi) > retention(t, lo)


def test_memorybank_precedence_bug_would_fail_our_property():
    def memorybank(t, s):
        return math.exp(-t / 5 * s)  # the released code, verbatim semantics

    assert memorybank(10, 4) < memorybank(10, 2)  # backwards
    assert retention(10, 4) > retention(10, 2)  # ours


@given(s=strengths, t1=ages, t2=ages)
def test_retention_decreases_with_age(s, t1, t2):
    lo, hi = sorted((t1, t2))
    assert retention(hi, s) <= retention(lo, s)


def test_retention_anchor_points():
    assert retention(0, 7.0) == 1.0
    assert retention(-5, 7.0) == 1.0  # clock skew is not a negative age
    assert retention(7.0, 7.0) == pytest.approx(math.exp(-1))
    with pytest.raises(InvalidInputError):
        retention(1.0, 0.0)


@given(s=strengths, r1=st.floats(0, 1), r2=st.floats(0, 1))
def test_recall_always_strengthens_and_more_when_nearly_forgotten(s, r1, r2):
    p = ForgettingPolicy()
    assert strengthen(s, r1, p) > s
    lo, hi = sorted((r1, r2))
    assert strengthen(s, lo, p) >= strengthen(s, hi, p)


def test_strengthen_rule_numbers_and_cap():
    p = ForgettingPolicy(initial_strength=10, min_growth=0.1, recall_gain=2.0, max_strength=25)
    assert strengthen(10, 1.0, p) == pytest.approx(11.0)
    assert strengthen(10, 0.5, p) == pytest.approx(21.0)
    assert strengthen(10, 0.0, p) == 25  # capped


def test_tiers_follow_thresholds():
    p = ForgettingPolicy(thresholds=(("base", 0.5), ("small", 0.25), ("tiny", 0.1)), forget_below=0.01)
    assert [tier_for(r, p) for r in (1.0, 0.5, 0.49, 0.25, 0.2, 0.1, 0.05, 0.01, 0.009)] == [
        "base",
        "base",
        "small",
        "small",
        "tiny",
        "tiny",
        "gist",
        "gist",
        "forgotten",
    ]
    assert tier_for(0.0, p, pinned=True) == "base"
    assert tier_for(0.0, ForgettingPolicy()) == "gist"  # default: never forget


def test_tier_order_and_tokens():
    assert [tier_rank(t) for t in ("verbatim", *ARCHIVE_TIERS, "forgotten")] == list(range(-1, len(ARCHIVE_TIERS) + 1))
    assert TIER_TOKENS == {"large": 400, "base": 256, "small": 100, "tiny": 64, "gist": 36}
    with pytest.raises(InvalidInputError):
        tier_rank("huge")


@pytest.mark.parametrize(
    "kw",
    [
        dict(clock="days"),
        dict(initial_strength=0),
        dict(initial_strength=math.inf),
        dict(min_growth=-0.1),
        dict(retention_weight=1.5),
        dict(top_tier="small"),
        dict(thresholds=(("base", 0.5), ("tiny", 0.6))),  # R not decreasing
        dict(thresholds=(("small", 0.5),)),  # does not start at top_tier
        dict(thresholds=(("base", 0.5), ("gist", 0.2))),
        dict(thresholds=(("base", 0.5), ("small", 0.2)), forget_below=0.3),
        dict(max_strength=1.0),
    ],
)
def test_bad_policies_are_refused(kw):
    with pytest.raises(InvalidInputError):
        ForgettingPolicy(**kw)


@given(sim=st.floats(-1, 1), r1=st.floats(0, 1), r2=st.floats(0, 1), spread=st.floats(0, 2))
def test_score_is_monotone_in_retention_and_bounded(sim, r1, r2, spread):
    p = ForgettingPolicy(retention_weight=0.25)
    lo, hi = sorted((r1, r2))
    assert combine_score(sim, hi, p, spread=spread) >= combine_score(sim, lo, p, spread=spread)
    assert combine_score(sim, 1.0, p, spread=spread) == pytest.approx(sim)  # fresh: pure similarity
    assert combine_score(sim, 0.0, p, spread=spread) == pytest.approx(sim - 0.25 * spread)  # the most it loses


def test_score_penalty_is_in_units_of_the_query_spread():
    p = ForgettingPolicy(retention_weight=0.25)
    # E5-like band: candidates 0.80..0.88. A faded exact match (0.88) still beats a fresh 0.85 ...
    assert combine_score(0.88, 0.0, p, spread=0.08) > combine_score(0.85, 1.0, p, spread=0.08)
    # ... but loses to a fresh one that is nearly as similar
    assert combine_score(0.88, 0.0, p, spread=0.08) < combine_score(0.87, 1.0, p, spread=0.08)
