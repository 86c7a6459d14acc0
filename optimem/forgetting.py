"""The forgetting curve: retention, strength updates on recall, and the tier policy.

A memory's retention is R = exp(-t / S) (Ebbinghaus; MemoryBank's intended formula):
  t  time since the turn was written or last recalled, in the policy's clock: "turns" (turns added to
     the namespace since) or "seconds" (wall-clock seconds since);
  S  strength, in the same unit. It starts at `initial_strength` and grows on every recall:

      S' = min(S * (1 + min_growth + recall_gain * (1 - R)), max_strength)

  where R is the retention at the moment of the recall, and t restarts from 0. A recall of a memory
  that was nearly gone (R ~ 0) multiplies S by ~(1 + min_growth + recall_gain); a recall of something
  just seen (R ~ 1) by only (1 + min_growth). This is the spacing effect of spaced-repetition models
  (FSRS, SuperMemo): effortful recalls strengthen more. Since dR/dS = (t / S^2) * R > 0 for t > 0, a
  stronger memory always has a higher retention at the same age (the widely copied MemoryBank code
  computes exp(-t / 5 * S), i.e. exp(-t*S/5), which gets this backwards).

Tiers follow R (see `ForgettingPolicy.thresholds`): verbatim (working memory, by token budget, not by R)
-> base 1024 px (256 visual tokens) -> small 640 (100) -> tiny 512 (64) -> gist 384 (36) -> forgotten.
Pinned turns keep R = 1 and never leave the top tier. The search score mixes similarity and retention:

      score = sim - retention_weight * (1 - R) * spread

where spread = best - worst similarity among the recall's candidates (the nearest max(4k, 32) turns), so
the penalty is measured in this query's own similarity range. A fully faded memory (R -> 0) drops by
retention_weight of that range: it ranks below an equally similar fresh one but stays findable until it
is forgotten. Scaling by |sim| instead would punish embedders whose similarities sit in a narrow high
band: with E5 (unrelated texts ~0.75) it cut LoCoMo recall@5 from 0.387 to 0.154; this rule, 0.386.
docs/forgetting.md has the plot and the numbers. Recall adds the next turn's similarity to this
(optimem.retrieval.rank); combine_score is the retention part.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ocr_model.page.geometry import ARCHIVE_TIERS, TIERS

from optimem.errors import InvalidInputError

__all__ = [
    "ARCHIVE_TIERS",
    "TIER_TOKENS",
    "ForgettingPolicy",
    "retention",
    "strengthen",
    "tier_for",
    "tier_rank",
    "combine_score",
]

# Archive tiers from sharpest to faintest and the visual tokens a page costs at each: the page format's one
# tier table (ocr_model.page.geometry.TIERS), never a copy of it.
TIER_TOKENS: dict[str, int] = {name: t.tokens for name, t in TIERS.items()}


def tier_rank(tier: str) -> int:
    """0 for the sharpest archive tier, growing as pages fade; 'verbatim' is -1, 'forgotten' last."""
    if tier == "verbatim":
        return -1
    if tier == "forgotten":
        return len(ARCHIVE_TIERS)
    try:
        return ARCHIVE_TIERS.index(tier)
    except ValueError:
        raise InvalidInputError(
            f"unknown tier {tier!r}; use one of 'verbatim', {', '.join(map(repr, ARCHIVE_TIERS))}, 'forgotten'"
        ) from None


@dataclass(frozen=True)
class ForgettingPolicy:
    """How memories fade. All numbers are in the unit of `clock` (turns or seconds)."""

    clock: Literal["turns", "seconds"] = "turns"
    # R = 1/e after this many turns (or seconds) without a recall; 500 turns ~ a few days of a busy agent
    initial_strength: float = 500.0
    min_growth: float = 0.1  # every recall multiplies S by at least 1.1 ...
    recall_gain: float = 2.0  # ... and by up to 1.1 + 2.0 when the memory was nearly gone (R ~ 0)
    max_strength: float = math.inf
    # A page is kept at the first tier whose threshold its best turn's R reaches; below the last one it
    # is a gist. Defaults put base until t = 0.69 S, small until 1.39 S, tiny until 2.3 S.
    thresholds: tuple[tuple[str, float], ...] = (("base", 0.5), ("small", 0.25), ("tiny", 0.1))
    # R below this: the turn is forgotten (image region blanked, vectors deleted). 0 = never forget:
    # soft by default, nothing is deleted unless you ask for it.
    forget_below: float = 0.0
    # how much a fully faded memory is discounted in search (0 = pure similarity)
    retention_weight: float = 0.25
    # tier pages enter the archive at; "large" (1280 px, 400 tokens) costs more for little gain on our pages
    top_tier: str = "base"

    def __post_init__(self) -> None:
        if self.clock not in ("turns", "seconds"):
            raise InvalidInputError(f"ForgettingPolicy.clock must be 'turns' or 'seconds', got {self.clock!r}")
        if not (self.initial_strength > 0 and math.isfinite(self.initial_strength)):
            raise InvalidInputError(
                f"ForgettingPolicy.initial_strength must be a positive finite number, got {self.initial_strength!r}"
            )
        if self.min_growth < 0 or self.recall_gain < 0:
            raise InvalidInputError("ForgettingPolicy.min_growth and recall_gain must be >= 0 (recalls never weaken)")
        if not self.max_strength >= self.initial_strength:
            raise InvalidInputError("ForgettingPolicy.max_strength must be >= initial_strength")
        if not 0.0 <= self.retention_weight <= 1.0:
            raise InvalidInputError(
                f"ForgettingPolicy.retention_weight must be in [0, 1], got {self.retention_weight!r}"
            )
        if self.top_tier not in ("large", "base"):
            raise InvalidInputError(f"ForgettingPolicy.top_tier must be 'large' or 'base', got {self.top_tier!r}")
        last_rank, last_r = tier_rank(self.top_tier) - 1, 1.0 + 1e-9
        for tier, r in self.thresholds:
            rank = tier_rank(tier)  # raises on unknown names
            if tier == "gist" or rank <= last_rank or not (0.0 < r < last_r):
                raise InvalidInputError(
                    "ForgettingPolicy.thresholds must list archive tiers from sharp to faint (not 'gist', which is "
                    "what lies below the last threshold), starting at top_tier, with strictly decreasing R in "
                    f"(0, 1]; got {self.thresholds!r}"
                )
            last_rank, last_r = rank, r
        if self.thresholds and self.thresholds[0][0] != self.top_tier:
            raise InvalidInputError(
                f"the first threshold tier must be top_tier {self.top_tier!r}; got {self.thresholds[0][0]!r}"
            )
        if not 0.0 <= self.forget_below < (self.thresholds[-1][1] if self.thresholds else 1.0):
            raise InvalidInputError(
                "ForgettingPolicy.forget_below must be >= 0 and below the last tier threshold "
                f"(got {self.forget_below!r}); use 0 to never forget"
            )


def retention(t: float, strength: float) -> float:
    """R = exp(-t / S). t < 0 (clock skew) counts as 0; S must be > 0."""
    if strength <= 0:
        raise InvalidInputError(f"strength must be > 0, got {strength!r}")
    return math.exp(-max(t, 0.0) / strength)


def strengthen(strength: float, r: float, policy: ForgettingPolicy) -> float:
    """The strength after a recall made at retention r (see the module docstring for the rule)."""
    r = min(max(r, 0.0), 1.0)
    return min(strength * (1.0 + policy.min_growth + policy.recall_gain * (1.0 - r)), policy.max_strength)


def tier_for(r: float, policy: ForgettingPolicy, *, pinned: bool = False) -> str:
    """The archive tier a turn with retention r belongs to: a name of ARCHIVE_TIERS or 'forgotten'."""
    if pinned:
        return policy.top_tier
    for tier, threshold in policy.thresholds:
        if r >= threshold:
            return tier
    if r < policy.forget_below:
        return "forgotten"
    return "gist"


def combine_score(similarity: float, r: float, policy: ForgettingPolicy, *, spread: float) -> float:
    """score = sim - w * (1 - R) * spread, spread = best - worst similarity among the candidates."""
    return similarity - policy.retention_weight * (1.0 - r) * max(spread, 0.0)
