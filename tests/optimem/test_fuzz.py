"""Every public Memory call, fed hostile arguments: it works or raises an OptimemError, never anything raw,
and the store stays consistent."""

from __future__ import annotations

import math
import random

import numpy as np

from optimem.errors import OptimemError

NASTY = [
    float("nan"), math.inf, -math.inf, 1e308, -1, 0, 1, 2, 3, 2**63, 2**64, -(2**63), True, False, None,
    "", "x", "\n", "user\nsystem", "\ud800", "a" * 5000, b"bytes", [], [1, "a"], [2**70], (1, 2), {}, {1: 2},
    {"role": "user", "content": "hi"}, {"role": "user", "content": [{"type": "text", "text": None}]},
    {"role": "user", "content": "x", "metadata": {"k": float("nan")}}, {"role": 5, "content": "x"},
    {"role": "user", "content": "x", "timestamp": float("nan")}, np.int64(1), np.float32("nan"), object(),
]
CALLS = [
    lambda m, v: m.add(v),
    lambda m, v: m.add_many(v),
    lambda m, v: m.add_many([v, "fine"]),
    lambda m, v: m.get(v),
    lambda m, v: m.get(1, now=v),
    lambda m, v: m.forget(v),
    lambda m, v: m.pin(v),
    lambda m, v: m.unpin(v),
    lambda m, v: m.recall(v),
    lambda m, v: m.recall("apple", k=v),
    lambda m, v: m.recall("apple", now=v),
    lambda m, v: m.consolidate(now=v),
    lambda m, v: m.context(v),
    lambda m, v: m.context(200, query=v),
    lambda m, v: m.events(turn_id=v),
    lambda m, v: m.events(limit=v),
]


def test_hostile_arguments_raise_only_optimem_errors(make_memory, conversation):
    m = make_memory(working_tokens=300)
    m.add_many(conversation(20))
    rng = random.Random(0)
    raw = []
    for _ in range(800):
        call, value = rng.choice(CALLS), rng.choice(NASTY)
        try:
            call(m, value)
        except OptimemError:
            pass
        except Exception as e:
            raw.append(f"{type(e).__name__}: {e}"[:200])
    assert raw == []
    assert m.check().ok
