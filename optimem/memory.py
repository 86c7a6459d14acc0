"""Memory: what an agent imports. add turns, recall them later; old turns live on as page images.

    with Memory("agent.optimem") as memory:
        memory.add({"role": "user", "content": "My locker code is 4417."})
        hits = memory.recall("what is the locker code?", k=5)

How a turn flows:
  add      -> embedded (one vector per ~1000-char chunk, at most 8: "<speaker>: <chunk>" after the end of
              the previous turn; optimem/retrieval.py) and stored verbatim in the working memory, durably,
              before add returns
  overflow -> when the working memory passes `working_tokens`, its oldest turns (down to half the budget)
              are rendered to pages (ocr_model.page), read back and verified (optimem.pageout), stored as PNG (16 greys) at the policy's top tier, and their
              text is deleted from the store (optimem.store); their vectors stay
  recall   -> the query is embedded, FAISS finds candidate turns, score = similarity, the next turn's
              similarity and retention (optimem.retrieval.rank, optimem.forgetting), archived winners are read back from their pages by the
              model (optimem.reader) and cut out with the layout map (render.split_decoded). Decoded
              pages are cached in RAM only. Every returned turn is strengthened (spaced repetition).
  consolidate -> applies the forgetting curve: pages whose best turn has faded are re-encoded at a lower
              tier (render.page_at_tier of the archived image), turns below forget_below are forgotten
              (their rows on the page painted white, their vectors deleted). Runs after every page-out
              unless auto_consolidate=False.

Messages are OpenAI chat messages or Turns (optimem.messages); the OCR model loads on the first page read
(optimem.lazy_reader); context_images hands recalled pages to models that read images (optimem.multimodal).
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
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from optimem.store import HNSW_THRESHOLD, Archive, NewPage, NewTurn, PageRecord, RecallUpdate, TurnRecord
from optimem.store.check import CheckReport, check_store
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
    PageDamagedError,
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
from optimem.lazy_reader import lazy_reader
from optimem.messages import message_to_turn
from optimem.multimodal import ImageContext, image_part, image_tokens
from optimem.multimodal import check as check_provider
from optimem.pageout import TurnCheck, char_precision, draw_verified, read_turn_texts, unescape_for
from optimem.reader import PageReader, Reading
from ocr_model.page import COLS, ROWS, TIERS, Layout, Turn, cells_used, page_at_tier, render_turns
from ocr_model.page.codec import LEVELS, PAGE_LEVELS, as_stored, png_bytes, redact
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
from optimem.types import ConsolidationReport, Recollection, Stats, TurnId

__all__ = ["Memory", "DEFAULT_WORKING_TOKENS"]

DEFAULT_WORKING_TOKENS = 4096
MAX_ROLE_CHARS = 64
MAX_TURN_ID = 2**63 - 1  # SQLite's INTEGER
MAX_K = 10_000
CONSOLIDATE_BATCH = 64  # pages faded (and, with verification, read) together by consolidate()
MAX_CLOCK = 2**53  # the turns clock, and seconds: far past any real value, still exact in a float


def _turn_id(value: Any) -> int:
    """A turn id as the caller passed it, or InvalidInputError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 < int(value) <= MAX_TURN_ID:
        raise InvalidInputError(f"a turn id is an int from 1 to 2**63-1 (as add returned it), got {value!r}")
    return int(value)


def _check_json_keys(value: Any, where: str = "metadata") -> None:
    """JSON objects need str keys; json.dumps would silently turn 1 into "1" or fail on mixed keys."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInputError(f"turn {where} keys must be str, got {key!r} ({type(key).__name__})")
            _check_json_keys(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json_keys(item, f"{where}[{i}]")


# ---------------------------------------------------------------------------------------------------
# The layout map is stored with its page (render's Layout.to_json) without the lists of undrawable and
# escaped characters: those are characters of the turn's text, which must not outlive the page-out.


def _layout_to_json(layout: Layout) -> str:
    return dataclasses.replace(layout, undrawable=(), escaped=()).to_json()


def _layout_from_json(data: str) -> Layout:
    return Layout.from_json(data)


def _page_json(layout: Layout, checks: Mapping[int, TurnCheck]) -> str:
    """What the store keeps beside a page image: its layout map and the read-back check of each of its turns
    (numbers only, see optimem.pageout.TurnCheck)."""
    d = json.loads(_layout_to_json(layout))
    d["checks"] = {str(s.turn_id): checks[s.turn_id].to_list() for s in layout.segments if s.turn_id in checks}
    return json.dumps(d, separators=(",", ":"))


def _page_checks(data: str) -> dict[int, TurnCheck]:
    d = json.loads(data)
    return {int(k): TurnCheck.from_list(v) for k, v in (d.get("checks") or {}).items()}


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
    elif isinstance(item, Mapping):  # an OpenAI chat message (optimem.messages)
        turn = message_to_turn(item)
    else:
        raise InvalidInputError(
            f"a turn must be a str, a message dict {{'role': ..., 'content': ...}} or an optimem.Turn; "
            f"got {type(item).__name__}"
        )
    if not turn.role.strip():
        raise InvalidInputError("turn role is empty; use e.g. 'user' or 'assistant'")
    if len(turn.role) > MAX_ROLE_CHARS or not turn.role.isprintable():
        raise InvalidInputError(
            f"turn role must be one line of at most {MAX_ROLE_CHARS} printable characters (it is copied into "
            f"page headers and prompts), got {turn.role[:80]!r}"
        )
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
        _check_json_keys(turn.metadata)
        try:
            json.dumps(dict(turn.metadata), allow_nan=False)
        except (TypeError, ValueError) as e:
            raise InvalidInputError(f"turn metadata must be JSON-serialisable: {e}") from None
    return turn


@dataclasses.dataclass
class _Decoded:
    pieces: dict[int, str]  # turn id -> the text of that turn on this page
    confidence: float  # the page's
    turn_confidence: dict[int, float]  # turn id -> the reader's confidence over that turn's own cells
    turns: frozenset[int] | None = None  # the turns read (only their rows were); None: the whole page

    def has(self, turn_ids) -> bool:
        return self.turns is None or set(turn_ids) <= self.turns


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
    verify: read every page back with `model` right after it is written (and after each fading step) and
        keep a turn's text only in a drawing that reads back exactly (optimem.pageout); a turn none does
        stays verbatim. Every Recollection says how its turn read back (verified, verified_precision).
    keep_recent: the newest turns that always stay verbatim, however large (a huge turn does not push
        the rest of the conversation out of working memory).
    device: where a model loaded from a directory (or the shipped one) runs: "cpu" (default), "cuda",
        "cuda:1", ... (a reader or (model, tokenizer) passed in stays where it is).
    token_cache: keep the visual-token grids the model encodes from each page on disk, beside the page
        (<store>/tokens/; optimem.store.tokens), so a later read of the page runs only the glyph heads, not
        the encoder. ~322 KB per page (float16, three views), deleted with the page; a cache keyed by the
        page's SHA-256 and the model's weights, never the record. False: every read encodes the page.
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
        verify: bool = True,
        keep_recent: int = 4,
        device: str = "cpu",
        token_cache: bool = True,
    ) -> None:
        if not isinstance(working_tokens, int) or working_tokens < 1:
            raise InvalidInputError(f"working_tokens must be a positive int, got {working_tokens!r}")
        if page_levels not in LEVELS or isinstance(page_levels, bool):
            raise InvalidInputError(
                f"page_levels must be 2, 4, 16 or 256 (grey levels kept in stored page images), got {page_levels!r}"
            )
        if isinstance(cache_pages, bool) or not isinstance(cache_pages, int) or cache_pages < 0:
            raise InvalidInputError(f"cache_pages must be an int >= 0 (decoded pages kept in RAM), got {cache_pages!r}")
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
        if not isinstance(keep_recent, int) or isinstance(keep_recent, bool) or keep_recent < 0:
            raise InvalidInputError(f"keep_recent must be an int >= 0 (newest turns never paged out), got {keep_recent!r}")
        self.verify, self.keep_recent = bool(verify), keep_recent
        self._unarchivable: set[int] = set()
        self.auto_consolidate, self.reconsolidate = auto_consolidate, reconsolidate
        self.token_cache = bool(token_cache)
        if not isinstance(device, str) or not device.split(":")[0] in ("cpu", "cuda", "mps"):
            raise InvalidInputError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")
        self._reader = lazy_reader(model, device=device)  # the model itself loads on the first page read
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
            info = self._archive.namespace_info()
            name, dim = info.embedder, info.dim
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
        if isinstance(turns, (str, Mapping, Turn)) or not isinstance(turns, Iterable):
            raise InvalidInputError(f"add_many takes a list of turns, got {type(turns).__name__}; for one turn use add(turn)")
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
                rows.append(NewTurn(t.role, t.text, ts, meta, self._reader.count_tokens(t.text)))
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
            try:  # committed: from here on the caller must get its ids, whatever happens to the page-out
                self._page_out_overflow()
            except Exception as e:  # noqa: BLE001 - reported, and retried by the next add
                warnings.warn(
                    f"optimem: turns {ids} were stored, but paging old turns out failed ({type(e).__name__}: {e}); "
                    "they stay in working memory and the next add retries",
                    RuntimeWarning,
                    stacklevel=2,
                )
            return ids

    def _previous_turn(self) -> tuple[str, str] | None:
        """(speaker, text) of the newest turn of the namespace if it is still verbatim, else None."""
        working = self._archive.working_turns()
        if not working or working[-1].seq != self._archive.clock():
            return None
        last = working[-1]
        return speaker(last.role, last.metadata), last.text or ""

    def _page_out_overflow(self) -> None:
        """Archive the oldest verbatim turns while the working memory is over budget (down to half of it),
        never the newest `keep_recent`; only whole pages where that keeps within budget; verified."""
        working = self._archive.working_turns()
        total = sum(t.n_tokens for t in working)
        if total <= self.working_tokens:
            return
        movable = working[: max(0, len(working) - self.keep_recent)]
        out: list[TurnRecord] = []
        for t in movable:
            if total <= self.working_tokens // 2:
                break
            if t.id in self._unarchivable:
                continue
            out.append(t)
            total -= t.n_tokens
        if not out:
            return
        turns = [Turn(role=t.role, text=t.text or "", timestamp=t.timestamp, id=t.id) for t in out]
        tokens = {t.id: t.n_tokens for t in out}
        # a part-filled last page costs as many visual tokens as a full one: leave its turns in working
        # memory for the next page-out, when that keeps the working memory within budget
        plain = render_turns(turns, first_turn_number=out[0].seq)
        if len(plain) > 1 and cells_used(plain[-1]) < 0.9 * COLS * ROWS:
            earlier = {s.turn_id for p in plain[:-1] for s in p.layout.segments}
            last_only = {s.turn_id for s in plain[-1].layout.segments} - earlier
            if total + sum(tokens[i] for i in last_only) <= self.working_tokens:
                turns = [t for t in turns if t.id not in last_only]
        del plain
        tier = self.policy.top_tier
        fp = self._token_fingerprint() if self.verify else None
        drawn = draw_verified(turns, self._reader, first_turn_number=out[0].seq, tier=tier, levels=self.page_levels,
                              verify=self.verify, render=render_turns, keep_tokens=fp is not None)
        payload = []
        for page in drawn.pages:
            ids = list(dict.fromkeys(s.turn_id for s in page.layout.segments))
            payload.append(NewPage(png_bytes(page_at_tier(page.image, tier), self.page_levels),
                                   _page_json(page.layout, drawn.checks), tuple(ids)))
        del turns, out, drawn.pages  # the text leaves RAM with them (as far as Python lets us)
        if payload:
            ids = self._archive.page_out(payload, tier=tier)
            if fp is not None:  # the grids verification read each page from: its first recall needs no encoder
                for rec, grids in zip(self._archive.pages_by_id(ids), drawn.tokens):
                    self._archive.keep_tokens(rec, fp, grids)
        # turns no drawing reads back exactly stay verbatim (and are not tried again in this session)
        self._unarchivable.update(drawn.verbatim)
        if self.auto_consolidate:
            self.consolidate()

    # ----- recall

    def _now(self, now: float | None) -> tuple[int, float]:
        """(turns clock, seconds clock); `now` overrides the one the policy uses."""
        seq, t = self._archive.clock(), time.time()
        if now is not None:
            if isinstance(now, bool) or not isinstance(now, (int, float, np.integer, np.floating)) or not (
                math.isfinite(now) and 0 <= now <= MAX_CLOCK
            ):
                raise InvalidInputError(
                    f"now must be a finite clock value from 0 to 2**53 (turns added, or epoch seconds), got {now!r}"
                )
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
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise InvalidInputError(f"k must be an int from 1 to {MAX_K}, got {k!r}")
        with self._lock:
            self._check_open()
            self._now(now)  # validate before any work
            qv = check_vectors(self._embedder.embed_queries([query_text(query)]), 1, self._embedder)[0]
            if self._idf is not None:  # rare words of the query weigh more (optimem/retrieval.py)
                if self._idf.stale():
                    self._idf.fit(*self._archive.sample_vectors(IDF_SAMPLE))
                qv = self._idf.weigh(qv)
            cands = self._archive.search(qv, max(4 * k, 32))
            recs = self._archive.turns([c.turn_id for c in cands])
            seq, t = self._now(now)
            found = [
                Candidate(c.turn_id, c.similarity, recs[c.turn_id].seq, self._retention(recs[c.turn_id], seq, t))
                for c in cands
                if c.turn_id in recs and recs[c.turn_id].state != "forgotten"
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
                        RecallUpdate(rec.id, r, rec.strength if rec.pinned else strengthen(rec.strength, r, self.policy))
                        for _, _, r, rec in top
                    ],
                    now=t,
                    seq=seq,
                )
                if self.reconsolidate and decode:
                    self._reconsolidate([rec for *_, rec in top])
            return out

    def _recollection(self, rec, text_conf, *, score, similarity, r, seq, t) -> Recollection:
        text, conf, tier, check, damaged = text_conf
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
            verified=None if check is None else check.exact,
            verified_precision=None if check is None else check.precision,
            verified_tier=None if check is None or check.exact is None else check.tier,
            damaged=damaged is not None,
        )


    def _page_image(self, page: PageRecord) -> Image.Image:
        """A page's image, checked: PageDamagedError (for this page only) if its file is missing, altered,
        outside the store, not a decodable image or not the size of its tier."""
        data = self._archive.read_page(page)
        try:
            image = Image.open(io.BytesIO(data))
            image.load()
            image = image.convert("L")
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise PageDamagedError(
                f"page {page.id} ({page.file}), showing turns {list(page.turn_ids)}, is not a readable image ({e}); "
                "restore it from a backup or forget those turns", page_id=page.id, turn_ids=page.turn_ids
            ) from None
        if image.size != (TIERS[page.tier].side,) * 2:
            raise PageDamagedError(
                f"page {page.id} ({page.file}) is {image.size[0]}x{image.size[1]} px, not the {TIERS[page.tier].side} px "
                f"of its tier {page.tier!r}; restore it from a backup or forget turns {list(page.turn_ids)}",
                page_id=page.id, turn_ids=page.turn_ids)
        return image

    def _read_turns(self, recs: Sequence[TurnRecord], decode: bool) -> dict[int, tuple]:
        """turn id -> (text, confidence, tier, check, damage): verbatim text, or pages read by the model (cached
        in RAM); check is the turn's last read-back check (optimem.pageout.TurnCheck), None while verbatim. A
        turn with a damaged page gets no text and the page's PageDamagedError; others are unaffected."""
        out: dict[int, tuple] = {}
        pages_of: dict[int, list[PageRecord]] = {}
        for rec in recs:
            if rec.state == "verbatim":
                out[rec.id] = (rec.text, 1.0, "verbatim", None, None)
            else:
                pages_of[rec.id] = self._archive.pages_of(rec.id)
        if not pages_of:
            return out
        fresh: dict[tuple[int, str], _Decoded] = {}  # pages read in this call (the cache may be tiny or off)
        damaged: dict[int, PageDamagedError] = {}  # page id -> what is wrong with it
        if decode:
            wanted: dict[tuple[int, str], set[int]] = {}  # page -> the turns asked for on it
            todo: dict[str, list[PageRecord]] = {}
            for tid, pages in pages_of.items():
                for p in pages:
                    key = (p.id, p.file)
                    wanted.setdefault(key, set()).add(tid)
                    if p not in todo.setdefault(p.tier, []):
                        todo[p.tier].append(p)
            # a reader that can read some rows reads only the rows of the turns asked for; reconsolidation redraws
            # whole pages from their reading, so with it on pages are read whole
            rows_ok = bool(getattr(self._reader, "reads_rows", False)) and not self.reconsolidate
            spans_ok = rows_ok and bool(getattr(self._reader, "reads_spans", False))  # only the turns' own cells
            for tier, pages in todo.items():
                pages = [p for p in pages if not ((c := self._cache.get((p.id, p.file))) and c.has(wanted[(p.id, p.file)]))]
                readable, images, layouts, rows = [], [], [], []
                for p in pages:
                    try:
                        images.append(self._page_image(p))
                        readable.append(p)
                        layouts.append(_layout_from_json(p.layout))
                    except PageDamagedError as e:
                        damaged[p.id] = e
                        continue
                    on_page = {s.turn_id for s in layouts[-1].segments}
                    ask = wanted[(p.id, p.file)]
                    want = ask & on_page  # all turns: the rows (cells) with text
                    if not rows_ok:
                        rows.append(None)
                    else:
                        rows.append(layouts[-1].spans_of(want) if spans_ok else layouts[-1].rows_of(want))
                if not images:
                    continue
                readings = self._read(images, tier, rows=rows if rows_ok and any(r is not None for r in rows) else None,
                                      pages=readable)
                for p, layout, r, reading in zip(readable, layouts, rows, readings):
                    texts, confs = read_turn_texts([reading], [layout], self._reader, tier)
                    asked = None if r is None else frozenset(wanted[(p.id, p.file)])
                    if asked is not None:
                        texts = {k: v for k, v in texts.items() if k in asked}
                        confs = {k: v for k, v in confs.items() if k in asked}
                    fresh[(p.id, p.file)] = _Decoded(texts, reading.confidence, {k: v[0] for k, v in confs.items()},
                                                     asked)
        for tid, pages in pages_of.items():
            tier = min((p.tier for p in pages), key=tier_rank) if pages else "gist"
            checks = [c for c in (_page_checks(p.layout).get(tid) for p in pages) if c is not None]
            check = min(checks, key=lambda c: (bool(c.exact), c.precision or 0.0)) if checks else None
            if not decode:
                out[tid] = (None, None, tier, check, None)
                continue
            bad = next((damaged[p.id] for p in pages if p.id in damaged), None)
            if bad is not None:
                out[tid] = (None, None, tier, check, bad)
                continue
            decoded = [fresh[k] if k in fresh else self._cache_get(k) for k in ((p.id, p.file) for p in pages)]
            text = unescape_for(check.form if check else "plain", "".join(d.pieces.get(tid, "") for d in decoded))
            confs = [d.turn_confidence.get(tid, d.confidence) for d in decoded]
            conf = float(np.exp(np.mean(np.log(np.maximum(confs, 1e-12))))) if confs else 0.0
            out[tid] = (text, conf, tier, check, None)
        for key, value in fresh.items():
            old = self._cache.get(key)
            if value.turns is not None and old is not None and old.turns is not None:  # two partial reads: merge
                value = _Decoded({**old.pieces, **value.pieces}, value.confidence,
                                 {**old.turn_confidence, **value.turn_confidence}, old.turns | value.turns)
            if old is None or old.turns is not None or value.turns is None:
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
            rec = self._archive.get_turn(_turn_id(turn_id))
            seq, t = self._now(now)
            text = self._read_turns([rec], decode)[rec.id]
            if text[4] is not None:
                e = text[4]
                raise PageDamagedError(f"turn {rec.id} cannot be read: {e}", page_id=e.page_id, turn_ids=e.turn_ids)
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
                    (rec.text, 1.0, "verbatim", None, None),
                    score=None,
                    similarity=None,
                    r=self._retention(rec, seq, t),
                    seq=seq,
                    t=t,
                )
                for rec in self._archive.working_turns()
            ]

    def _recent_lines(self, recent: Sequence[TurnRecord], budget: int) -> tuple[list[str], int]:
        """The newest working-memory turns as '[role #id] text' lines (newest first) that fit in `budget`
        tokens, and the tokens they cost."""
        lines: list[str] = []
        spent = 0
        for rec in reversed(recent):
            line = f"[{_one_line(rec.role)} #{rec.id}] {rec.text}"
            cost = self._reader.count_tokens(line)
            if spent + cost > budget:
                break
            lines.append(line)
            spent += cost
        return lines, spent

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
                query = _default_query(recent)
            recent_ids = {r.id for r in recent}
            memories = [] if query is None else [h for h in self.recall(query, k=k) if h.turn_id not in recent_ids]
            budget = max_tokens
            mem_lines: list[str] = []
            for h in memories:
                if h.damaged:
                    continue  # its page cannot be read; recall() returns it flagged
                conf = f", confidence {h.confidence:.2f}" if h.confidence is not None else ""
                line = f"- [#{h.turn_id} {_one_line(h.role)}, {_age(h.age_seconds)} ago, {h.tier}{conf}] {h.text or ''}".rstrip()
                cost = self._reader.count_tokens(line)
                if cost > budget // 2:  # memories may use at most half the budget
                    continue
                mem_lines.append(line)
                budget -= cost
            recent_lines, cost = self._recent_lines(recent, budget)
            budget -= cost
            parts = []
            if mem_lines:
                parts.append("## Recalled memories\n" + "\n".join(mem_lines))
            if recent_lines:
                parts.append("## Recent conversation\n" + "\n".join(reversed(recent_lines)))
            return "\n\n".join(parts)

    def context_images(
        self,
        max_tokens: int = 4000,
        *,
        query: str | None = None,
        k: int = 5,
        provider: str = "openai",
        detail: str = "low",
    ) -> ImageContext:
        """context() for models that read images: the pages of the recalled archived turns as image content
        parts (provider "openai" or "anthropic"; OpenAI detail "low" or "high"), then the recent turns as
        text, within max_tokens counted as the provider's published formula charges images
        (optimem.multimodal) plus text tokens; pages get at most half the budget. Pages are sent as stored,
        not read by optimem's model. Reading by those models was not measured here."""
        check_provider(provider, detail)
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise InvalidInputError(f"max_tokens must be a positive int, got {max_tokens!r}")
        with self._lock:
            self._check_open()
            recent = self._archive.working_turns()
            if query is None:
                query = _default_query(recent)
            hits = [] if query is None else [h for h in self.recall(query, k=k, decode=False) if h.tier != "verbatim"]
            budget, pages, shown, img_tokens, page_text = max_tokens, [], set(), 0, 0
            for h in hits:
                for p in self._archive.pages_of(h.turn_id):
                    if p.id in shown:
                        continue
                    png = self._archive.read_page(p)
                    cost = image_tokens(Image.open(io.BytesIO(png)).size[0], provider, detail)
                    if img_tokens + cost > max_tokens // 2:
                        continue
                    shown.add(p.id)
                    pages.append(image_part(png, provider, detail))
                    img_tokens += cost
                    page_text += sum(t.n_tokens for t in self._archive.turns(list(p.turn_ids)).values())
            budget -= img_tokens
            head = (f"## Recalled memories: {len(pages)} page image(s) of earlier conversation, oldest turns "
                    "first on each page; each turn starts with a [role #number date] header")
            text_tokens = self._reader.count_tokens(head) if pages else 0
            budget -= text_tokens
            recent_lines, cost = self._recent_lines(recent, budget)
            budget -= cost
            text_tokens += cost
            content: list[dict[str, Any]] = [{"type": "text", "text": head}, *pages] if pages else []
            if recent_lines:
                content.append({"type": "text", "text": "## Recent conversation\n" + "\n".join(reversed(recent_lines))})
            return ImageContext(provider, content, len(pages), img_tokens, page_text, text_tokens)

    # ----- changing what is kept

    def pin(self, turn_id: TurnId) -> None:
        """Keep a turn at full fidelity: it never decays (R = 1) and is never forgotten by the curve."""
        with self._lock:
            self._check_writable()
            self._archive.set_pinned(_turn_id(turn_id), True)

    def unpin(self, turn_id: TurnId) -> None:
        """Let a pinned turn decay again from now on."""
        with self._lock:
            self._check_writable()
            self._archive.set_pinned(_turn_id(turn_id), False)

    def forget(self, turn_ids: TurnId | Iterable[TurnId]) -> int:
        """Delete turns for good, in one transaction: text, vectors, and their rows on the page images
        (painted white). Unknown ids (or other namespaces') raise NotFoundError before anything changes; so
        does PageDamagedError when a row to paint out is on a damaged page. Returns the count."""
        try:
            ids = [turn_ids] if isinstance(turn_ids, (int, np.integer)) else list(turn_ids)
        except TypeError:
            raise InvalidInputError(f"forget takes a turn id or an iterable of turn ids, got {turn_ids!r:.80}") from None
        ids = [_turn_id(i) for i in ids]
        with self._lock:
            self._check_writable()
            recs = self._archive.turns(ids)
            missing = [i for i in ids if i not in recs or recs[i].state == "forgotten"]
            if missing:
                raise NotFoundError(f"no turns {missing} in namespace {self.namespace!r}; nothing was forgotten")
            self._forget(set(ids), reason="explicit", strict=True)
            return len(set(ids))

    def _forget(self, ids: set[int], *, reason: str, strict: bool) -> set[int]:
        """Paint the turns' rows out of every page that still shows other turns and delete the turns, all in
        one archive transaction. A row on a damaged page cannot be painted out: strict raises
        PageDamagedError (nothing changes); otherwise those turns are kept for now. Returns the ids forgotten."""
        while True:  # dropping a blocked turn changes which pages need painting: repeat until stable
            pages = {p.id: p for tid in ids for p in self._archive.pages_of(tid)}
            redacted: dict[int, bytes] = {}
            blocked: set[int] = set()
            for page in pages.values():
                hit = ids & set(page.turn_ids)
                if not hit or not set(page.turn_ids) - ids:  # pages left with no live turn are deleted instead
                    continue
                try:
                    image = self._page_image(page)
                except PageDamagedError as e:
                    if strict:
                        raise PageDamagedError(
                            f"cannot forget turns {sorted(hit)}: their rows on page {page.id} must be painted out, "
                            f"but {e}. Nothing was forgotten. Forget the page's other turns "
                            f"{sorted(set(page.turn_ids) - ids)} too (the page is then deleted whole)",
                            page_id=page.id, turn_ids=page.turn_ids) from None
                    blocked |= hit
                    continue
                redacted[page.id] = png_bytes(redact(image, _layout_from_json(page.layout), hit), self.page_levels)
            if not blocked:
                break
            ids = ids - blocked
        if ids:
            self._archive.forget_turns(sorted(ids), reason=reason, redacted=redacted)
        return ids

    def consolidate(self, now: float | None = None) -> ConsolidationReport:
        """Apply the forgetting curve to the archive (see the module docstring). now: the policy clock's
        current value instead of the real one. Damaged pages are skipped (listed in the report) and the
        rest carry on."""
        with self._lock:
            self._check_writable()
            seq, t = self._now(now)
            archived = {r.id: r for r in self._archive.live_turns("archived")}
            tiers = {
                tid: tier_for(self._retention(r, seq, t), self.policy, pinned=r.pinned) for tid, r in archived.items()
            }
            doomed = {tid for tid, tier in tiers.items() if tier == "forgotten"}
            pages_before = len(self._archive.pages())
            forgotten = self._forget(doomed, reason="curve", strict=False) if doomed else set()
            moved: dict[str, int] = {}
            damaged: list[int] = []
            jobs: list[tuple[PageRecord, Image.Image, Image.Image, str]] = []  # (page, image, faded, target)
            for page in self._archive.pages():
                live = [tiers[tid] for tid in page.turn_ids if tid in tiers and tid not in doomed - forgotten]
                if not live:
                    continue
                target = min(live, key=tier_rank)
                if tier_rank(target) <= tier_rank(page.tier):
                    continue  # pages only fade here; only reconsolidation sharpens them
                try:
                    image = self._page_image(page)
                except PageDamagedError:
                    damaged.append(page.id)
                    continue
                faded = as_stored(image, target, self.page_levels)  # the very pixels the PNG will hold
                jobs.append((page, image, faded, target))
                if len(jobs) == CONSOLIDATE_BATCH:
                    self._fade(jobs, moved)
                    jobs = []
            self._fade(jobs, moved)
            self._archive.flush()
            return ConsolidationReport(
                pages_downgraded=moved,
                turns_forgotten=tuple(sorted(forgotten)),
                pages_deleted=pages_before - len(self._archive.pages()),
                pages_damaged=tuple(damaged),
            )

    def _fade(self, jobs: Sequence[tuple[PageRecord, Image.Image, Image.Image, str]], moved: dict[str, int]) -> None:
        """Write each page at its target tier; with verification, the pages are first read before and after
        the step in batches (one reader call per tier: a GPU reader reads them together) and re-checked."""
        before: list[Reading] = []
        after: list[Reading] = []
        grids: list[dict] = [{} for _ in jobs]
        if self.verify and jobs:
            before, _ = self._read_by_tier([(image, page.tier, page) for page, image, _, _ in jobs], keep=False)
            after, grids = self._read_by_tier([(faded, target, None) for _, _, faded, target in jobs])
        for k, (page, _image, faded, target) in enumerate(jobs):
            layout = self._recheck(page, before[k], after[k], target) if self.verify else page.layout
            self._archive.replace_page(page.id, png_bytes(faded, self.page_levels), tier=target, layout=layout)
            key = f"{page.tier}->{target}"
            moved[key] = moved.get(key, 0) + 1
        fp = self._token_fingerprint() if any(grids) else None
        if fp is not None:  # the faded images' grids, read for the re-check: kept for their next read
            for rec, g in zip(self._archive.pages_by_id([page.id for page, *_ in jobs]), grids):
                self._archive.keep_tokens(rec, fp, g)

    def _read_by_tier(self, items: Sequence[tuple[Image.Image, str, PageRecord | None]],
                      keep: bool = True) -> tuple[list[Reading], list[dict]]:
        """Readings of (image, tier, stored page or None) triples, in order, one reader call per tier, and the
        token grids each was read from ({} without the token cache); keep=False: grids encoded here are not
        kept for the stored pages (they are about to be replaced)."""
        out: list[Reading | None] = [None] * len(items)
        grids: list[dict] = [{} for _ in items]
        by_tier: dict[str, list[int]] = {}
        for k, (_, tier, _) in enumerate(items):
            by_tier.setdefault(tier, []).append(k)
        for tier, ks in by_tier.items():
            pages = [items[k][2] for k in ks]
            readings, kept = self._read([items[k][0] for k in ks], tier, pages=pages, with_tokens=True, keep=keep)
            for k, r, g in zip(ks, readings, kept):
                out[k], grids[k] = r, g
        return out, grids

    def _token_fingerprint(self) -> str | None:
        """The reader's weights fingerprint when the token cache is on and the reader takes kept grids."""
        if not self.token_cache or not getattr(self._reader, "reads_tokens", False):
            return None
        return getattr(self._reader, "fingerprint", None)

    def _read(self, images: Sequence[Image.Image], tier: str, *, rows: Sequence | None = None,
              pages: Sequence[PageRecord | None] | None = None, with_tokens: bool = False, keep: bool = True) -> Any:
        """The reader's readings of `images` at `tier` (only `rows` of each, when given), through the token
        cache: grids kept for `pages` (the stored page each image is, or None) are reused, and what is
        encoded here is kept for them. with_tokens: also return each image's grids (list of dicts)."""
        fp = self._token_fingerprint()
        n = len(images)
        if fp is None:
            readings = self._reader.read(images, tier, rows=rows) if rows is not None else self._reader.read(images, tier)
            return (readings, [{} for _ in images]) if with_tokens else readings
        pages = list(pages) if pages is not None else [None] * n
        kept = [self._archive.page_tokens(p, fp) if p is not None else {} for p in pages]
        had = [len(g) for g in kept]
        out: list[Reading | None] = [None] * n
        # pages with kept grids and pages without go in separate calls: a batch skips the encoder for a view
        # only when every page of it has that view's grids
        for group in ([i for i in range(n) if had[i]], [i for i in range(n) if not had[i]]):
            if not group:
                continue
            kw: dict[str, Any] = {"tokens": [kept[i] for i in group]}
            if rows is not None:
                kw["rows"] = [rows[i] for i in group]
            for i, r in zip(group, self._reader.read([images[i] for i in group], tier, **kw)):
                out[i] = r
        for p, g, h in zip(pages, kept, had):
            if keep and p is not None and len(g) > h:
                self._archive.keep_tokens(p, fp, g)
        return (out, kept) if with_tokens else out

    def _recheck(self, page: PageRecord, before: Reading, after: Reading, target: str) -> str:
        """A page's readings before and after a fading step -> its new stored JSON: each turn's check
        (optimem.pageout.TurnCheck) is updated against the reading before the step (the turn's text is gone,
        but a turn that read back exactly before reads as its text)."""
        layout = _layout_from_json(page.layout)
        old, _ = read_turn_texts([before], [layout])
        new, confs = read_turn_texts([after], [layout], self._reader, target)
        checks = _page_checks(page.layout)
        out = {}
        for tid, prev in checks.items():
            same = new.get(tid, "") == old.get(tid, "")
            cp = 1.0 if same else char_precision(old.get(tid, ""), new.get(tid, ""))
            conf = confs.get(tid, [after.confidence])[0]
            # precision against the turn's text: exact when the check before was; else an estimate (product)
            exact = None if prev.exact is None else prev.exact and same
            precision = None if prev.precision is None else prev.precision * cp
            out[tid] = TurnCheck(exact, precision, conf, target, prev.form)
        return _page_json(layout, out)

    def check(self, *, repair: bool = False) -> CheckReport:
        """Verify the store: every page of this namespace against its SHA-256, the index against SQLite,
        the manifest, files no page references. repair=True rebuilds the index from the vectors and moves
        unreferenced files to quarantine/ (never deletes); damaged pages are listed with their turns."""
        with self._lock:
            self._check_writable() if repair else self._check_open()
            report = check_store(self._archive, repair=repair)
            if repair:
                self._cache.clear()
            return report

    def _reconsolidate(self, recs: Sequence[TurnRecord]) -> None:
        """Rewrite faded pages that were just read at the top tier, from their decoded text."""
        top = self.policy.top_tier
        for rec in recs:
            if rec.state != "archived":
                continue
            for page in self._archive.pages_of(rec.id):
                cached = self._cache.get((page.id, page.file))
                if tier_rank(page.tier) <= tier_rank(top) or cached is None or cached.turns is not None:
                    continue
                layout = _layout_from_json(page.layout)
                if any(s.continued or s.continues for s in layout.segments):
                    continue  # a turn split over pages cannot be redrawn from one page alone
                decoded = cached.pieces
                checks = _page_checks(page.layout)
                others = self._archive.turns(list(page.turn_ids))
                turns = [
                    Turn(role=others[tid].role, text=unescape_for(checks[tid].form if tid in checks else "plain",
                                                                  decoded.get(tid, "")),
                         timestamp=others[tid].timestamp, id=tid)
                    for tid in page.turn_ids
                ]
                first = min(others[tid].seq for tid in page.turn_ids)
                redrawn = draw_verified(turns, self._reader, first_turn_number=first, tier=top, levels=self.page_levels,
                                        verify=self.verify, render=render_turns)
                if len(redrawn.pages) != 1 or redrawn.verbatim:
                    continue  # the reading grew past one page or does not read back; keep the faded page
                # the redrawn page holds the reading, errors included: its turns are as exact as they were
                def carried(tid, c):  # the redrawn page holds the reading: as exact as the turn was before
                    prev = checks.get(tid)
                    if prev is None or prev.exact is None or c.exact is None:
                        return TurnCheck(None, None, c.confidence, c.tier, c.form)
                    return TurnCheck(c.exact and prev.exact, c.precision * prev.precision, c.confidence, c.tier, c.form)

                kept = {tid: carried(tid, c) for tid, c in redrawn.checks.items()}
                self._archive.replace_page(
                    page.id,
                    png_bytes(page_at_tier(redrawn.pages[0].image, top), self.page_levels),
                    tier=top,
                    kind="reconsolidate",
                    layout=_page_json(redrawn.pages[0].layout, kept),
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
                turns_verbatim=s.turns["verbatim"],
                turns_archived=s.turns["archived"],
                turns_forgotten=s.turns["forgotten"],
                working_tokens=s.working_tokens,
                pages=s.pages,
                visual_tokens=s.visual_tokens,
                archived_text_tokens=s.archived_text_tokens,
                vectors=s.vectors,
                index_kind=s.index_kind,
                bytes_on_disk=s.bytes_on_disk,
                exact_share=self._exact_share(),
                unarchivable=len(self._unarchivable),
            )

    def _exact_share(self) -> dict[str, float]:
        """Per tier, the share of archived turns whose last read-back check was exact (from the pages' checks)."""
        worst: dict[int, tuple[str, bool]] = {}
        for page in self._archive.pages():
            for tid, c in _page_checks(page.layout).items():
                if c.exact is None or tid not in page.turn_ids:  # written without verification
                    continue
                if tid not in worst or not c.exact:
                    worst[tid] = (page.tier, c.exact and worst.get(tid, ("", True))[1])
        out: dict[str, list[bool]] = {}
        for tier, exact in worst.values():
            out.setdefault(tier, []).append(exact)
        return {t: sum(v) / len(v) for t, v in out.items()}

    def events(self, *, turn_id: TurnId | None = None, limit: int | None = None) -> list:
        """The audit log (optimem.store.Event): every add, page-out, recall, tier change, pin, forget."""
        turn_id = None if turn_id is None else _turn_id(turn_id)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_TURN_ID):
            raise InvalidInputError(f"limit must be None or an int from 0 to 2**63-1, got {limit!r}")
        with self._lock:
            self._check_open()
            return self._archive.events(turn_id=turn_id, limit=limit)


def _one_line(role: str) -> str:
    """A role as one line of printable characters (roles are validated on add; stores written before that
    may hold others), so it cannot start a block of its own in a prompt."""
    return "".join(c if c.isprintable() else " " for c in role)[:MAX_ROLE_CHARS]


def _default_query(recent: Sequence[TurnRecord]) -> str | None:
    """What context() recalls with when no query is given: the last verbatim user turn, else the last turn."""
    users = [r for r in recent if r.role == "user"]
    return (users[-1].text if users else (recent[-1].text if recent else None)) or None


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"
