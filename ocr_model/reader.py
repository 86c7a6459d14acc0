"""The reader adapter: an ocr_model checkpoint as a page reader (page images -> text + confidence).

    OpticalReader.from_pretrained(dir)   any checkpoint written by ocr_model.weights.save_pretrained (with its
                                         glyph heads, if any); the official DeepSeek-OCR weights read through
                                         the decoder alone
    load(dir=None, **kw)                 the one loader (the shipped model by default), used by optimem, the
                                         evaluation, the demo and the benchmarks
    load_calibration(dir), turn_score    the per-tier confidence curves shipped beside a checkpoint
    weights_fingerprint(dir)             what token grids read with a checkpoint are keyed by
    shipped_model_dir()                  the model shipped in ocr_model/weights/<name>/, or None
    Reading                              the text read from one page, its confidence, and per-cell confidences

It satisfies optimem's PageReader protocol without importing optimem (ocr_model never does); torch is
imported when a reader is built, not when this module is imported.

How the visual tokens are read (OpticalReader's `mode`):

    grid     the glyph heads (ocr_model/glyphs.py, `glyph_heads.safetensors` beside the checkpoint): every
             visual token names the characters of its page cells, all at once. Exact layout, no loops, no
             autoregressive decode. Every character a shipped font draws has a class; a replacement box
             (a character no font draws) reads as U+FFFD.
    decoder  the MoE decoder generates the text token by token (greedy), as DeepSeek-OCR does.
    auto     (default) grid when some view of the page's tier (below) has a head and at most `max_unknown`
             (half) of the page's drawn cells are read as OTHER; decoder for the other pages (checkpoints
             without heads).

    Views: a tier decides how many pixels of a page are KEPT; reading them is another matter. By default
    grid reads the stored image at its own tier (weight 1) and also resampled to the other tiers the heads
    know (`views`, default base 0.5, small 1.0, tiny 0.5), and adds the views' cell log-probabilities: each
    resolution confuses different look-alike glyphs, and the heads read even an upsampled 384 px page well.
    It costs one encode per view (none when the caller kept the grids: see below); the visual tokens
    spent on reading are the sum over the views, not the tier's own count. `views={}` reads each page from its own tier's tokens only.

Rows: `read(images, tier, rows=[...])` classifies only the token slots of the rows asked for (the encoder still
sees the whole page; other rows read blank). The grid readout runs a whole batch through tensor ops on the
model's device: slot features of the needed cells, each cell's top-k classes and log-sum-exp
(ocr_model/glyph_readout.py: on a GPU a fused Triton kernel that never stores the (cells, classes) logits;
`fused=False` takes its readable reference path), the views' combination scored on the candidates' logits
only, the homoglyph shapes; then per page on the host: the word-script vote, the text, the token counts (one batch).
On a GPU (`overlap`, on by default there) that host work runs on two worker threads while the device reads the
next batch, and greyscale pages go up from a pinned host buffer; on a CPU everything runs in line.

Kept token grids: `read(images, tier, tokens=[{view: (h, w, D) float16 array}, ...])`, one dict per image,
reuses the grids a caller kept for a view when every image of a batch has it, and adds to each dict the grids
it had to encode (float16, host memory). optimem keeps them on disk beside the page (its token cache), so a
recall runs only the glyph heads. `fingerprint` names the weights the grids came from (None: not known).

Confidence of a reading = exp(mean log p): over the drawn cells for `grid` (the probability of each cell's
chosen class under the views' weighted geometric mean; `Reading.cells` keeps it per cell, so a caller can
score one turn's own cells), over the generated tokens for `decoder` (taken before the n-gram ban). A
decoder reading that hit max_new_tokens without EOS (often a repetition loop) has complete=False.
A turn's confidence (`turn_confidence(cell probabilities, tier)`, what optimem reports per recalled turn) is
the calibrated P(the turn reads back exactly) from calibration.json beside the checkpoint (a logistic curve
per tier over a score of the turn's cells, fitted on held-out pages by benchmarks/confidence.py), else the
exp(mean log p) of its cells.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["CALIBRATION_FILE", "DEFAULT_VIEWS", "READ_MODES", "OpticalReader", "Reading", "ReaderError", "load", "load_calibration",
           "shipped_model_dir", "turn_score", "weights_fingerprint"]


class ReaderError(ValueError):
    """A reader was asked for something its checkpoint cannot do (no heads for a grid reading, ...)."""


@dataclass(frozen=True)
class Reading:
    """The text a reader got from one page image."""

    text: str
    confidence: float  # geometric mean token probability in [0, 1]
    complete: bool  # ended with EOS (False: cut at max_new_tokens); always True for a grid reading
    n_tokens: int  # decoded tokens (decoder) or the text's token count (grid: counted when first asked for)
    method: str = "decoder"  # "grid" or "decoder": which part of the model read the page
    # grid readings: (ROWS, COLS) float32 probability of each cell's chosen class (blank cells included)
    cells: np.ndarray | None = field(default=None, repr=False, compare=False)
    # n_tokens=None and a tokenizer's count: the count is made on first access (a grid read of 128 pages spent
    # 60 ms of host time counting tokens nobody asked for, 2 CPU cores)
    _count: Callable[[str], int] | None = field(default=None, repr=False, compare=False)


def _reading_tokens(self: Reading) -> int:
    n = self.__dict__.get("_n_tokens")
    if n is None:
        if self._count is None:
            raise ValueError("Reading(n_tokens=None) needs _count, the tokenizer's count of its text")
        n = int(self._count(self.text))
        object.__setattr__(self, "_n_tokens", n)
    return n


def _set_reading_tokens(self: Reading, n: int | None) -> None:
    object.__setattr__(self, "_n_tokens", n)


Reading.n_tokens = property(_reading_tokens, _set_reading_tokens)  # type: ignore[assignment]


def shipped_model_dir() -> Path | None:
    """The shipped checkpoint: the first directory (by name) under ocr_model/weights/ that holds a config.json
    and safetensors shards, or None. Imports nothing (no torch)."""
    root = Path(__file__).parent / "weights"
    if not root.is_dir():
        return None
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        if (d / "config.json").is_file() and any(d.glob("*.safetensors")):
            return d
    return None


READ_MODES = ("auto", "grid", "decoder")
_FILL_THREADS = max(2, min(8, os.cpu_count() or 2))  # threads that copy a batch's pages out of Pillow (_fill)
GPU_BATCH = 128  # OpticalReader's batch_size on a GPU unless given
_AHEAD_DEPTH = 2  # batches read's queued path keeps on the device before it finishes the oldest (read)
DEFAULT_VIEWS = {"base": 0.5, "small": 1.0, "tiny": 0.5}  # besides the page's own tier, at weight 1
CALIBRATION_FILE = "calibration.json"  # beside a checkpoint: {"curves": {tier: {"score", "a", "b"}}}
SCORES = ("mean", "prod", "min")


def weights_fingerprint(path: str | Path) -> str:
    """16 hex digits of SHA-256 over a checkpoint directory's *.safetensors and config.json (names and bytes):
    what token grids kept from its reads are keyed by (imports no torch)."""
    import hashlib

    d, h = Path(path), hashlib.sha256()
    for f in sorted(d.glob("*.safetensors")) + [d / "config.json"]:
        h.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def turn_score(probs: np.ndarray, score: str) -> float:
    """A turn's cells' probabilities -> the log-scale score a calibration curve reads: mean log p ("mean"),
    sum log p ("prod": the model's own probability that every cell is right) or log of the least sure cell."""
    logs = np.log(np.maximum(np.asarray(probs, dtype=np.float64), 1e-12))
    if score == "mean":
        return float(logs.mean())
    if score == "prod":
        return float(logs.sum())
    if score == "min":
        return float(logs.min())
    raise ValueError(f"score must be one of {', '.join(SCORES)}; got {score!r}")


def load_calibration(path: str | Path) -> dict[str, dict]:
    """{tier: {"score", "a", "b"}} from a checkpoint directory's calibration.json; {} when there is none."""
    import json

    f = Path(path) / CALIBRATION_FILE
    if not f.is_file():
        return {}
    curves = json.loads(f.read_text(encoding="utf-8")).get("curves", {})
    for tier, c in curves.items():
        if c.get("score") not in SCORES or not all(isinstance(c.get(k), (int, float)) for k in ("a", "b")):
            raise ValueError(f"{f}: the curve of tier {tier!r} must be {{score: one of {SCORES}, a: number, b: "
                             f"number}}, got {c!r}; rewrite it with benchmarks/confidence.py --fit")
    return curves


class OpticalReader:
    """Reads pages with an ocr_model OpticalModel + Tokenizer (+ optional glyph heads): see the module doc."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        glyph_heads: Any = None,
        mode: str = "auto",
        max_unknown: float = 0.5,
        views: Mapping[str, float] | None = None,
        max_new_tokens: int | None = None,
        batch_size: int | None = None,
        name: str = "ocr_model",
        top_k: int = 8,
        exact_views: bool = False,
        calibration: Mapping[str, Mapping[str, Any]] | None = None,
        overlap: bool | None = None,
        fused: bool | None = None,
        fold_bias: bool = False,
        compile: bool | str = False,
    ) -> None:
        import torch

        if mode not in READ_MODES:
            raise ValueError(f"mode must be one of {', '.join(READ_MODES)}; got {mode!r}")
        if mode == "grid" and glyph_heads is None:
            raise ReaderError(
                "mode='grid' needs glyph heads (glyph_heads.safetensors beside the checkpoint) and this model has "
                "none; use mode='auto' or mode='decoder'"
            )
        self.model, self.tokenizer = model.eval(), tokenizer
        # the heads keep their dtype (float32 as loaded: bf16 heads read tiny pages 0.99558 against 0.99581 on
        # 300 doc pages, one H200, session 11); the fused readout then splits them into bf16 halves (glyph_readout)
        self.glyph_heads = None if glyph_heads is None else glyph_heads.to(model.device).eval()
        if not 0.0 <= max_unknown <= 1.0:
            raise ValueError(f"max_unknown is a fraction of a page's drawn cells, in [0, 1]; got {max_unknown}")
        from ocr_model.page import TIERS

        views = dict(DEFAULT_VIEWS if views is None else views)
        bad = {t: w for t, w in views.items() if t not in TIERS or not w >= 0}
        if bad:
            raise ValueError(f"views maps tier names ({', '.join(TIERS)}) to weights >= 0; got {bad}")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size is the pages read per forward pass, an int >= 1 (None: 4 on a CPU, "
                             f"{GPU_BATCH} on a GPU); got {batch_size!r}")
        # pages per forward pass: on a GPU large batches keep the device busy (the figures in docs/benchmarks.md
        # are at 128), on a CPU small ones keep a recall's latency low
        batch_size = batch_size or (4 if model.device.type == "cpu" else GPU_BATCH)
        self.mode, self.max_unknown, self.batch_size, self.name = mode, max_unknown, batch_size, name
        self.views = views
        # the grid reader keeps each view's top_k classes per cell (fast); exact_views keeps all (reference)
        self.top_k, self.exact_views = int(top_k), bool(exact_views)
        # a full page is 75 x 38 = 2850 characters, ~1000 BPE tokens; the model's context may cap it lower
        self.max_new_tokens = max_new_tokens or 1200
        self.calibration = dict(calibration or {})  # tier -> logistic curve over a turn's cells (turn_confidence)
        self._torch = torch
        self._lock = threading.Lock()  # one forward pass at a time: torch modules are not re-entrant
        # the host side of a grid read (word-script vote, text, token counts) on two worker threads while the device
        # reads the next batch; None: on when the model is on a GPU (on a CPU the threads would only compete)
        self.overlap = model.device.type != "cpu" if overlap is None else bool(overlap)
        # the glyph readout (ocr_model/glyph_readout.py): the fused Triton kernel (True), the readable reference
        # with its (cells, classes) logits table (False); None: fused where it runs (CUDA with Triton)
        self.fused = fused
        # the SAM attention's relative-position bias folded into its dot products (deepencoder._folded_attention)
        # or added as the (N, N) table (default): eager on one H200 the table ran faster (base 2,343 vs 2,114
        # pages/s, session 12), the fold is for compilers and kernels that take no bias
        self.fold_bias = bool(fold_bias)
        # the encoder under torch.compile (opt-in: ~20 s per page size on first use, then 2.3x the eager encoder
        # on one H200, sessions 12-13); batches are padded to batch_size so each tier compiles once. A string is
        # torch.compile's mode: "reduce-overhead" replays CUDA graphs (one launch per batch)
        if not isinstance(compile, (bool, str)):
            raise ValueError(f"compile is True, False or a torch.compile mode ('default', 'reduce-overhead', "
                             f"'max-autotune'); got {compile!r}")
        self.compile = bool(compile)
        self._compile_backend = "inductor"
        self._compile_mode: str | None = compile if isinstance(compile, str) else None
        # (pages, side, slot) -> (pinned uint8 buffer, its upload's event); slot 0/1: the batches staged in turn
        # by `read` (the next batch's pages are copied in while the device reads this one), "direct": the rest
        self._pins: dict[tuple[int, int, Any], tuple[Any, Any]] = {}
        self._pins_lock = threading.Lock()
        self._slots: dict[tuple, Any] = {}  # (pages, grid, slots per page, device) -> every cell's slot (_slot_index)
        self._fillers: Any = None  # the threads that copy a batch's pages into the input buffer (_fill)
        # the other views of a page resampled on the device (_encode_views; on a CPU Pillow is the faster)
        self._device_resample = model.device.type == "cuda"
        # read's queued path on a GPU (`_queue_batch`): each batch's device work queued, nothing waited for,
        # before an earlier batch's host side (_AHEAD_DEPTH); False: the worker-thread path (benchmarks compare them);
        # True forces it on a CPU (tests)
        self._ahead: bool | None = None
        self._flat_share: dict[int, float] = {}  # grid -> the largest share of flat cells seen (_read_again_budget)
        encode = tokenizer.encode

        def counter(text: str) -> int:  # a plain function: a Reading that keeps it copies (deepcopy) cheaply
            return len(encode(text))

        self._counter = counter
        self._padded: dict[tuple, tuple[Any, Any]] = {}  # classifier -> its weight and bias padded (_classify)
        self._source: Path | None = None  # the checkpoint directory, when loaded from one (fingerprint)
        self._fingerprint: str | None = None

    @classmethod
    def from_pretrained(cls, path: str | Path, *, device: str = "cpu", dtype: Any = None, **kw: Any) -> OpticalReader:
        """Load a directory written by ocr_model.weights.save_pretrained (and its glyph heads, if any); `dtype`
        (a torch dtype) defaults to bf16 on a GPU, float32 on a CPU."""
        from ocr_model.glyphs import load_glyph_heads
        from ocr_model.weights import load_pretrained

        model, tok = load_pretrained(path, device=device, dtype=dtype)
        heads = load_glyph_heads(path, model.cfg.decoder.dim)
        kw.setdefault("calibration", load_calibration(path))
        reader = cls(model, tok, glyph_heads=heads, name=kw.pop("name", Path(path).name), **kw)
        reader._source = Path(path)
        return reader

    @property
    def fingerprint(self) -> str | None:
        """16 hex digits of SHA-256 over the checkpoint's weight and config files: token grids kept from
        one checkpoint are never read with another. None for a reader not loaded from a directory."""
        if self._fingerprint is None and self._source is not None:
            self._fingerprint = weights_fingerprint(self._source)
        return self._fingerprint

    def turn_confidence(self, probs: np.ndarray, tier: str) -> float:
        """The confidence of a turn read from cells with these probabilities (a grid reading's `cells` over
        the turn's own cells) on a page of `tier`: P(the turn reads back exactly) by the logistic curve fitted
        for the tier on held-out pages (calibration.json beside the checkpoint; benchmarks/confidence.py),
        or, without one, exp(mean log p)."""
        c = self.calibration.get(tier)
        if c is None:
            return float(math.exp(turn_score(probs, "mean")))
        return float(1.0 / (1.0 + math.exp(-(c["a"] * turn_score(probs, c["score"]) + c["b"]))))

    def grids(self) -> list[int]:
        """Token-grid sizes (tier side / 64) the glyph heads can read; [] without heads."""
        return sorted(int(g) for g in self.glyph_heads) if self.glyph_heads is not None else []

    def encode(self, images: Sequence[Image.Image], tier: str) -> Any:
        """Visual tokens [B, Tv, D] for page images at `tier` (Tv = h*(w+1)+1, h = side/64)."""
        return self.model.layout_visual(self._encode_grid(images, tier))

    def _encode_grid(self, images: Sequence[Image.Image], tier: str) -> Any:
        return self._encode(self.pixels(images, tier))  # [B,h,w,D]

    def _encode(self, pixels: Any) -> Any:
        """model input [B,3,S,S] -> token grids [B,h,w,D], with this reader's SAM attention (fold_bias: the
        model may be shared by readers that differ)."""
        from ocr_model.deepencoder import fold_attention_bias

        fold_attention_bias(self.model, self.fold_bias)
        if not self.compile:
            return self.model.encode_grid(pixels)
        torch = self._torch
        how = (self._compile_backend, self._compile_mode)
        kept = self.model.__dict__.setdefault("_compiled_encode", {})  # per model: readers sharing it share graphs
        if how not in kept:
            kept[how] = torch.compile(self.model.encode_grid, dynamic=False, backend=how[0], mode=how[1])
        n = pixels.shape[0]
        if n < self.batch_size:  # a short batch (the last one) padded: one graph per page size
            pixels = torch.cat([pixels, pixels[-1:].expand(self.batch_size - n, *pixels.shape[1:])])
        if how[1] != "reduce-overhead":
            return kept[how](pixels)[:n]
        # CUDA graphs: one launch per batch; the graph's output memory is written again by its next replay
        torch.compiler.cudagraph_mark_step_begin()
        return kept[how](pixels)[:n].clone()

    def pixels(self, images: Sequence[Image.Image], tier: str) -> Any:
        """[B,3,S,S] model input on the model's device. Greyscale pages at the tier's size (what Memory
        stores) travel as uint8 and are scaled there, as ocr_model.train.to_model_input does in training;
        anything else goes through ocr_model.image_process.to_tensor."""
        from ocr_model.image_process import to_tensor

        u8 = self._pages_u8(images, tier)
        if u8 is None:
            return to_tensor(list(images), tier).to(self.model.device)
        return self._model_input(u8)

    def _pages_u8(self, images: Sequence[Image.Image], tier: str, staged: Any = None) -> Any:
        """uint8 [B,S,S] pages on the model's device, or None unless every image is a greyscale page at the
        tier's size. `staged`: the Future of `_stage` for these images (their pixels already in a pinned buffer)."""
        torch = self._torch
        host = staged.result() if staged is not None else None
        if host is None:
            side = self._page_side(images, tier)
            if side is None:
                return None
            if self.model.device.type != "cuda":
                u8 = torch.empty((len(images), side, side), dtype=torch.uint8)  # [B,S,S]
                self._fill(u8.numpy(), images)
                return u8.to(self.model.device)
            host = self._stage(images, tier, "direct")
        key, u8 = host
        x = u8.to(self.model.device, non_blocking=True)  # page-locked: the upload runs asynchronously
        event = torch.cuda.Event()  # the buffer may be filled again only once this copy has run
        event.record()
        with self._pins_lock:
            self._pins[key] = (u8, event)
        return x

    def _page_side(self, images: Sequence[Image.Image], tier: str) -> int | None:
        """The tier's side if every image is a greyscale page of that size (they travel as uint8), else None."""
        from ocr_model.page import TIERS

        side = TIERS[tier].side if tier in TIERS else None
        if side is None or not all(im.mode == "L" and im.size == (side, side) for im in images):
            return None
        return side

    def _stage(self, images: Sequence[Image.Image], tier: str, slot: Any) -> tuple[tuple, Any] | None:
        """The pages' pixels copied into a pinned (n, S, S) buffer of this slot: (its key, the buffer), or None
        for images that are not greyscale pages at the tier's size. Run ahead on a thread by `read`."""
        side = self._page_side(images, tier)
        if side is None:
            return None
        key = (len(images), side, slot)
        u8 = self._pinned(key)
        self._fill(u8.numpy(), images)
        return key, u8

    @staticmethod
    def _model_input(u8: Any) -> Any:
        x = u8.float().div_(127.5).sub_(1.0)
        return x.unsqueeze(1).expand(-1, 3, -1, -1)  # [B,3,S,S]: the three channels of a grey page

    def _fill(self, host: np.ndarray, images: Sequence[Image.Image]) -> None:
        """host[i] = the pixels of images[i] ((n, S, S) uint8), on a few threads for a batch
        (image_process.copy_pixels: one copy out of Pillow's memory, which numpy makes without the GIL)."""
        from ocr_model.image_process import copy_pixels

        def fill(lo: int) -> None:
            for i in range(lo, min(lo + step, len(images))):
                copy_pixels(images[i], host[i])

        step = max(8, -(-len(images) // _FILL_THREADS))
        if len(images) <= step:
            return fill(0)
        if self._fillers is None:
            from concurrent.futures import ThreadPoolExecutor

            self._fillers = ThreadPoolExecutor(_FILL_THREADS, thread_name_prefix="optical-pixels")
        list(self._fillers.map(fill, range(0, len(images), step)))

    def _pinned(self, key: tuple) -> Any:
        """A page-locked (n, side, side) uint8 host buffer for key (n, side, slot), reused (a few kept), once
        the upload that last read it has run."""
        with self._pins_lock:
            buf, event = self._pins.pop(key, (None, None))
            while buf is None and len(self._pins) >= 6:  # the tiers' sides x the last batch's size x the slots
                self._pins.pop(next(iter(self._pins)))
        if buf is None:
            n, side, _ = key
            return self._torch.empty((n, side, side), dtype=self._torch.uint8).pin_memory()
        event.synchronize()
        return buf

    def _room(self, visual_len: int) -> int:
        cap = self.model.cfg.decoder.max_positions - 1 - visual_len  # BOS + visual tokens come first
        return max(1, min(self.max_new_tokens, cap))

    def grid_views(self, tier: str) -> dict[str, float]:
        """{tier: weight} of the views the glyph heads read a page stored at `tier` from (own tier weight 1);
        empty when no view has a head (then only the decoder can read it)."""
        from ocr_model.page import TIERS

        if self.glyph_heads is None:
            return {}
        out = {t: w for t, w in self.views.items() if w > 0 and t != tier}
        out[tier] = 1.0
        return {t: w for t, w in out.items() if str(TIERS[t].grid) in self.glyph_heads}

    def _grid_cells(
        self, images: Sequence[Image.Image], tier: str, views: dict[str, float], encoded: dict[str, Any],
        rows: Sequence[Sequence[int] | None] | None = None, staged: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The glyph heads' cells of pages stored at `tier`, read from `views` (see the module doc): (B, ROWS,
        COLS) chosen shapes (homoglyph groups' canonical classes) and their probabilities, on the host. Token
        grids go into `encoded` ({tier: [b,h,w,D]}). With `rows`, only those rows of each page are classified
        (the others read blank, probability 1). `exact_views` takes the per-page reference path; else
        `_cells_queued` (the whole batch in tensor ops). `_readings` makes Readings of them."""
        from ocr_model.page import COLS, ROWS

        if self.exact_views:
            return self._grid_cells_reference(images, tier, views, encoded, rows)
        cls, conf, _ = self._cells_queued(images, tier, views, encoded, rows, staged)
        B = len(images)
        return cls.cpu().view(B, ROWS, COLS).numpy(), conf.cpu().view(B, ROWS, COLS).numpy()  # rows not asked: blank

    def _cells_queued(
        self, images: Sequence[Image.Image], tier: str, views: dict[str, float], encoded: dict[str, Any],
        rows: Sequence[Sequence[int] | None] | None = None, staged: Any = None, wait: bool = True,
    ) -> tuple[Any, Any, list[tuple[int, Any, int, int]]]:
        """`_grid_cells` on the model's device: (B * ROWS * COLS,) int64 shapes and float64 probabilities, page
        by page in reading order, and per view (grid, its count of flat cells, the read-again budget, cells).
        wait=False: nothing here waits for the device (read's queued path): the fused readout reads flat cells
        again within a budget (glyph_readout.top_classes(again=)) and the counts tell whether it sufficed;
        wait=True: every flat cell read again, waiting (no counts: the list is empty). The whole batch goes
        through tensor ops, one per step."""
        from functools import partial

        from ocr_model.glyph_readout import candidate_logits, top_classes
        from ocr_model.page import COLS, ROWS

        torch = self._torch
        dev = self.model.device
        B, total = len(images), sum(views.values())
        whole = rows is None or all(r is None for r in rows)  # every cell of every page: indices kept per shape
        if whole:
            page_i = cell_i = None
            P = B * ROWS * COLS
        else:
            want = self._row_mask(B, rows)  # (B, ROWS*COLS) bool: the cells asked for
            page_i, cell_i = torch.nonzero(want, as_tuple=True)  # (P,), (P,): every asked cell of every page
            P = int(page_i.numel())
        per_view = []  # (w, scorer: classes (P, M) -> float32 logits (P, M), lse (P,), top-k classes (P, k))
        n_cls = []  # each view's real class count (the classifier may be padded past it: _classifier)
        flats: list[tuple[int, Any, int, int]] = []
        self._encode_views(images, tier, [v for v in views if v not in encoded], encoded, staged)
        for view, weight in views.items():
            g = encoded[view]  # (B, h, w, D)
            if P == 0:
                continue
            head = self.glyph_heads[str(g.shape[1])]
            x = g.to(head.cls.weight.dtype)
            if hasattr(head, "features"):  # classify only the slots that own an asked cell
                f = head.features(x)  # (B, h, w, S, E)
                flat = self._slot_index(B, g.shape[1], f.shape[1] * f.shape[2] * f.shape[3], page_i, cell_i, g.device)
                feats = f.reshape(-1, f.shape[-1])[flat]  # (P, E)
                w, b = self._classifier(head.cls)
                k = min(self.top_k, head.cls.out_features)
                # no (P, classes) table on a GPU: the fused kernel keeps each cell's top k and log-sum-exp
                if wait:
                    _, idx, lse = top_classes(feats, w, b, k, fused=self.fused)  # (P, k), (P,)
                else:
                    budget = self._read_again_budget(g.shape[1], P)
                    _, idx, lse, n_flat = top_classes(feats, w, b, k, fused=self.fused, again=budget)
                    flats.append((g.shape[1], n_flat, budget, P))
                per_view.append((weight / total, partial(candidate_logits, feats, w, b), lse, idx))
                n_cls.append(head.cls.out_features)
            else:  # any module mapping a token grid to (B, h, w, S, C) logits
                full = head(x)
                flat = self._slot_index(B, g.shape[1], full.shape[1] * full.shape[2] * full.shape[3], page_i, cell_i,
                                        g.device)
                logits = full.reshape(-1, full.shape[-1])[flat].float()  # (P, C)
                idx = logits.topk(min(self.top_k, logits.shape[-1]), dim=-1).indices
                per_view.append((weight / total, partial(_gathered, logits), logits.logsumexp(-1), idx))
                n_cls.append(logits.shape[-1])
        if not P:
            return (torch.zeros(B * ROWS * COLS, dtype=torch.long, device=dev),
                    torch.ones(B * ROWS * COLS, dtype=torch.float64, device=dev), flats)
        cand, score = self._combine_batch(per_view, min(n_cls))  # (P, M) classes, (P, M + 1) log p (last: the rest)
        probs = score.softmax(-1)[:, : cand.shape[-1]]  # renormalised (with the rest's column), then dropped
        # classes drawn with identical pixels (Latin a / Cyrillic а, ',' / U+201A) are one shape: their
        # probabilities add up, and the word around the cell picks the member (resolve_homoglyphs); the
        # choice stays the most probable class, then its shape (summing first would favour shapes of many
        # members, like the 15 blank-drawn spaces, whenever the reader is unsure)
        group = self._group_table(max(n_cls), cand.device)[cand]  # (P, M); every candidate is a real class
        shape = group.gather(-1, probs.argmax(-1, keepdim=True))[:, 0]  # (P,)
        conf = (probs * (group == shape[:, None])).sum(-1).double()  # (P,)
        if whole:  # the cells in order: no scatter
            return shape, conf, flats
        at = self._to_device(page_i * (ROWS * COLS) + cell_i)  # (P,) into the batch's cells
        cls_all = torch.zeros(B * ROWS * COLS, dtype=torch.long, device=dev).index_copy_(0, at, shape)
        conf_all = torch.ones(B * ROWS * COLS, dtype=torch.float64, device=dev).index_copy_(0, at, conf)
        return cls_all, conf_all, flats

    def _read_again_budget(self, grid: int, cells: int) -> int:
        """How many cells the queued readout reads again in float32 (glyph_readout.top_classes(again=)): twice
        the largest share of flat cells seen at this grid (base pages had 0.7% of 364,800 cells in session 11,
        tiny 0.03%), 1/64 before any was seen, at least 512 and at most 1/16 of the cells (past that a batch is
        read again waiting: one batch of noise pages does not make every later batch read all its cells twice)."""
        share = self._flat_share.get(grid)
        want = 512 + int(cells * (2 * share if share is not None else 1 / 64))
        return min(cells, want, max(512, cells // 16))

    def _to_device(self, t: Any) -> Any:
        """A host tensor on the model's device without waiting for it (a pageable upload waits for the queue)."""
        if self.model.device.type != "cuda":
            return t.to(self.model.device)
        return t.pin_memory().to(self.model.device, non_blocking=True)

    def _slot_index(self, B: int, grid: int, per_page: int, page_i: Any, cell_i: Any, device: Any) -> Any:
        """(P,) index into a batch's flattened slots (B * per_page) of each asked cell: page_i, cell_i, or
        (None) every cell of every page in order, kept on the device per shape."""
        from ocr_model.page.glyphs import cell_slots

        slot_of = self._torch.from_numpy(cell_slots(grid))  # cell -> the one slot that owns it (one to one)
        if page_i is not None:
            return self._to_device(page_i * per_page + slot_of[cell_i])
        key = (B, grid, per_page, str(device))
        cached = self._slots.get(key)
        if cached is None:
            while len(self._slots) >= 8:
                self._slots.pop(next(iter(self._slots)))
            pages = self._torch.arange(B)[:, None] * per_page  # (B, 1)
            cached = self._slots[key] = (pages + slot_of[None, :]).reshape(-1).to(device)  # (B * cells,)
        return cached

    def _classifier(self, cls: Any) -> tuple[Any, Any]:
        """The weight and bias of the classifier `cls` (an nn.Linear; a missing bias reads as 0). On a GPU the
        classes are padded to a multiple of 128 (glyph_readout.padded; kept per classifier): with 17,143
        classes the matrix product of the reference path runs ~6x faster on an H200, and the fused kernel
        reads whole tiles of 128."""
        from ocr_model.glyph_readout import padded

        bias = cls.bias if cls.bias is not None else cls.weight.new_zeros(cls.out_features)
        if cls.weight.device.type == "cpu" or cls.out_features % 128 == 0:
            return cls.weight, bias
        key = (id(cls), cls.weight.data_ptr(), cls.weight.dtype)
        pads = self._padded
        if key not in pads:
            while len(pads) >= 8:  # the heads in use, one per grid (weights changed: built again)
                pads.pop(next(iter(pads)))
            pads[key] = padded(cls.weight, bias)
        return pads[key]

    def _encode_views(self, images: Sequence[Image.Image], tier: str, views: Sequence[str], encoded: dict[str, Any],
                      staged: Any = None) -> None:
        """encoded[view] = the [B,h,w,D] token grids of the pages (stored at `tier`) seen at each of `views`. On
        a GPU the pages go up once and are resampled there (image_process.resample_pages: Pillow's LANCZOS bit
        for bit); on a CPU, or for pages that are not greyscale at the tier's size, Pillow resamples them."""
        from ocr_model.image_process import resample_pages
        from ocr_model.page import TIERS

        if not views:
            return
        u8 = None
        if staged is not None or self._device_resample and any(v != tier for v in views):
            u8 = self._pages_u8(images, tier, staged)  # [B,S,S] on the device
        for view in views:
            if u8 is not None:
                x = u8 if view == tier else resample_pages(u8, TIERS[view].side)  # [B,S',S']
                encoded[view] = self._encode(self._model_input(x))
            else:
                encoded[view] = self._encode_grid(images if view == tier else self._resampled(images, view), view)

    def _resampled(self, images: Sequence[Image.Image], view: str) -> list[Image.Image]:
        """The pages at another tier through the renderer's one resampling function (page_at_tier); a batch
        is resized on a few threads (Pillow releases the GIL while it resamples)."""
        from ocr_model.page import page_at_tier

        if len(images) < 8:
            return [page_at_tier(im, view) for im in images]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(8, len(images) // 4)) as pool:
            return list(pool.map(lambda im: page_at_tier(im, view), images))

    def _row_mask(self, n_pages: int, rows: Sequence[Sequence[int | tuple[int, int, int]] | None] | None) -> Any:
        """(n_pages, ROWS*COLS) bool: the cells asked for. Each entry of `rows` (one per page) is None (the whole
        page) or a list of row indices and/or (row, first col, end col) spans."""
        from ocr_model.page import COLS, ROWS

        torch = self._torch
        want = torch.ones(n_pages, ROWS, COLS, dtype=torch.bool)
        if rows is not None:
            if len(rows) != n_pages:
                raise ValueError(f"rows gives one entry per image (a list of row indices or (row, first col, end "
                                 f"col) spans, or None for all); got {len(rows)} for {n_pages} images")
            for i, asked in enumerate(rows):
                if asked is None:
                    continue
                want[i] = False
                for item in asked:
                    r, a, b = (item, 0, COLS) if isinstance(item, (int, np.integer)) else (int(x) for x in item)
                    if not 0 <= r < ROWS or not 0 <= a < b <= COLS:
                        raise ValueError(f"rows of image {i}: row {r} must lie in 0..{ROWS - 1} and a span's columns "
                                         f"in 0..{COLS} (first < end); got {item!r}")
                    want[i, r, a:b] = True
        return want.view(n_pages, ROWS * COLS)

    def _group_table(self, n: int, device: Any) -> Any:
        from ocr_model.page.glyphs import group_of_classes

        cached = getattr(self, "_groups", None)
        if cached is None or cached.shape[0] < n or cached.device != device:
            cached = self._groups = self._torch.from_numpy(group_of_classes(max(n, 1))).to(device)
        return cached

    def _readings(self, cls: np.ndarray, conf: np.ndarray) -> list[Reading]:
        """A batch's (B, ROWS, COLS) chosen shapes and their probabilities -> one Reading per page (homoglyphs
        resolved by word, texts spelled for the batch at once; token counts made when first asked for). Host
        work only: `read` runs it on a worker thread (`overlap`). The confidence: the geometric mean of the
        drawn cells' probabilities (every cell's on a blank page)."""
        from ocr_model.page.glyphs import spell_pages

        cls, texts = spell_pages(cls)
        probs = np.array(conf, dtype=np.float32)  # (B, ROWS, COLS) a copy: the Readings' cells (never pinned memory)
        logp = np.log(np.maximum(probs, 1e-12))
        drawn = cls != 0
        n = drawn.sum(axis=(1, 2))  # (B,)
        total = np.where(drawn, logp, 0.0).sum(axis=(1, 2), dtype=np.float64)
        mean = np.where(n > 0, total / np.maximum(n, 1), logp.mean(axis=(1, 2), dtype=np.float64))
        return [Reading(text, float(c), True, None, method="grid", cells=p, _count=self._counter)
                for text, c, p in zip(texts, np.exp(mean), probs)]

    @staticmethod
    def _unknown_share(cls: np.ndarray) -> np.ndarray:
        """(B,) share of each page's drawn cells (B, ROWS, COLS) that no class spells (read as OTHER). The
        word-script vote swaps letters within a homoglyph group only, so it does not change this."""
        from ocr_model.glyphs import OTHER

        drawn = (cls != 0).sum(axis=(1, 2))
        return (cls == OTHER).sum(axis=(1, 2)) / np.maximum(drawn, 1)

    def _combine_batch(self, views: list, n_cls: int) -> tuple[Any, Any]:
        """The views' cell evidence for a batch -> (candidate classes (P, M), weighted log p (P, M + 1)): a
        weighted geometric mean of the views' distributions over the union of their top-k classes per cell,
        each scored exactly in every view (its logits of those classes only, never a (cells, classes) table),
        plus one column for the classes outside the candidates, log(1 - sum p) per view. `n_cls`: the fewest
        real classes of the views' heads (they may differ; classifiers may be padded past them)."""
        torch = self._torch
        cand = torch.cat([idx for _, _, _, idx in views], -1).clamp(max=n_cls - 1)  # (P, M)
        P, M = cand.shape
        earlier = torch.ones(M, M, dtype=torch.bool, device=cand.device).tril(-1)  # [j, i]: i < j
        dup = ((cand.unsqueeze(-1) == cand.unsqueeze(-2)) & earlier).any(-1)  # a class proposed twice counts once
        score = torch.zeros(P, M, dtype=torch.float32, device=cand.device)
        rest = torch.zeros(P, 1, dtype=torch.float32, device=cand.device)
        for w, scorer, lse, _ in views:
            lp = scorer(cand) - lse.unsqueeze(-1)  # (P, M) float32 log p of the candidates in this view
            score += w * lp
            p_in = lp.exp().masked_fill(dup, 0.0).sum(-1, keepdim=True)
            rest += w * (1.0 - p_in).clamp(min=1e-12).log()
        return cand, torch.cat([score.masked_fill(dup, -1e9), rest], -1)

    def _grid_cells_reference(
        self, images: Sequence[Image.Image], tier: str, views: dict[str, float], encoded: dict[str, Any],
        rows: Sequence[Sequence[int] | None] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The readable reference of `_grid_cells` (`exact_views=True`): page by page, every class of every cell
        of every view (`cell_log_probs`), combined as a weighted geometric mean (the same argmax as the
        weighted sum, a confidence on one view's scale); rows not asked for are blanked after reading."""
        from ocr_model.glyphs import cell_log_probs
        from ocr_model.page import COLS, ROWS

        total = sum(views.values())
        want = self._row_mask(len(images), rows)
        per_view: list[list[tuple[Any, float]]] = [[] for _ in images]  # per page: (log p (cells, classes), weight)
        for view, weight in views.items():
            if view not in encoded:
                encoded[view] = self._encode_grid(images if view == tier else self._resampled(images, view), view)
            g = encoded[view]
            head = self.glyph_heads[str(g.shape[1])]
            logits = head(g.to(head.cls.weight.dtype))  # [b,h,w,S,classes]
            for i, x in enumerate(logits):
                per_view[i].append((cell_log_probs(x).flatten(0, 1), weight / total))
        cls_out, conf_out = [], []
        for views_i in per_view:
            n = min(lp.shape[-1] for lp, _ in views_i)  # heads may differ in class count
            probs = sum(w * lp[:, :n] for lp, w in views_i).softmax(-1)  # (cells, n)
            # classes drawn with identical pixels are one shape (see _grid_cells)
            group = self._group_table(n, probs.device)[:n].expand_as(probs)  # (cells, n)
            shape = group.gather(-1, probs.argmax(-1, keepdim=True))  # (cells, 1)
            conf_t = (probs * (group == shape)).sum(-1)
            keep = want[len(cls_out)].view(ROWS, COLS).to(shape.device)
            cls_out.append(shape.squeeze(-1).view(ROWS, COLS).masked_fill(~keep, 0).cpu().numpy())
            conf_out.append(conf_t.view(ROWS, COLS).masked_fill(~keep, 1.0).double().cpu().numpy())
        return np.stack(cls_out), np.stack(conf_out)

    reads_rows = True  # read(..., rows=) classifies only the rows asked for (optimem reads one turn's rows)
    reads_spans = True  # ... and rows= may hold (row, first col, end col) spans: only a turn's own cells
    reads_tokens = True  # read(..., tokens=) reuses and hands back token grids (optimem's token cache)

    def read(self, images: Sequence[Image.Image], tier: str, *,
             rows: Sequence[Sequence[int | tuple[int, int, int]] | None] | None = None,
             tokens: Sequence[dict[str, np.ndarray]] | None = None) -> list[Reading]:
        """One Reading per page image (each already at `tier`'s size). `rows`, one entry per image (row
        indices and/or (row, first col, end col) spans, or None for the whole page), limits a grid reading to
        those cells: the others read blank and do not count in the confidence; the encoder still sees the
        whole page. Decoder readings (no head for the tier, or too many unknown cells) always read the whole
        page. `tokens`, one dict per image
        ({view tier: (h, w, D) grid} from an earlier read of the same image by the same weights), skips the
        encoder for a view that every image of a batch has, and gets the grids encoded here added."""
        if rows is not None and len(rows) != len(images):
            raise ValueError(f"rows gives one entry per image (row indices or (row, first col, end col) spans, or "
                             f"None for the whole page); got {len(rows)} for {len(images)} images")
        if tokens is not None and len(tokens) != len(images):
            raise ValueError(f"tokens gives one dict per image ({{view tier: token grid}}, empty for none); got "
                             f"{len(tokens)} for {len(images)} images")
        from concurrent.futures import Future, ThreadPoolExecutor

        done: list[tuple[list[int], Any, dict[int, Reading], int]] = []  # per batch: grid pages, their readings, decoded
        several = len(images) > self.batch_size  # overlap pays from the second batch on
        cuda = self.model.device.type == "cuda"
        # on a GPU each batch's device work is queued before an earlier batch's host side runs on this thread
        # (_queue_batch, _AHEAD_DEPTH batches ahead): the device need not wait for the host, and no worker thread
        # holds the GIL meanwhile
        ahead = (self.overlap and several and self.mode != "decoder" and not self.exact_views
                 and (cuda if self._ahead is None else self._ahead))
        threads = self.overlap and several and not ahead  # the worker-thread path: the host side on two threads
        pool = ThreadPoolExecutor(2, thread_name_prefix="optical-read") if threads else None
        # on a GPU the next batch's pixels are copied into a pinned buffer while the device reads this one
        stager = (ThreadPoolExecutor(1, thread_name_prefix="optical-stage")
                  if (pool is not None or ahead) and cuda and self.mode != "decoder" else None)
        starts = list(range(0, len(images), self.batch_size))
        try:
            with self._lock, self._torch.inference_mode():
                nxt = stager.submit(self._stage, images[: self.batch_size], tier, 0) if stager else None
                queued: list[tuple] = []  # batches on the device, not yet finished (at most _AHEAD_DEPTH)
                for b, s in enumerate(starts):
                    chunk, staged = images[s : s + self.batch_size], nxt
                    if stager is not None and b + 1 < len(starts):
                        nxt = stager.submit(self._stage, images[starts[b + 1] : starts[b + 1] + self.batch_size],
                                            tier, (b + 1) % 2)
                    chunk_rows = None if rows is None else rows[s : s + self.batch_size]
                    if ahead:  # this batch queued on the device, then the oldest finished once enough are queued
                        queued.append(self._queue_batch(chunk, tier, chunk_rows, staged,
                                                        None if tokens is None else tokens[s : s + self.batch_size]))
                        if len(queued) > _AHEAD_DEPTH:
                            done.append(self._finish_batch(queued.pop(0)))
                        continue
                    done.append(self._read_batch(chunk, tier, chunk_rows,
                                                 None if tokens is None else tokens[s : s + self.batch_size], pool,
                                                 staged))
                done += [self._finish_batch(q) for q in queued]
        finally:
            for ex in (pool, stager):
                if ex is not None:
                    ex.shutdown(wait=True)
        out: list[Reading] = []
        for grid_pages, grid, decoded, n in done:
            got = dict(zip(grid_pages, grid.result() if isinstance(grid, Future) else grid))
            out += [got[i] if i in got else decoded[i] for i in range(n)]
        return out

    def _batch_views(self, tier: str) -> dict[str, float]:
        """The views a batch at `tier` is read from by the glyph heads (empty: the decoder reads it)."""
        views = self.grid_views(tier) if self.mode != "decoder" else {}
        if self.mode == "grid" and not views:
            raise ReaderError(
                f"mode='grid': the glyph heads read token grids {self.grids()}, and no view of tier "
                f"{tier!r} has one (views: {self.views or 'own tier only'}); use mode='auto' to let "
                "the decoder read it, or add a view"
            )
        return views

    def _read_batch(self, chunk: Sequence[Image.Image], tier: str, chunk_rows: Any, kept: Any,
                    pool: Any, staged: Any = None) -> tuple[list[int], Any, dict[int, Reading], int]:
        """One batch of `read`: (pages read by the grid, their Readings - or the Future of them, when `pool`
        makes them on its thread -, the decoder's Readings by page, pages in the batch). `staged`: the Future
        of the batch's pixels in a pinned buffer (`_stage`), or None."""
        encoded: dict[str, Any] = {}  # tier -> this chunk's [b,h,w,D] token grids, each encoded once
        if kept is not None:
            encoded.update(self._kept_grids(kept))
            given = set(encoded)
        views = self._batch_views(tier)
        cells = self._grid_cells(chunk, tier, views, encoded, chunk_rows, staged) if views else None
        out = self._batch_readings(chunk, tier, encoded, cells, pool)
        if kept is not None:  # hand back what was encoded here: float16 on the host, per image
            _hand_back(kept, {v: encoded[v].to(self._torch.float16).cpu() for v in set(encoded) - given})
        return out

    def _queue_batch(self, chunk: Sequence[Image.Image], tier: str, chunk_rows: Any, staged: Any,
                     kept: Sequence[dict[str, np.ndarray]] | None = None) -> tuple:
        """A batch's device work queued (encoders, glyph readout, the cells' copy to pinned host memory, and with
        `kept`, the token cache's dicts: the grids encoded here, copied back as float16), nothing waited for:
        what `_finish_batch` needs to make its Readings."""
        torch = self._torch
        cuda = self.model.device.type == "cuda"

        def back(t: Any) -> Any:  # on a GPU: into pinned memory as the device gets to it
            if not cuda:
                return t
            return torch.empty(t.shape, dtype=t.dtype, pin_memory=True).copy_(t, non_blocking=True)

        encoded: dict[str, Any] = self._kept_grids(kept) if kept is not None else {}
        given = set(encoded)
        views = self._batch_views(tier)
        host, flats = None, []  # no glyph view (a checkpoint without heads): the decoder reads the batch
        if views:
            cls, conf, flats = self._cells_queued(chunk, tier, views, encoded, chunk_rows, staged, wait=False)
            counts = torch.stack([n for _, n, _, _ in flats]) if flats else torch.zeros(0, dtype=torch.long)
            host = back(cls), back(conf), back(counts)
        grids = {v: back(encoded[v].to(torch.float16)) for v in set(encoded) - given} if kept is not None else {}
        event = torch.cuda.Event() if cuda else None
        if event is not None:
            event.record()
        return chunk, tier, chunk_rows, views, encoded, host, flats, event, kept, grids

    def _finish_batch(self, queued: tuple) -> tuple[list[int], Any, dict[int, Reading], int]:
        """`_read_batch`'s result for a batch `_queue_batch` queued, once the device has read it (the grids it
        encoded handed back to the token cache's dicts). A batch whose flat cells outnumbered the read-again
        budget is read again, waiting (its token grids are kept)."""
        from ocr_model.page import COLS, ROWS

        chunk, tier, chunk_rows, views, encoded, host, flats, event, kept, grids = queued
        if event is not None:
            event.synchronize()
        _hand_back(kept, grids)
        if host is None:
            return self._batch_readings(chunk, tier, encoded, None, None)
        cls, conf, counts = host
        over = False
        for (grid, _, budget, P), n in zip(flats, counts.tolist()):
            self._flat_share[grid] = max(self._flat_share.get(grid, 0.0), n / max(P, 1))
            over |= n > budget
        if over:
            cells = self._grid_cells(chunk, tier, views, encoded, chunk_rows)
        else:
            B = len(chunk)
            cells = cls.view(B, ROWS, COLS).numpy(), conf.view(B, ROWS, COLS).numpy()
        return self._batch_readings(chunk, tier, encoded, cells, None)

    def _batch_readings(self, chunk: Sequence[Image.Image], tier: str, encoded: dict[str, Any],
                        cells: tuple[np.ndarray, np.ndarray] | None, pool: Any,
                        ) -> tuple[list[int], Any, dict[int, Reading], int]:
        """A batch's Readings from its cells (None: no glyph view; the decoder reads every page): pages with
        too many unknown cells (mode auto) go to the decoder, from the tier's token grids in `encoded`."""
        grid_pages: list[int] = []
        grid: Any = []
        if cells is not None:
            cls, conf = cells  # (b, ROWS, COLS) each
            unknown = self._unknown_share(cls)
            grid_pages = [i for i in range(len(chunk)) if self.mode == "grid" or unknown[i] <= self.max_unknown]
            shapes, probs = cls[grid_pages], conf[grid_pages]  # (g, ROWS, COLS) each
            grid = pool.submit(self._readings, shapes, probs) if pool is not None else self._readings(shapes, probs)
        decoded: dict[int, Reading] = {}
        taken = set(grid_pages)
        rest = [i for i in range(len(chunk)) if i not in taken]
        if rest:  # the decoder reads the tier's own visual tokens
            own = encoded[tier][rest] if tier in encoded else self._encode_grid([chunk[i] for i in rest], tier)
            visual = self.model.layout_visual(own)  # [n,Tv,D]
            gens = self.model.generate(visual, max_new_tokens=self._room(visual.shape[1]))
            for i, g in zip(rest, gens):
                ids = [t for t in g.token_ids if t != self.tokenizer.eos_id]
                conf_g = math.exp(sum(g.logprobs) / len(g.logprobs)) if g.logprobs else 0.0
                decoded[i] = Reading(self.tokenizer.decode(ids), conf_g, bool(g.eos), len(ids))
        return grid_pages, grid, decoded, len(chunk)

    def _kept_grids(self, kept: Sequence[Mapping[str, np.ndarray]]) -> dict[str, Any]:
        """{view: (b, h, w, D) tensor in the model's dtype} for each view that every dict of `kept` has."""
        torch = self._torch
        dtype = self.model.sam_model.patch_embed.proj.weight.dtype
        out = {}
        for view in set.intersection(*(set(d) for d in kept)) if kept else ():
            grids = [np.asarray(d[view]) for d in kept]
            if len({g.shape for g in grids}) != 1 or grids[0].ndim != 3:
                raise ValueError(f"tokens[{view!r}]: every kept grid must be one (h, w, D) array of the same shape; "
                                 f"got {sorted({g.shape for g in grids})}")
            out[view] = self._to_device(torch.from_numpy(np.stack(grids))).to(dtype)  # (b, h, w, D)
        return out

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text))


def _hand_back(kept: Sequence[dict[str, np.ndarray]] | None, grids: Mapping[str, Any]) -> None:
    """kept[i][view] = grids[view][i]: a batch's token grids ((b, h, w, D) float16 host tensors, by view) handed
    back per image to the token cache's dicts."""
    for view, g in grids.items():
        for d, one in zip(kept, g.numpy()):
            d[view] = one


def _gathered(logits: Any, cand: Any) -> Any:
    """float32 logits (P, M) of the classes cand (P, M) from a (P, C) logits table (heads without `features`)."""
    return logits.gather(1, cand).float()


def load(model_dir: str | Path | None = None, **kw: Any) -> OpticalReader:
    """The one loader: the reader of a checkpoint directory (default: the shipped model); keyword arguments
    go to OpticalReader (device, mode, views, max_new_tokens, batch_size, ...)."""
    d = model_dir if model_dir is not None else shipped_model_dir()
    if d is None:
        raise FileNotFoundError("no model is shipped under ocr_model/weights/<name>/; pass a checkpoint directory "
                                "(written by ocr_model.weights.save_pretrained, e.g. a training run's checkpoint)")
    if not Path(d).is_dir():
        raise FileNotFoundError(f"model directory {d} does not exist; pass a checkpoint directory written by "
                                "ocr_model.weights.save_pretrained")
    return OpticalReader.from_pretrained(d, **kw)
