"""Verified page-out: turns are drawn, read back by the configured reader, and archived only as a drawing
that reads back exactly - or kept verbatim, and the store knows it.

    draw_verified(turns, reader, ...) -> Drawn: page payloads + one TurnCheck per archived turn + the turns
                                         that stay verbatim

How a turn is drawn (its `form`), tried in this order until the reader reads the turn back exactly:
    plain    the text as it is (dense layout, code highlighted: ocr_model.page.render)
    escaped  the characters it misread, and whatever the page cannot draw one for one (tabs, control
             characters, trailing spaces, characters no font covers), as ASCII escapes, fences drawn plain
             (ocr_model.page.escape; reading unescapes them)
    ascii    every character outside printable ASCII escaped: a page of ASCII only
A turn none of these reads back exactly is not archived: it stays in working memory, verbatim.

A TurnCheck is numbers only (the store keeps no text of an archived turn): whether the reading was exact,
its character precision, the reader's confidence over the turn's own cells, the tier, and the form (which
tells the reader of the archive to unescape). Memory stores them with the page's layout map and checks
again after every fading step (consolidate), against the reading before the step.
"""
from __future__ import annotations

import difflib
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ocr_model.page import Layout, Page, Turn, render_turns, split_decoded
from ocr_model.page.codec import as_stored
from ocr_model.page.escape import escape, needs_escape, unescape

__all__ = ["FORMS", "TurnCheck", "Drawn", "draw_verified", "read_turn_texts", "turn_confidence", "char_precision",
           "unescape_for"]

FORMS = ("plain", "escaped", "ascii")


@dataclass(frozen=True)
class TurnCheck:
    """How one archived turn read back when it was last checked."""

    exact: bool | None          # the reading equalled the turn's text (None: drawn without verification)
    precision: float | None     # character precision of that reading (1 - edit distance / length, >= 0)
    confidence: float | None    # the reader's confidence over the turn's own cells
    tier: str            # the tier the page was read at
    form: str            # how the turn is drawn: 'plain' | 'escaped' | 'ascii'

    def to_list(self) -> list:
        r = (lambda x: None if x is None else round(x, 6))
        return [self.exact, r(self.precision), r(self.confidence), self.tier, self.form]

    @classmethod
    def from_list(cls, v: Sequence) -> TurnCheck:
        f = (lambda x: None if x is None else float(x))
        return cls(None if v[0] is None else bool(v[0]), f(v[1]), f(v[2]), str(v[3]), str(v[4]))


@dataclass
class Drawn:
    pages: list[Page]
    checks: dict[int, TurnCheck]   # turn id -> check (every turn on the pages)
    verbatim: list[int]            # turn ids that no form read back exactly: not on the pages
    reads: int                     # pages read to verify
    tokens: list[dict] = field(default_factory=list)  # per page: the token grids its last reading encoded ({} none)


def char_precision(ref: str, hyp: str) -> float:
    """max(0, 1 - edit distance / len(ref)); 1.0 for two empty strings."""
    if not ref:
        return 1.0 if not hyp else 0.0
    sm = difflib.SequenceMatcher(None, ref, hyp, autojunk=False)
    dist = sum(max(i2 - i1, j2 - j1) for op, i1, i2, j1, j2 in sm.get_opcodes() if op != "equal")
    return max(0.0, 1.0 - dist / len(ref))


def _misread(ref: str, hyp: str) -> set[str]:
    """Characters of `ref` that the reading got wrong (replaced or dropped), and those it inserted next to."""
    out = set()
    sm = difflib.SequenceMatcher(None, ref, hyp, autojunk=False)
    for op, i1, i2, _, _ in sm.get_opcodes():
        if op in ("replace", "delete"):
            out.update(ref[i1:i2])
        elif op == "insert":
            out.update(ref[max(0, i1 - 1):i1 + 1])
    return {c for c in out if c not in " \n"}


def _draw(text: str, form: str, misread: set[str]) -> str:
    if form == "plain":
        return text
    if form == "escaped":
        return escape(text, misread)
    return escape(text, {c for c in text if not " " <= c <= "~"})


def turn_confidence(reading, layout: Layout, turn_id: int, reader=None, tier: str | None = None) -> float | None:
    """The confidence of one turn on one page, over its own cells (its header and text pieces): the
    reader's calibrated P(exact) when it has one (`reader.turn_confidence(probs, tier)`: OpticalReader with
    a calibration.json), else exp(mean log p) of the cells; the page's confidence when the reading has none
    per cell; None if the turn is not on the page."""
    segs = {k for k, s in enumerate(layout.segments) if s.turn_id == turn_id}
    if not segs:
        return None
    cells = getattr(reading, "cells", None)
    if cells is None:
        return float(reading.confidence)
    logs = []
    for p in layout.pieces:
        if p.segment in segs and p.width > 0:
            logs.append(np.log(np.maximum(cells[p.row, p.col:p.col + p.width], 1e-12)))
    if not logs:
        return float(reading.confidence)
    x = np.concatenate(logs)
    calibrated = getattr(reader, "turn_confidence", None)
    if calibrated is not None and tier is not None:
        return float(calibrated(np.exp(x), tier))
    return float(math.exp(float(x.mean())))


def read_turn_texts(readings: Sequence, pages: Sequence[Layout], reader=None,
                    tier: str | None = None) -> tuple[dict[int, str], dict[int, list[float]]]:
    """Concatenate each turn's pieces over the pages read: {turn id: text}, {turn id: [confidence per page]}
    (turn_confidence: calibrated by `reader` for `tier` where it can)."""
    texts: dict[int, str] = {}
    confs: dict[int, list[float]] = {}
    for reading, layout in zip(readings, pages):
        for tid, piece in split_decoded(reading.text, layout).items():
            texts[tid] = texts.get(tid, "") + piece
            c = turn_confidence(reading, layout, tid, reader, tier)
            if c is not None:
                confs.setdefault(tid, []).append(c)
    return texts, confs


def _geo(xs: list[float]) -> float:
    return float(math.exp(sum(math.log(max(x, 1e-12)) for x in xs) / len(xs))) if xs else 0.0


def draw_verified(turns: Sequence[Turn], reader, *, first_turn_number: int, tier: str, levels: int,
                  verify: bool = True, render=render_turns, keep_tokens: bool = False) -> Drawn:
    """Draw `turns` (each with an id) on pages with `render`; with `verify`, read every page back at `tier`
    as stored (`levels` greys) and redraw the turns that do not read back exactly in the next form.
    keep_tokens (a reader with `reads_tokens`): Drawn.tokens holds the token grids each page was read from."""
    form = {t.id: "plain" for t in turns}
    misread: dict[int, set[str]] = {t.id: set() for t in turns}
    for t in turns:  # a plain drawing that cannot show the text one for one starts escaped
        if any(needs_escape(c) for c in t.text) or _trailing_blank(t.text):
            form[t.id] = "escaped"
    verbatim: list[int] = []
    reads = 0
    seen: dict[bytes, object] = {}  # stored image digest -> its reading: a page a redraw left as it was is not read again
    grids: dict[bytes, dict] = {}  # stored image digest -> the token grids it was read from (keep_tokens)
    while True:
        live = [t for t in turns if t.id not in verbatim]
        drawn = [Turn(t.role, _draw(t.text, form[t.id], misread[t.id]), t.timestamp, t.id) for t in live]
        pages = render(drawn, first_turn_number=first_turn_number) if drawn else []
        if not verify or not pages:
            # unverified: only how each turn is drawn (its form, so that reading unescapes it), nothing measured
            checks = {t.id: TurnCheck(None, None, None, tier, form[t.id]) for t in live} if not verify else {}
            return Drawn(pages, checks, verbatim, reads)
        stored = [as_stored(p.image, tier, levels) for p in pages]
        keys = [hashlib.sha1(im.tobytes()).digest() for im in stored]
        todo = [k for k in range(len(pages)) if keys[k] not in seen]
        kw = {"tokens": [grids.setdefault(keys[k], {}) for k in todo]} if keep_tokens and todo else {}
        for k, r in zip(todo, reader.read([stored[k] for k in todo], tier, **kw) if todo else []):
            seen[keys[k]] = r
        readings = [seen[k] for k in keys]
        reads += len(todo)
        texts, confs = read_turn_texts(readings, [p.layout for p in pages], reader, tier)
        checks, failed = {}, []
        for t in live:
            got = texts.get(t.id, "")
            got = got if form[t.id] == "plain" else unescape(got)
            exact = got == t.text
            checks[t.id] = TurnCheck(exact, 1.0 if exact else char_precision(t.text, got), _geo(confs.get(t.id, [])),
                                     tier, form[t.id])
            if not exact:
                failed.append(t.id)
                misread[t.id] |= _misread(t.text, got)
        if not failed:
            return Drawn(pages, checks, verbatim, reads, [grids.get(k, {}) for k in keys])
        for tid in failed:
            nxt = FORMS.index(form[tid]) + 1
            if nxt < len(FORMS):
                form[tid] = FORMS[nxt]
            else:
                verbatim.append(tid)


def _trailing_blank(text: str) -> bool:
    return any(line != line.rstrip(" ") for line in text.split("\n"))


def unescape_for(form: str, text: str) -> str:
    """A turn's text as read from its pages, given how it was drawn (its check's form)."""
    return text if form == "plain" else unescape(text)
