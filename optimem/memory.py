"""Memory: what an agent imports. add turns, recall them later; old turns live on as page images.

    with Memory("agent.optimem") as memory:
        memory.add({"role": "user", "content": "My locker code is 4417."})
        hits = memory.recall("what is the locker code?", k=5)

How a turn flows:
  add      -> embedded (one vector per ~1000-char chunk, at most 8: "<speaker>: <chunk>" after the end of
              the previous turn; optimem/retrieval.py) and stored verbatim in the working memory, durably,
              before add returns
  overflow -> when the working memory passes `working_tokens`, its oldest turns (down to half the budget)
              are rendered to pages (optimem.render), stored as PNG (16 greys) at the policy's top tier, and their
              text is deleted from the store (optimem.archive); their vectors stay
  recall   -> the query is embedded, FAISS finds candidate turns, score = similarity, the next turn's
              similarity and retention (optimem.retrieval.rank, optimem.forgetting), archived winners are read back from their pages by the
              model (optimem.reader) and cut out with the layout map (render.split_decoded). Decoded
              pages are cached in RAM only. Every returned turn is strengthened (spaced repetition).
  consolidate -> applies the forgetting curve: pages whose best turn has faded are re-encoded at a lower
              tier (render.page_at_tier of the archived image), turns below forget_below are forgotten
              (their rows on the page painted white, their vectors deleted). Runs after every page-out
              unless auto_consolidate=False.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from optimem.archive import HNSW_THRESHOLD, Archive, PageRecord, TurnRecord
from optimem.embed import (
    Embedder,
    HybridEmbedder,
    check_vectors,
    default_embedder,
    embedder_by_name,
)
from optimem.errors import (
    EmbedderError,
    InvalidInputError,
    NotFoundError,
    ReadOnlyError,
    StoreClosedError,
)
from optimem.forgetting import (
    ForgettingPolicy,
    retention,
    strengthen,
    tier_for,
    tier_rank,
)
from optimem.reader import PageReader, load_reader
from optimem.retrieval import (
    IDF_SAMPLE,
    Candidate,
    LexicalIdf,
    document_texts,
    document_words,
    query_text,
    rank,
    speaker,
)
from optimem.render import (
    CELL_H,
    MARGIN_Y,
    PAGE_SIZE,
    Layout,
    Turn,
    page_at_tier,
    render_turns,
    split_decoded,
)
from optimem.types import ConsolidationReport, Recollection, Stats, TurnId

__all__ = ["Memory", "DEFAULT_WORKING_TOKENS"]

DEFAULT_WORKING_TOKENS = 4096
_MESSAGE_KEYS = {"role", "content", "timestamp", "metadata", "name"}


# ---------------------------------------------------------------------------------------------------
# The layout map is stored with its page (render's Layout.to_json) without the lists of undrawable and
# escaped characters: those are characters of the turn's text, which must not outlive the page-out.


def _layout_to_json(layout: Layout) -> str:
    return dataclasses.replace(layout, undrawable=(), escaped=()).to_json()


def _layout_from_json(data: str) -> Layout:
    return Layout.from_json(data)


PAGE_LEVELS = 16  # grey levels a stored page keeps (Memory's `page_levels`)
_PNG_BITS = {2: 1, 4: 2, 16: 4}  # levels -> bits per pixel of the palette PNG


def _png(image: Image.Image, levels: int = PAGE_LEVELS) -> bytes:
    """A page image as PNG bytes. levels 2, 4 or 16: grey values rounded to `levels` evenly spaced ones and
    written as a 1/2/4-bit palette PNG (16 levels: 2.3x fewer bytes at 640/512/384 px, 1.4x at 1024, and the
    shipped model reads them as well as 8-bit pages; docs/benchmarks.md "Speed and size"); 256: 8-bit as is."""
    buf = io.BytesIO()
    if levels == 256:
        image.save(buf, format="PNG")
        return buf.getvalue()
    pal = Image.frombytes("P", image.size, np.ascontiguousarray(_grey_index(image, levels)).tobytes())
    step = 255 // (levels - 1)  # 17, 85, 255: the palette greys are exact integers
    pal.putpalette([i * step for i in range(levels) for _ in range(3)])  # index i -> grey (g, g, g)
    pal.save(buf, format="PNG", bits=_PNG_BITS[levels])
    return buf.getvalue()


def _grey_index(image: Image.Image, levels: int) -> np.ndarray:
    """[H,W] uint8 index 0..levels-1 of the nearest of `levels` evenly spaced greys."""
    return np.rint(np.asarray(image.convert("L"), dtype=np.float32) * ((levels - 1) / 255.0)).astype(np.uint8)


def as_stored(image: Image.Image, tier: str, levels: int = PAGE_LEVELS) -> Image.Image:
    """`image` resampled to `tier` with the grey levels Memory would store: the same pixels as writing the PNG
    and reading it back, without the PNG (call it again with a lower tier for a page that faded through
    consolidation)."""
    image = page_at_tier(image, tier)
    if levels == 256:
        return image
    return Image.fromarray(_grey_index(image, levels) * np.uint8(255 // (levels - 1)), mode="L")


def _redact(image: Image.Image, layout: Layout, turn_ids: set[int]) -> Image.Image:
    """Paint the rows (header included) of these turns white, at the image's own scale."""
    img = image.copy()
    scale = img.size[0] / PAGE_SIZE
    draw = ImageDraw.Draw(img)
    for s in layout.segments:
        if s.turn_id not in turn_ids:
            continue
        top = s.header_row if s.header_row is not None else s.first_row
        y0 = math.floor((MARGIN_Y + top * CELL_H) * scale)
        y1 = math.ceil((MARGIN_Y + (s.last_row + 1) * CELL_H) * scale)
        draw.rectangle([0, y0, img.size[0] - 1, min(y1, img.size[1]) - 1], fill=255)
    return img


def _as_turn(item: Any) -> Turn:
    """str | OpenAI-style message dict | Turn -> Turn, or InvalidInputError saying what is wrong."""
    if isinstance(item, Turn):
        if item.id is not None:
            raise InvalidInputError(
                f"Turn.id is assigned by the memory (got id={item.id}); pass the Turn without an id"
            )
        turn = item
    elif isinstance(item, str):
        turn = Turn(role="user", text=item)
    elif isinstance(item, Mapping):
        extra = set(item) - _MESSAGE_KEYS
        if extra or "role" not in item or "content" not in item:
            raise InvalidInputError(
                f"a message dict needs 'role' and 'content' (optional: timestamp, metadata, name); got keys "
                f"{sorted(item)}"
            )
        content = item["content"]
        if isinstance(content, list):  # OpenAI content parts: keep the text parts
            content = "\n".join(
                p.get("text", "") for p in content if isinstance(p, Mapping) and p.get("type") == "text"
            )
        if not isinstance(content, str):
            raise InvalidInputError(
                f"message 'content' must be a str or a list of text parts, got {type(content).__name__}"
            )
        meta = item.get("metadata")
        if item.get("name") is not None:
            meta = {**(meta or {}), "name": item["name"]}
        try:
            turn = Turn(role=item["role"], text=content, timestamp=item.get("timestamp"), metadata=meta)
        except (TypeError, ValueError) as e:
            raise InvalidInputError(f"bad message: {e}") from e
    else:
        raise InvalidInputError(
            f"a turn must be a str, a message dict {{'role': ..., 'content': ...}} or an optimem.Turn; "
            f"got {type(item).__name__}"
        )
    if not turn.role.strip():
        raise InvalidInputError("turn role is empty; use e.g. 'user' or 'assistant'")
    if not turn.text.strip():
        raise InvalidInputError("turn text is empty or only whitespace; there is nothing to remember")
    try:
        turn.text.encode("utf-8")
        turn.role.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidInputError(
            f"turn text contains a lone surrogate ({e.reason} at {e.start}); decode your input with "
            "errors='replace' or 'surrogateescape'-free text"
        ) from None
    if turn.metadata is not None:
        try:
            json.dumps(dict(turn.metadata), allow_nan=False)
        except (TypeError, ValueError) as e:
            raise InvalidInputError(f"turn metadata must be JSON-serialisable: {e}") from None
    return turn


@dataclasses.dataclass
class _Decoded:
    pieces: dict[int, str]  # turn id -> the text of that turn on this page
    confidence: float


class Memory:
    """Long-context optical memory for one namespace of a store. See the module docstring.

    path: the store directory (created if missing); None = a temporary store deleted on close().
    model: the OCR model that reads pages back: None = the model shipped in ocr_model/weights/, or a
        checkpoint directory, a (model, tokenizer) pair, or any optimem.reader.PageReader.
    embedder: retrieval vectors (optimem.embed.Embedder); None = the store's recorded embedder, or the
        default for a new store. A store is tied to the embedder that built it.
    policy: the forgetting curve and tiers (optimem.forgetting.ForgettingPolicy).
    namespace: isolates one agent/user from another inside a store ([A-Za-z0-9_-], 1-64 chars).
    working_tokens: the verbatim working-memory budget, in the model's text tokens.
    read_only: open without the write lock; recall works but does not strengthen memories.
    lock_timeout: seconds to wait for another writer to close the store before StoreLockedError.
    cache_pages: decoded pages kept in RAM (never on disk).
    auto_consolidate: run consolidate() after each page-out.
    reconsolidate: when a recall reads a turn from a faded page (below the top tier), write the page
        again at the top tier from the decoded text, errors included, like human reconsolidation.
    hnsw_threshold: vectors in a namespace above which the index switches from exact to HNSW search.
    page_levels: grey levels kept in stored page images: 16 (default; 4-bit PNG, ~2.3x smaller below
        1024 px, read as well as 8-bit), 4 or 2 (smaller still, but the 512/384 px tiers read worse), 256
        (8-bit, as rendered). Pages already stored keep their format; it applies to pages written from now.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        model: Any = None,
        embedder: Embedder | None = None,
        policy: ForgettingPolicy | None = None,
        namespace: str = "default",
        working_tokens: int = DEFAULT_WORKING_TOKENS,
        read_only: bool = False,
        lock_timeout: float = 10.0,
        cache_pages: int = 64,
        auto_consolidate: bool = True,
        reconsolidate: bool = False,
        hnsw_threshold: int = HNSW_THRESHOLD,
        page_levels: int = PAGE_LEVELS,
    ) -> None:
        if not isinstance(working_tokens, int) or working_tokens < 1:
            raise InvalidInputError(f"working_tokens must be a positive int, got {working_tokens!r}")
        if page_levels not in (2, 4, 16, 256) or isinstance(page_levels, bool):
            raise InvalidInputError(
                f"page_levels must be 2, 4, 16 or 256 (grey levels kept in stored page images), got {page_levels!r}"
            )
        if policy is not None and not isinstance(policy, ForgettingPolicy):
            raise InvalidInputError(f"policy must be a ForgettingPolicy, got {type(policy).__name__}")
        if embedder is not None and not isinstance(embedder, Embedder):
            raise EmbedderError(
                f"embedder {type(embedder).__name__} does not implement optimem.embed.Embedder "
                "(name, dim, embed_documents, embed_queries)"
            )
        self.policy = policy or ForgettingPolicy()
        self.working_tokens = working_tokens
        self.page_levels = page_levels
        self.auto_consolidate, self.reconsolidate = auto_consolidate, reconsolidate
        self._reader = load_reader(model)
        self._tmp: tempfile.TemporaryDirectory | None = None
        if path is None:
            if read_only:
                raise InvalidInputError("read_only=True needs the path of an existing store")
            self._tmp = tempfile.TemporaryDirectory(prefix="optimem-")
            path = Path(self._tmp.name) / "store"
        self._archive = Archive.open(
            path, namespace, read_only=read_only, lock_timeout=lock_timeout, hnsw_threshold=hnsw_threshold
        )
        try:
            self._embedder = self._resolve_embedder(embedder)
        except BaseException:
            self.close()
            raise
        self._lock = threading.RLock()
        e = self._embedder
        self._idf = LexicalIdf(e.dense.dim, e.lexical_dim) if isinstance(e, HybridEmbedder) else None
        self._cache: OrderedDict[tuple[int, str], _Decoded] = OrderedDict()
        self._cache_size = max(0, int(cache_pages))

    def _resolve_embedder(self, embedder: Embedder | None) -> Embedder:
        try:
            name, dim = self._archive.namespace_info()
        except NotFoundError:
            name = dim = None
        if embedder is None:
            embedder = embedder_by_name(name) if name is not None else default_embedder()
        if name is None and self._archive.read_only:
            raise NotFoundError(f"namespace {self._archive.namespace!r} does not exist in {self._archive.path}")
        if not self._archive.read_only:
            self._archive.ensure_namespace(embedder.name, embedder.dim)
        elif (name, dim) != (embedder.name, embedder.dim):
            raise EmbedderError(
                f"namespace {self._archive.namespace!r} was built with embedder {name!r} ({dim}-d), not "
                f"{embedder.name!r}; open it with the same embedder"
            )
        return embedder

    # ----- lifecycle

    @property
    def path(self) -> Path:
        """The store directory."""
        return self._archive.path

    @property
    def namespace(self) -> str:
        return self._archive.namespace

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    @property
    def reader(self) -> PageReader:
        return self._reader

    def close(self) -> None:
        """Write the index, checkpoint the store, release the lock (and delete a temporary store)."""
        self._archive.close()
        if getattr(self, "_cache", None) is not None:
            self._cache.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __repr__(self) -> str:
        state = "closed" if self._archive.closed else ("read-only" if self._archive.read_only else "open")
        return f"Memory({str(self.path)!r}, namespace={self.namespace!r}, {state})"

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._archive.closed:
            raise StoreClosedError("this Memory is closed; create a new Memory(path) to use the store again")

    def _check_writable(self) -> None:
        self._check_open()
        if self._archive.read_only:
            raise ReadOnlyError("this Memory was opened with read_only=True; open it without to change it")

    # ----- adding

    def add(self, turn: str | Mapping[str, Any] | Turn, *, pin: bool = False) -> TurnId:
        """Remember one turn (a str is a user turn). Durable when it returns. Returns its id."""
        return self.add_many([turn], pin=pin)[0]

    def add_many(self, turns: Iterable[str | Mapping[str, Any] | Turn], *, pin: bool = False) -> list[TurnId]:
        """Remember several turns in order, in one transaction: all of them or (on error) none."""
        if isinstance(turns, (str, Mapping, Turn)):
            raise InvalidInputError("add_many takes a list of turns; for one turn use add(turn)")
        with self._lock:
            self._check_writable()
            parsed = [_as_turn(t) for t in turns]
            if not parsed:
                return []
            now = time.time()
            rows, chunk_texts, words, counts = [], [], [], []
            previous = self._previous_turn()
            for t in parsed:
                ts = float(t.timestamp) if t.timestamp is not None else now
                meta = json.dumps(dict(t.metadata), sort_keys=True, ensure_ascii=False) if t.metadata else None
                rows.append((t.role, t.text, ts, meta, self._reader.count_tokens(t.text)))
                who = speaker(t.role, t.metadata)  # what a turn is remembered by: optimem/retrieval.py
                docs = document_texts(t.text, who, previous)
                chunk_texts += docs
                words += document_words(t.text, who, previous)
                counts.append(len(docs))
                previous = (who, t.text)
            if isinstance(self._embedder, HybridEmbedder):  # every word of a long turn in the lexical halves
                raw = self._embedder.embed_documents(chunk_texts, words)
            else:
                raw = self._embedder.embed_documents(chunk_texts)
            vecs = check_vectors(raw, len(chunk_texts), self._embedder)
            per_turn = np.split(vecs, np.cumsum(counts)[:-1])  # (chunks_i, dim) per turn
            ids = self._archive.add_turns(
                rows, per_turn, strength=self.policy.initial_strength, pinned=[pin] * len(parsed)
            )
            if self._idf is not None:
                self._idf.added_since += len(vecs)
            self._page_out_overflow()
            return ids

    def _previous_turn(self) -> tuple[str, str] | None:
        """(speaker, text) of the newest turn of the namespace if it is still verbatim, else None."""
        working = self._archive.working_turns()
        if not working or working[-1].seq != self._archive.clock():
            return None
        last = working[-1]
        return speaker(last.role, last.metadata), last.text or ""

    def _page_out_overflow(self) -> None:
        """Archive the oldest verbatim turns while the working memory is over budget (down to half of it)."""
        working = self._archive.working_turns()
        total = sum(t.n_tokens for t in working)
        if total <= self.working_tokens:
            return
        out: list[TurnRecord] = []
        for t in working:
            if total <= self.working_tokens // 2:
                break
            out.append(t)
            total -= t.n_tokens
        turns = [Turn(role=t.role, text=t.text or "", timestamp=t.timestamp, id=t.id) for t in out]
        pages = render_turns(turns, first_turn_number=out[0].seq)
        tier = self.policy.top_tier
        payload = []
        for page in pages:
            ids = list(dict.fromkeys(s.turn_id for s in page.layout.segments))
            payload.append((_png(page_at_tier(page.image, tier), self.page_levels), _layout_to_json(page.layout), ids))
        del pages, turns, out  # the text leaves RAM with them (as far as Python lets us)
        self._archive.page_out(payload, tier=tier)
        if self.auto_consolidate:
            self.consolidate()

    # ----- recall

    def _now(self, now: float | None) -> tuple[int, float]:
        """(turns clock, seconds clock); `now` overrides the one the policy uses."""
        seq, t = self._archive.clock(), time.time()
        if now is not None:
            if self.policy.clock == "turns":
                seq = int(now)
            else:
                t = float(now)
        return seq, t

    def _retention(self, rec: TurnRecord, seq: int, t: float) -> float:
        if rec.pinned:
            return 1.0
        age = (seq - rec.last_seq) if self.policy.clock == "turns" else (t - rec.last_time)
        return retention(age, rec.strength)

    def recall(
        self,
        query: str,
        *,
        k: int = 5,
        decode: bool = True,
        reinforce: bool = True,
        now: float | None = None,
    ) -> list[Recollection]:
        """The k turns that best match the query, best first (see Recollection).

        decode=False skips reading pages (text=None for archived turns: fast). reinforce=False does not
        count this as a recall (no strength update, no event). now: the policy clock's current value
        (turn count or epoch seconds) instead of the real one.
        """
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("recall needs a non-empty query string")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidInputError(f"k must be a positive int, got {k!r}")
        with self._lock:
            self._check_open()
            qv = check_vectors(self._embedder.embed_queries([query_text(query)]), 1, self._embedder)[0]
            if self._idf is not None:  # rare words of the query weigh more (optimem/retrieval.py)
                if self._idf.stale():
                    self._idf.fit(*self._archive.sample_vectors(IDF_SAMPLE))
                qv = self._idf.weigh(qv)
            cands = self._archive.search(qv, max(4 * k, 32))
            recs = self._archive.turns([tid for tid, _ in cands])
            seq, t = self._now(now)
            found = [
                Candidate(tid, sim, recs[tid].seq, self._retention(recs[tid], seq, t))
                for tid, sim in cands
                if tid in recs and recs[tid].state != "forgotten"
            ]
            ranked = rank(found, self.policy)  # optimem/retrieval.py
            scored = [(s, c.similarity, c.retention, recs[c.turn_id]) for s, c in ranked]
            top = scored[:k]
            texts = self._read_turns([rec for *_, rec in top], decode)
            out = [
                self._recollection(rec, texts[rec.id], score=s, similarity=sim, r=r, seq=seq, t=t)
                for s, sim, r, rec in top
            ]
            if reinforce and not self._archive.read_only:
                self._archive.record_recalls(
                    [
                        (rec.id, r, rec.strength if rec.pinned else strengthen(rec.strength, r, self.policy))
                        for _, _, r, rec in top
                    ],
                    now=t,
                    seq=seq,
                )
                if self.reconsolidate and decode:
                    self._reconsolidate([rec for *_, rec in top])
            return out

    def _recollection(self, rec, text_conf, *, score, similarity, r, seq, t) -> Recollection:
        text, conf, tier = text_conf
        return Recollection(
            turn_id=rec.id,
            role=rec.role,
            text=text,
            tier=tier,
            confidence=conf,
            score=score,
            similarity=similarity,
            retention=r,
            strength=rec.strength,
            age_turns=max(seq - rec.seq, 0),
            age_seconds=max(t - rec.timestamp, 0.0),
            timestamp=rec.timestamp,
            pinned=rec.pinned,
            metadata=rec.metadata,
        )

    def _read_turns(self, recs: Sequence[TurnRecord], decode: bool) -> dict[int, tuple[str | None, float | None, str]]:
        """turn id -> (text, confidence, tier): verbatim text, or pages read by the model (cached in RAM)."""
        out: dict[int, tuple[str | None, float | None, str]] = {}
        pages_of: dict[int, list[PageRecord]] = {}
        for rec in recs:
            if rec.state == "verbatim":
                out[rec.id] = (rec.text, 1.0, "verbatim")
            else:
                pages_of[rec.id] = self._archive.pages_of(rec.id)
        if not pages_of:
            return out
        fresh: dict[tuple[int, str], _Decoded] = {}  # pages read in this call (the cache may be tiny or off)
        if decode:
            todo: dict[str, list[PageRecord]] = {}
            for pages in pages_of.values():
                for p in pages:
                    if (p.id, p.file) not in self._cache and p not in todo.setdefault(p.tier, []):
                        todo[p.tier].append(p)
            for tier, pages in todo.items():
                images = [Image.open(io.BytesIO(self._archive.read_page(p))).convert("L") for p in pages]
                for p, reading in zip(pages, self._reader.read(images, tier)):
                    fresh[(p.id, p.file)] = _Decoded(split_decoded(reading.text, _layout_from_json(p.layout)),
                                                     reading.confidence)
        for tid, pages in pages_of.items():
            tier = min((p.tier for p in pages), key=tier_rank) if pages else "gist"
            if not decode:
                out[tid] = (None, None, tier)
                continue
            decoded = [fresh[k] if k in fresh else self._cache_get(k) for k in ((p.id, p.file) for p in pages)]
            text = "".join(d.pieces.get(tid, "") for d in decoded)
            conf = float(np.mean([d.confidence for d in decoded])) if decoded else 0.0
            out[tid] = (text, conf, tier)
        for key, value in fresh.items():
            self._cache_put(key, value)
        return out

    def _cache_put(self, key: tuple[int, str], value: _Decoded) -> None:
        if self._cache_size == 0:
            return
        self._cache[key] = value
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _cache_get(self, key: tuple[int, str]) -> _Decoded:
        self._cache.move_to_end(key)
        return self._cache[key]

    def get(self, turn_id: TurnId, *, decode: bool = True, now: float | None = None) -> Recollection:
        """One turn by id (NotFoundError if it is not in this namespace or was forgotten). Not a recall:
        it does not strengthen the memory."""
        with self._lock:
            self._check_open()
            if isinstance(turn_id, bool) or not isinstance(turn_id, (int, np.integer)):
                raise InvalidInputError(f"turn_id must be an int, got {type(turn_id).__name__}")
            rec = self._archive.get_turn(int(turn_id))
            seq, t = self._now(now)
            text = self._read_turns([rec], decode)[rec.id]
            return self._recollection(
                rec, text, score=None, similarity=None, r=self._retention(rec, seq, t), seq=seq, t=t
            )

    def recent(self) -> list[Recollection]:
        """The verbatim turns of the working memory, oldest first."""
        with self._lock:
            self._check_open()
            seq, t = self._now(None)
            return [
                self._recollection(
                    rec,
                    (rec.text, 1.0, "verbatim"),
                    score=None,
                    similarity=None,
                    r=self._retention(rec, seq, t),
                    seq=seq,
                    t=t,
                )
                for rec in self._archive.working_turns()
            ]

    def context(self, max_tokens: int = 2000, *, query: str | None = None, k: int = 5) -> str:
        """A prompt block: recalled memories (with age, tier and confidence) then the most recent turns
        verbatim, within max_tokens (counted with the model's tokenizer). query defaults to the last
        verbatim user turn. Recalling here strengthens the memories like recall() does."""
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise InvalidInputError(f"max_tokens must be a positive int, got {max_tokens!r}")
        with self._lock:
            self._check_open()
            recent = self._archive.working_turns()
            if query is None:
                users = [r for r in recent if r.role == "user"]
                query = (users[-1].text if users else (recent[-1].text if recent else None)) or None
            recent_ids = {r.id for r in recent}
            memories = [] if query is None else [h for h in self.recall(query, k=k) if h.turn_id not in recent_ids]
            budget = max_tokens
            mem_lines: list[str] = []
            for h in memories:
                conf = f", confidence {h.confidence:.2f}" if h.confidence is not None else ""
                line = f"- [#{h.turn_id} {h.role}, {_age(h.age_seconds)} ago, {h.tier}{conf}] {h.text or ''}".rstrip()
                cost = self._reader.count_tokens(line)
                if cost > budget // 2:  # memories may use at most half the budget
                    continue
                mem_lines.append(line)
                budget -= cost
            recent_lines: list[str] = []
            for rec in reversed(recent):
                line = f"[{rec.role} #{rec.id}] {rec.text}"
                cost = self._reader.count_tokens(line)
                if cost > budget:
                    break
                recent_lines.append(line)
                budget -= cost
            parts = []
            if mem_lines:
                parts.append("## Recalled memories\n" + "\n".join(mem_lines))
            if recent_lines:
                parts.append("## Recent conversation\n" + "\n".join(reversed(recent_lines)))
            return "\n\n".join(parts)

    # ----- changing what is kept

    def pin(self, turn_id: TurnId) -> None:
        """Keep a turn at full fidelity: it never decays (R = 1) and is never forgotten by the curve."""
        with self._lock:
            self._check_writable()
            self._archive.set_pinned(int(turn_id), True)

    def unpin(self, turn_id: TurnId) -> None:
        """Let a pinned turn decay again from now on."""
        with self._lock:
            self._check_writable()
            self._archive.set_pinned(int(turn_id), False)

    def forget(self, turn_ids: TurnId | Iterable[TurnId]) -> int:
        """Delete turns for good: text, vectors, and their rows on the page images (painted white).
        Unknown ids (or other namespaces') raise NotFoundError before anything changes. Returns the count."""
        ids = [turn_ids] if isinstance(turn_ids, (int, np.integer)) else list(turn_ids)
        if any(isinstance(i, bool) or not isinstance(i, (int, np.integer)) for i in ids):
            raise InvalidInputError("forget takes a turn id or an iterable of turn ids (ints)")
        with self._lock:
            self._check_writable()
            ids = [int(i) for i in ids]
            recs = self._archive.turns(ids)
            missing = [i for i in ids if i not in recs or recs[i].state == "forgotten"]
            if missing:
                raise NotFoundError(f"no turns {missing} in namespace {self.namespace!r}; nothing was forgotten")
            self._forget(set(ids), reason="explicit")
            return len(set(ids))

    def _forget(self, ids: set[int], *, reason: str) -> None:
        """Redact the turns' rows on every page that still shows other turns, then delete the turns."""
        pages = {p.id: p for tid in ids for p in self._archive.pages_of(tid)}
        for page in pages.values():
            hit = ids & set(page.turn_ids)
            if hit and set(page.turn_ids) - ids:  # pages left with no live turn are deleted instead
                image = Image.open(io.BytesIO(self._archive.read_page(page))).convert("L")
                redacted = _redact(image, _layout_from_json(page.layout), hit)
                self._archive.replace_page(page.id, _png(redacted, self.page_levels), tier=page.tier, kind="redact", turns=sorted(hit))
        self._archive.forget_turns(sorted(ids), reason=reason)

    def consolidate(self, now: float | None = None) -> ConsolidationReport:
        """Apply the forgetting curve to the archive (see the module docstring). now: the policy clock's
        current value instead of the real one."""
        with self._lock:
            self._check_writable()
            seq, t = self._now(now)
            archived = {r.id: r for r in self._archive.live_turns("archived")}
            tiers = {
                tid: tier_for(self._retention(r, seq, t), self.policy, pinned=r.pinned) for tid, r in archived.items()
            }
            doomed = {tid for tid, tier in tiers.items() if tier == "forgotten"}
            pages_before = len(self._archive.pages())
            if doomed:
                self._forget(doomed, reason="curve")
            moved: dict[str, int] = {}
            for page in self._archive.pages():
                live = [tiers[tid] for tid in page.turn_ids if tid in tiers]
                if not live:
                    continue
                target = min(live, key=tier_rank)
                if tier_rank(target) <= tier_rank(page.tier):
                    continue  # pages only fade here; only reconsolidation sharpens them
                image = Image.open(io.BytesIO(self._archive.read_page(page))).convert("L")
                self._archive.replace_page(page.id, _png(page_at_tier(image, target), self.page_levels), tier=target)
                key = f"{page.tier}->{target}"
                moved[key] = moved.get(key, 0) + 1
            self._archive.flush()
            return ConsolidationReport(
                pages_downgraded=moved,
                turns_forgotten=tuple(sorted(doomed)),
                pages_deleted=pages_before - len(self._archive.pages()),
            )

    def _reconsolidate(self, recs: Sequence[TurnRecord]) -> None:
        """Rewrite faded pages that were just read at the top tier, from their decoded text."""
        top = self.policy.top_tier
        for rec in recs:
            if rec.state != "archived":
                continue
            for page in self._archive.pages_of(rec.id):
                if tier_rank(page.tier) <= tier_rank(top) or (page.id, page.file) not in self._cache:
                    continue
                layout = _layout_from_json(page.layout)
                if any(s.continued or s.continues for s in layout.segments):
                    continue  # a turn split over pages cannot be redrawn from one page alone
                decoded = self._cache[(page.id, page.file)].pieces
                others = self._archive.turns(list(page.turn_ids))
                turns = [
                    Turn(role=others[tid].role, text=decoded.get(tid, ""), timestamp=others[tid].timestamp, id=tid)
                    for tid in page.turn_ids
                ]
                first = min(others[tid].seq for tid in page.turn_ids)
                redrawn = render_turns(turns, first_turn_number=first)
                if len(redrawn) != 1:
                    continue  # the reading grew past one page; keep the faded page rather than split it
                self._archive.replace_page(
                    page.id,
                    _png(page_at_tier(redrawn[0].image, top), self.page_levels),
                    tier=top,
                    kind="reconsolidate",
                    layout=_layout_to_json(redrawn[0].layout),
                )
                self._cache.pop((page.id, page.file), None)

    # ----- introspection

    def stats(self) -> Stats:
        """Counts, tiers, visual vs text tokens and bytes on disk for this namespace."""
        with self._lock:
            self._check_open()
            s = self._archive.stats()
            return Stats(
                namespace=self.namespace,
                turns_verbatim=s["turns"]["verbatim"],
                turns_archived=s["turns"]["archived"],
                turns_forgotten=s["turns"]["forgotten"],
                working_tokens=s["working_tokens"],
                pages=s["pages"],
                visual_tokens=s["visual_tokens"],
                archived_text_tokens=s["archived_text_tokens"],
                vectors=s["vectors"],
                index_kind=self._archive.index_kind,
                bytes_on_disk=s["bytes_on_disk"],
            )

    def events(self, *, turn_id: TurnId | None = None, limit: int | None = None) -> list:
        """The audit log (optimem.archive.Event): every add, page-out, recall, tier change, pin, forget."""
        with self._lock:
            self._check_open()
            return self._archive.events(turn_id=turn_id, limit=limit)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"
