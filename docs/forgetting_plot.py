"""Draw docs/img/forgetting.png: the default retention curve, the tier bands, and spaced recalls.

    pip install matplotlib && python docs/forgetting_plot.py

Uses optimem.forgetting itself, so the picture is the code's behaviour, not a sketch of it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from optimem.forgetting import ForgettingPolicy, retention, strengthen, tier_for  # noqa: E402

BANDS = {"base": "#d8ecd8", "small": "#e9f2d0", "tiny": "#f6ebcc", "gist": "#f3d9d3"}


def shade_tiers(ax, policy: ForgettingPolicy) -> None:
    edges = [1.0] + [r for _, r in policy.thresholds] + [0.0]
    names = [t for t, _ in policy.thresholds] + ["gist"]
    for top, bottom, name in zip(edges, edges[1:], names):
        ax.axhspan(bottom, top, color=BANDS[name], zorder=0)
        ax.text(
            0.99,
            (top + bottom) / 2,
            name,
            transform=ax.get_yaxis_transform(),
            ha="right",
            va="center",
            fontsize=9,
            color="#555",
        )


def main() -> None:
    p = ForgettingPolicy()
    s0 = p.initial_strength
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)

    # left: R(t) for a few strengths
    t = np.linspace(0, 2500, 500)
    shade_tiers(a, p)
    for s, label in (
        (s0, "a new turn"),
        (strengthen(s0, 0.9, p), "after a recall at R = 0.9"),
        (strengthen(s0, 0.5, p), "after a recall at R = 0.5"),
        (strengthen(s0, 0.1, p), "after a recall at R = 0.1"),
    ):
        a.plot(t, [retention(x, s) for x in t], label=f"{label}: S = {s:.0f}")
    a.set(
        xlabel="turns since written or last recalled",
        ylabel="retention R = exp(-t/S)",
        ylim=(0, 1.02),
        xlim=(0, 2500),
        title="Retention and tiers (default policy)",
    )
    a.legend(fontsize=8, loc="upper center")

    # right: one memory over time, recalled at turns 400, 1200 and 2600
    shade_tiers(b, p)
    recalls, s, last, xs, ys = [400, 1200, 2600], s0, 0, [], []
    for now in range(0, 5001, 5):
        if recalls and now >= recalls[0]:
            s = strengthen(s, retention(now - last, s), p)
            last = recalls.pop(0)
        xs.append(now)
        ys.append(retention(now - last, s))
    b.plot(xs, ys, color="C3")
    for x in (400, 1200, 2600):
        b.axvline(x, color="#999", lw=0.8, ls=":")
    b.set(
        xlabel="turns since the memory was written",
        ylim=(0, 1.02),
        xlim=(0, 5000),
        title="Spaced recalls (dotted) make it last longer",
    )
    tiers = [tier_for(y, p) for y in ys]
    b.text(0.02, 0.04, f"tier at turn 5000: {tiers[-1]}", transform=b.transAxes, fontsize=9)
    fig.tight_layout()
    out = Path(__file__).parent / "img" / "forgetting.png"
    out.parent.mkdir(exist_ok=True)
    fig.savefig(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
