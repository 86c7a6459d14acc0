"""The real reader path with a tiny random-weight ocr_model checkpoint, and the memory CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ocr_model import glyphs
from ocr_model.weights import load_pretrained
from ocr_model import page as pg
from ocr_model.reader import OpticalReader, ReaderError
from optimem import Memory, PageReader
from optimem.cli import main
from optimem.embed import HashingEmbedder
from optimem.errors import ModelError, ModelNotFoundError
from optimem.reader import DEFAULT_VIEWS, load_reader


@pytest.fixture(scope="module")
def tiny_reader(tiny_model_dir) -> OpticalReader:
    return OpticalReader.from_pretrained(tiny_model_dir, max_new_tokens=12)


def test_reader_encodes_each_tier_and_reads_with_a_confidence(tiny_reader):
    assert isinstance(tiny_reader, PageReader)
    page = pg.render_turns([pg.Turn("user", "hello world " * 30)])[0]
    for tier, side in (("small", 10), ("gist", 6)):
        v = tiny_reader.encode([pg.page_at_tier(page.image, tier)], tier)
        assert tuple(v.shape) == (1, side * (side + 1) + 1, tiny_reader.model.cfg.decoder.dim)
    readings = tiny_reader.read([pg.page_at_tier(page.image, "tiny")] * 2, "tiny")
    assert len(readings) == 2
    for r in readings:
        assert isinstance(r.text, str) and 0.0 <= r.confidence <= 1.0
        assert r.n_tokens <= 12 and (r.complete or r.n_tokens == 12)
    assert readings[0] == readings[1]  # greedy, batched rows do not interfere
    assert tiny_reader.count_tokens("hello world") == len(tiny_reader.tokenizer.encode("hello world"))


def test_memory_with_the_tiny_model(tmp_path, tiny_reader):
    # verify=False: a random-weight model reads nothing back, and verified page-out would keep every turn
    with Memory(tmp_path / "s", model=tiny_reader, embedder=HashingEmbedder(256), working_tokens=60,
                verify=False, keep_recent=0) as m:
        texts = [f"turn {i}: the locker code is {4400 + i} and the door is blue" for i in range(8)]
        ids = m.add_many(texts)
        hit = m.recall(texts[0], k=1)[0]
        assert hit.turn_id == ids[0] and hit.tier == "base"
        assert isinstance(hit.text, str) and 0.0 <= hit.confidence <= 1.0  # random weights read noise
        assert m.stats().archived_text_tokens > 0
        m.consolidate(now=10_000)  # everything fades to gist: the model reads 384 px pages
        hit = m.recall(texts[0], k=1)[0]
        assert hit.turn_id == ids[0] and hit.tier == "gist" and 0.0 <= hit.confidence <= 1.0


def test_load_reader_arguments(tiny_model_dir, tmp_path):
    assert isinstance(load_reader(tiny_model_dir), OpticalReader)
    assert isinstance(load_reader(str(tiny_model_dir)), OpticalReader)
    with pytest.raises(ModelNotFoundError):
        load_reader(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="cannot load"):
        load_reader(tmp_path / "empty")
    with pytest.raises(ModelError, match="PageReader"):
        load_reader(42)


def test_cli_add_recall_stats_consolidate(tmp_path, tiny_model_dir, capsys):
    store = str(tmp_path / "cli-store")
    conv = tmp_path / "conv.jsonl"
    conv.write_text(
        "\n".join(
            json.dumps({"role": r, "content": c})
            for r, c in [("user", "I parked on level 3, bay 41."), ("assistant", "Noted: level 3, bay 41.")]
        )
    )
    common = ["--model", str(tiny_model_dir)]
    assert main(["add", store, "My locker code is 4417.", "--role", "user", *common]) == 0
    assert json.loads(capsys.readouterr().out) == {"added": [1]}
    assert main(["add", store, "--file", str(conv), *common]) == 0
    assert json.loads(capsys.readouterr().out) == {"added": [2, 3]}
    assert main(["recall", store, "where did I park?", "-k", "2", "--json", *common]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2 and lines[0]["turn_id"] in (2, 3) and lines[0]["tier"] == "verbatim"
    assert main(["stats", store, *common]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["turns_verbatim"] == 3 and stats["namespace"] == "default"
    assert main(["consolidate", store, *common]) == 0
    assert json.loads(capsys.readouterr().out)["turns_forgotten"] == []
    assert main(["recall", store, "", *common]) == 2
    assert "non-empty query" in capsys.readouterr().err
    assert main(["add", store, "x", "--namespace", "../evil", *common]) == 2
    assert "invalid namespace" in capsys.readouterr().err


class _OracleHeads(torch.nn.Module):
    """Glyph heads that 'read' the page set in `.page`: one-hot logits of its true cells, for any token grid."""

    def __init__(self, grids=(16, 10)):
        super().__init__()
        self.grids = {str(g) for g in grids}
        self.cls = torch.nn.Linear(1, 1)  # the reader casts the token grid to this weight's dtype
        self.page = None

    def __contains__(self, key):
        return key in self.grids

    def __iter__(self):
        return iter(sorted(self.grids))

    def __getitem__(self, key):
        if key not in self.grids:
            raise KeyError(key)
        return self

    def forward(self, grid):
        g = grid.shape[1]
        cls = glyphs.glyph_classes(self.page.cell_codes()).reshape(-1)
        table = glyphs.slot_table(g)
        target = torch.from_numpy(np.where(table >= 0, cls[np.clip(table, 0, None)], 0))
        one = torch.nn.functional.one_hot(target, pg.glyphs.n_classes()).float() * 30.0
        return one.expand(grid.shape[0], *one.shape)


def test_grid_mode_spells_the_page_and_auto_leaves_foreign_pages_to_the_decoder(tiny_model_dir):
    model, tok = load_pretrained(tiny_model_dir)
    heads = _OracleHeads()
    reader = OpticalReader(model, tok, glyph_heads=heads, max_new_tokens=6)
    page = pg.render_plain_page("[user #3]\nThe locker code is QX-4821-MB.\n    indented  line")
    heads.page = page
    (r,) = reader.read([page.image], "base")
    assert r.method == "grid" and r.text == page.text and r.complete and r.confidence > 0.99
    assert r.n_tokens == len(tok.encode(page.text))
    # a page mostly outside printable ASCII: auto hands it to the decoder, grid spells what it can
    heads.page = foreign = pg.render_plain_page("שלום " * 20)  # Hebrew: no shipped font draws it (boxes)
    (r,) = reader.read([foreign.image], "base")
    assert r.method == "decoder" and r.n_tokens <= 6
    (r,) = OpticalReader(model, tok, glyph_heads=heads, mode="grid").read([foreign.image], "base")
    assert r.method == "grid" and set(r.text) <= {"\ufffd", " ", "\n"}
    # a tier without a head of its own: read through the other tiers' views (the default), or, with views
    # off, auto decodes and grid refuses with a clear error
    heads.page, tiny = page, pg.page_at_tier(page.image, "tiny")
    (r,) = reader.read([tiny], "tiny")
    assert r.method == "grid" and r.text == page.text
    (r,) = OpticalReader(model, tok, glyph_heads=heads, views={}, max_new_tokens=6).read([tiny], "tiny")
    assert r.method == "decoder"
    with pytest.raises(ReaderError, match="tier 'tiny'"):
        OpticalReader(model, tok, glyph_heads=heads, mode="grid", views={}).read([tiny], "tiny")
    (r,) = OpticalReader(model, tok, glyph_heads=heads, mode="decoder", max_new_tokens=6).read([page.image], "base")
    assert r.method == "decoder"


def test_reader_mode_errors(tiny_model_dir):
    model, tok = load_pretrained(tiny_model_dir)
    with pytest.raises(ReaderError, match="glyph heads"):
        OpticalReader(model, tok, mode="grid")
    with pytest.raises(ValueError, match="mode must be one of"):
        OpticalReader(model, tok, mode="fast")
    with pytest.raises(ValueError, match="max_unknown"):
        OpticalReader(model, tok, max_unknown=2.0)


def test_from_pretrained_loads_glyph_heads_beside_the_checkpoint(tiny_model_dir, tmp_path):
    import shutil

    d = tmp_path / "with-heads"
    shutil.copytree(tiny_model_dir, d)
    model, _ = load_pretrained(d)
    glyphs.save_glyph_heads(glyphs.make_glyph_heads(model.cfg.decoder.dim, [16]), d)
    reader = OpticalReader.from_pretrained(d, mode="grid")
    assert reader.grids() == [16]
    page = pg.render_plain_page("hello")
    (r,) = reader.read([page.image], "base")
    assert r.method == "grid" and len(r.text) <= pg.ROWS * (pg.COLS + 1)  # random heads read noise
    assert OpticalReader.from_pretrained(tiny_model_dir).grids() == []


class _TwoViewOracle(_OracleHeads):
    """Oracle heads whose 16x16 (base) view is unsure about one cell and leans wrong; the 10x10 (small) view
    is sure and right, so only the two views together read the page exactly."""

    def forward(self, grid):
        one = super().forward(grid)
        if grid.shape[1] != 16:
            return one
        out = one.clone() / 30.0 * 2.0  # base: true class logit 2 everywhere
        table = glyphs.slot_table(16)
        i, j, k = (int(v[0]) for v in np.nonzero(table == 0))  # the slot that owns cell (0, 0)
        out[:, i, j, k, 5] = 2.5  # ... and a wrong class a little above it on cell (0, 0)
        return out


def test_views_of_the_same_image_at_other_tiers_correct_the_own_view(tiny_model_dir):
    model, tok = load_pretrained(tiny_model_dir)
    heads = _TwoViewOracle(grids=(16, 10))
    heads.page = page = pg.render_plain_page("The locker code is QX-4821-MB.")
    one_view = OpticalReader(model, tok, glyph_heads=heads, views={})
    two_views = OpticalReader(model, tok, glyph_heads=heads, views={"small": 0.5})
    assert one_view.grid_views("base") == {"base": 1.0}
    assert two_views.grid_views("base") == {"small": 0.5, "base": 1.0}
    assert two_views.grid_views("tiny") == {"small": 0.5}  # no head for tiny's own 8x8 grid here
    default = OpticalReader(model, tok, glyph_heads=heads)
    assert default.views == DEFAULT_VIEWS and default.grid_views("gist") == {"base": 0.5, "small": 1.0}
    assert OpticalReader(model, tok).grid_views("base") == {}  # no heads, no grid views
    (r1,) = one_view.read([page.image], "base")
    (r2,) = two_views.read([page.image], "base")
    assert r1.text == glyphs.cells_text(np.array([[5]])) + page.text[1:] != page.text
    assert r2.text == page.text and r2.method == "grid"
    with pytest.raises(ValueError, match="views maps tier names"):
        OpticalReader(model, tok, glyph_heads=heads, views={"small": -1.0})
    with pytest.raises(ValueError, match="views maps tier names"):
        OpticalReader(model, tok, glyph_heads=heads, views={"huge": 1.0})


def test_the_fast_grid_path_reads_like_the_reference(tiny_model_dir):
    """The top-k fast path (each view's best classes, scored exactly in every view) and the reference path
    (every class) give the same text, here with views that disagree on one cell."""
    model, tok = load_pretrained(tiny_model_dir)
    heads = _TwoViewOracle(grids=(16, 10))
    heads.page = page = pg.render_plain_page("The locker code is QX-4821-MB.\n  indented  line")
    fast = OpticalReader(model, tok, glyph_heads=heads, views={"small": 0.5})
    ref = OpticalReader(model, tok, glyph_heads=heads, views={"small": 0.5}, exact_views=True)
    (a,), (b,) = fast.read([page.image], "base"), ref.read([page.image], "base")
    assert a.text == b.text == page.text
    # the fast path pools the classes outside its candidates into one: on these flat oracle logits that
    # moves the confidence (on held-out pages of the shipped model it stayed within 0.05 of the reference)
    assert 0.0 < b.confidence <= a.confidence <= 1.0


def test_reading_some_rows_reads_them_as_the_whole_page_does(tiny_model_dir):
    """read(..., rows=) classifies only those rows (batched fast path and per-page reference alike): they
    read as in a whole-page reading, the other rows read blank, and bad rows are refused."""
    model, tok = load_pretrained(tiny_model_dir)
    heads = _TwoViewOracle(grids=(16, 10))
    heads.page = page = pg.render_plain_page("first row\nsecond row QX-4821\nthird\nfourth row")
    img = page.image
    for exact in (False, True):
        reader = OpticalReader(model, tok, glyph_heads=heads, views={"small": 0.5}, exact_views=exact)
        (whole,) = reader.read([img], "base")
        a, b = reader.read([img, img], "base", rows=[[1, 3], None])
        assert whole.text == page.text and b.text == page.text
        assert a.text == "\nsecond row QX-4821\n\nfourth row"
        assert a.cells is not None and float(a.cells[0].min()) == 1.0  # rows not read: blank, certain
        (c,) = reader.read([img], "base", rows=[[(1, 7, 18), 3]])  # spans: only those cells of a row
        assert c.text == "\n       row QX-4821\n\nfourth row"
    with pytest.raises(ValueError, match="one entry per image"):
        reader.read([img], "base", rows=[[1], [2]])
    with pytest.raises(ValueError, match="must lie in"):
        reader.read([img], "base", rows=[[40]])
    with pytest.raises(ValueError, match="must lie in"):
        reader.read([img], "base", rows=[[(1, 9, 9)]])


def test_turn_confidence_is_the_calibrated_probability_of_an_exact_turn(tiny_model_dir, tmp_path):
    """With a calibration curve for the tier, a turn's confidence is that curve over its cells' score; without
    one, exp(mean log p); a malformed calibration.json is refused with what to do."""
    import math
    import shutil

    from ocr_model.reader import load_calibration, turn_score
    from optimem.pageout import turn_confidence

    probs = np.array([0.99, 0.98, 0.5])
    assert turn_score(probs, "prod") == pytest.approx(math.log(0.99 * 0.98 * 0.5))
    assert turn_score(probs, "min") == pytest.approx(math.log(0.5))
    model, tok = load_pretrained(tiny_model_dir)
    curve = {"score": "min", "a": 4.0, "b": 1.0}
    reader = OpticalReader(model, tok, calibration={"tiny": curve})
    assert reader.turn_confidence(probs, "tiny") == pytest.approx(1 / (1 + math.exp(-(4.0 * math.log(0.5) + 1.0))))
    assert reader.turn_confidence(probs, "base") == pytest.approx(math.exp(np.log(probs).mean()))
    # through pageout.turn_confidence: the turn's own cells only
    page = pg.render_turns([pg.Turn("user", "hello there", id=1), pg.Turn("assistant", "general kenobi", id=2)])[0]
    cells = np.ones((pg.ROWS, pg.COLS), dtype=np.float32)
    seg2 = next(k for k, s in enumerate(page.layout.segments) if s.turn_id == 2)
    p2 = next(p for p in page.layout.pieces if p.segment == seg2 and p.kind == "text")
    cells[p2.row, p2.col] = 0.25
    reading = type("R", (), {"cells": cells, "confidence": 0.9})()
    assert turn_confidence(reading, page.layout, 1, reader, "tiny") == pytest.approx(1 / (1 + math.exp(-1.0)))
    assert turn_confidence(reading, page.layout, 2, reader, "tiny") == pytest.approx(
        1 / (1 + math.exp(-(4.0 * math.log(0.25) + 1.0))))
    d = tmp_path / "m"
    shutil.copytree(tiny_model_dir, d)
    (d / "calibration.json").write_text(json.dumps({"curves": {"tiny": curve}}))
    assert load_calibration(d) == {"tiny": curve}
    assert OpticalReader.from_pretrained(d).calibration == {"tiny": curve}
    (d / "calibration.json").write_text(json.dumps({"curves": {"tiny": {"score": "median", "a": 1, "b": 0}}}))
    with pytest.raises(ValueError, match="confidence.py --fit"):
        load_calibration(d)


def test_kept_token_grids_read_like_the_encoder_and_skip_it(tiny_model_dir, tmp_path, monkeypatch):
    """read(..., tokens=[{}]) hands back each view's grids; reading again from them calls no encoder and
    gives the same text; the fingerprint names the weights (the same for the lazy reader, which loads nothing)."""
    import shutil

    from ocr_model.reader import weights_fingerprint
    from optimem.lazy_reader import LazyReader

    d = tmp_path / "with-heads"
    shutil.copytree(tiny_model_dir, d)
    model, _ = load_pretrained(d)
    torch.manual_seed(1)
    glyphs.save_glyph_heads(glyphs.make_glyph_heads(model.cfg.decoder.dim, [16, 10, 8]), d)
    before = weights_fingerprint(tiny_model_dir)
    reader = OpticalReader.from_pretrained(d, mode="grid")
    page = pg.render_turns([pg.Turn("user", "kept grids read like fresh ones " * 8)])[0]
    img = pg.page_at_tier(page.image, "small")
    kept = [{}]
    (fresh,) = reader.read([img], "small", tokens=kept)
    assert set(kept[0]) == set(reader.grid_views("small")) and kept[0]["small"].dtype == np.float16
    assert kept[0]["small"].shape == (10, 10, reader.model.cfg.decoder.dim)

    def no_encoder(*a, **k):
        raise AssertionError("the encoder ran although every view's grids were kept")

    monkeypatch.setattr(reader, "_encode_grid", no_encoder)
    (again,) = reader.read([img], "small", tokens=kept)
    # float16 grids: random heads' near-ties may flip (the shipped model read 9 real pages identically)
    assert len(again.text) == len(fresh.text)
    assert sum(a != b for a, b in zip(again.text, fresh.text)) <= 0.02 * len(fresh.text)
    assert again.confidence == pytest.approx(fresh.confidence, abs=1e-2)
    with pytest.raises(ValueError, match="one dict per image"):
        reader.read([img], "small", tokens=[{}, {}])
    assert reader.fingerprint == weights_fingerprint(d) == LazyReader(d).fingerprint
    assert len(reader.fingerprint) == 16 and reader.fingerprint != before  # the heads are part of the weights


def test_overlapped_batches_read_like_one_page_at_a_time(tiny_model_dir):
    """overlap (the host side of each grid batch on a worker thread, on by default on a GPU, forced here on
    the CPU) gives every page the Reading it gets inline, in order: grid pages as when read alone, decoder
    pages as in the same batches inline."""
    model, tok = load_pretrained(tiny_model_dir)
    heads = _OracleHeads()
    page = pg.render_plain_page("The locker code is QX-4821-MB.\n    indented  line")
    heads.page = page
    imgs = [page.image] * 5
    alone = OpticalReader(model, tok, glyph_heads=heads, max_new_tokens=4, overlap=False)
    piped = OpticalReader(model, tok, glyph_heads=heads, max_new_tokens=4, batch_size=2, overlap=True)
    assert not OpticalReader(model, tok, glyph_heads=heads).overlap  # off by default on a CPU
    assert piped.read(imgs, "base") == [alone.read([im], "base")[0] for im in imgs]
    heads.page = pg.render_plain_page("שלום " * 20)  # boxes: every page goes to the decoder
    got = piped.read(imgs, "base")
    inline = OpticalReader(model, tok, glyph_heads=heads, max_new_tokens=4, batch_size=2, overlap=False)
    assert [r.method for r in got] == ["decoder"] * 5 and got == inline.read(imgs, "base")  # same batches
    piped._ahead = True  # the queued path (a GPU's): each batch's device work queued, then the previous finished
    assert piped.read(imgs, "base") == got
    heads.page = page
    assert piped.read(imgs, "base") == [alone.read([im], "base")[0] for im in imgs]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_gpu_read_path_reads_like_the_cpu(tiny_model_dir, monkeypatch):
    """On a GPU: pinned uploads, the blockwise log-sum-exp and the overlapped host side read as the CPU path
    does (float32 on both, TF32 off), and overlap on or off gives identical Readings; in bf16 too."""
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    model, tok = load_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    heads = glyphs.make_glyph_heads(model.cfg.decoder.dim, (16, 10, 8))
    pages = [pg.render_plain_page(f"page {i}: the locker code is QX-{4821 + i}-MB.") for i in range(5)]
    imgs = [pg.page_at_tier(p.image, "small") for p in pages]
    cpu = OpticalReader(model, tok, glyph_heads=heads, mode="grid", batch_size=2).read(imgs, "small")
    for dtype in (torch.float32, torch.bfloat16):
        gmodel, _ = load_pretrained(tiny_model_dir, device="cuda", dtype=dtype)
        gheads = glyphs.make_glyph_heads(model.cfg.decoder.dim, (16, 10, 8))
        gheads.load_state_dict(heads.state_dict())
        gheads = gheads.to("cuda", dtype)
        on = OpticalReader(gmodel, tok, glyph_heads=gheads, mode="grid", batch_size=2)
        off = OpticalReader(gmodel, tok, glyph_heads=gheads, mode="grid", batch_size=2, overlap=False)
        assert on.overlap and not off.overlap
        a, b = on.read(imgs, "small"), off.read(imgs, "small")
        assert [x.text for x in a] == [x.text for x in b]
        assert all(np.array_equal(x.cells, y.cells) for x, y in zip(a, b))
        on._ahead = False  # the worker-thread path reads the same as the queued one (on by default here)
        c = on.read(imgs, "small")
        assert [x.text for x in c] == [x.text for x in b] and all(np.array_equal(x.cells, y.cells) for x, y in zip(c, b))
        if dtype == torch.float32:
            assert sum(x.text == y.text for x, y in zip(a, cpu)) >= 4
            assert all(float(np.abs(x.cells - y.cells).max()) < 1e-2 for x, y in zip(a, cpu) if x.text == y.text)


def test_block_topk_is_torch_topk():
    """The GPU read path's top-k (block maxima, then k * 128 candidates) gives torch.topk's classes and values."""
    from ocr_model.glyph_readout import block_topk

    torch.manual_seed(0)
    logits = torch.randn(500, 17152)
    logits[:, 17143:] = float("-inf")  # padded classes (glyph_readout.padded)
    logits[7, 130:138] = 50.0  # the whole top 8 in one block
    for k in (1, 8):
        v, i = block_topk(logits, k)
        rv, ri = logits.topk(k, dim=-1)
        assert torch.equal(v, rv) and torch.equal(logits.gather(1, i), v)  # the same values, at those classes
        assert torch.equal(i.sort(-1).values, ri.sort(-1).values)  # the same classes (ties in any order)


def test_views_resampled_on_the_device_read_as_pillows_do(tiny_model_dir):
    """The other views of a page resampled as tensors (what a GPU reader does) and by Pillow give the same
    pixels, so the same cells, probabilities and texts."""
    from ocr_model.page.codec import as_stored

    pages = pg.render_turns([pg.Turn("user", "The locker code is QX-4821-MB. " * 12), pg.Turn("assistant", "ok " * 40)])
    ims = [as_stored(p.image, "small") for p in pages] * 5
    from ocr_model.glyphs import make_glyph_heads

    model, tok = load_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    heads = make_glyph_heads(model.cfg.decoder.dim, (16, 10, 8), n_classes=300)  # random: any reading will do
    reader = OpticalReader(model, tok, glyph_heads=heads, mode="grid", views={"base": 0.5, "tiny": 0.5, "small": 1.0})
    assert set(reader.grid_views("small")) == {"base", "small", "tiny"}
    ref = reader.read(ims, "small")
    reader._device_resample = True
    got = reader.read(ims, "small")
    assert [r.text for r in got] == [r.text for r in ref]
    assert all(np.array_equal(a.cells, b.cells) for a, b in zip(got, ref))


def test_the_queued_path_reads_like_inline_and_reads_a_batch_again_past_its_budget(tiny_model_dir, monkeypatch):
    """read's queued path (a GPU's default; forced here): every batch's cells stay on the device until later
    batches are queued; whole pages, rows= spans and the token cache's grids (handed back, then read from) as
    inline. A batch whose flat cells outnumber the
    read-again budget (the count comes back with its cells) is read again, waiting, to the same result."""
    import ocr_model.glyph_readout as gr
    from ocr_model.glyphs import make_glyph_heads

    pages = pg.render_turns([pg.Turn("user", "The locker code is QX-4821-MB. " * 12), pg.Turn("assistant", "ok " * 40)])
    ims = ([pg.page_at_tier(p.image, "small") for p in pages] * 6)[:6]
    model, tok = load_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    heads = make_glyph_heads(model.cfg.decoder.dim, (16, 10, 8), n_classes=300)
    kw = dict(glyph_heads=heads, mode="grid", views={"base": 0.5, "small": 1.0}, batch_size=2)
    inline = OpticalReader(model, tok, overlap=False, **kw)
    queued = OpticalReader(model, tok, overlap=True, **kw)
    queued._ahead = True
    rows = [None, [1, (2, 0, 20)], [], [0], None, [(3, 5, 9)]]
    for r in (None, rows):
        ref, got = inline.read(ims, "small", rows=r), queued.read(ims, "small", rows=r)
        assert [x.text for x in got] == [x.text for x in ref]
        assert all(np.array_equal(a.cells, b.cells) and a.confidence == b.confidence for a, b in zip(got, ref))
    kept_inline, kept_queued = [{} for _ in ims], [{} for _ in ims]  # the token cache's dicts, filled by the reads
    ref, got = inline.read(ims, "small", tokens=kept_inline), queued.read(ims, "small", tokens=kept_queued)
    assert [x.text for x in got] == [x.text for x in ref]
    assert all(set(a) == {"base", "small"} == set(b) and all(np.array_equal(a[v], b[v]) for v in a)
               for a, b in zip(kept_inline, kept_queued))
    again = queued.read(ims, "small", tokens=kept_queued)  # from the kept grids: no encoder
    assert [x.text for x in again] == [x.text for x in inline.read(ims, "small", tokens=kept_inline)]
    assert queued._read_again_budget(16, 364800) == 512 + 364800 * 2 * queued._flat_share[16]  # learned share
    queued._flat_share[16] = 1.0  # a batch of noise pages: every cell flat
    assert queued._read_again_budget(16, 364800) == 364800 // 16  # capped: later batches read again waiting
    no_heads = OpticalReader(model, tok, max_new_tokens=4, batch_size=2, overlap=True)  # mode auto: the decoder
    no_heads._ahead = True
    assert [r.text for r in no_heads.read(ims[:5], "small")] == [
        r.text for r in OpticalReader(model, tok, max_new_tokens=4, batch_size=2, overlap=False).read(ims[:5], "small")]
    top = gr.top_classes

    def short_budget(*a, again=None, **k):  # every batch's count past its budget: each is read again
        out = top(*a, **k)
        return out if again is None else (*out, torch.tensor(again + 1))

    monkeypatch.setattr(gr, "top_classes", short_budget)
    again = []
    cells = queued._grid_cells
    monkeypatch.setattr(queued, "_grid_cells", lambda *a, **k: again.append(1) or cells(*a, **k))
    got = queued.read(ims, "small", rows=rows)
    assert len(again) == 3 and [x.text for x in got] == [x.text for x in inline.read(ims, "small", rows=rows)]


def test_a_reader_with_the_folded_attention_bias_reads_as_the_reference(tiny_model_dir):
    """fold_bias (the GPU default) changes only how the SAM bias is added; two readers sharing one model keep
    their own setting."""
    from ocr_model.glyphs import make_glyph_heads

    model, tok = load_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    heads = make_glyph_heads(model.cfg.decoder.dim, (16,), n_classes=300)
    page = pg.render_turns([pg.Turn("user", "The locker code is QX-4821-MB. " * 12)])[0]
    folded = OpticalReader(model, tok, glyph_heads=heads, mode="grid", views={}, fold_bias=True)
    table = OpticalReader(model, tok, glyph_heads=heads, mode="grid", views={}, fold_bias=False)
    assert table.fold_bias is False and folded.fold_bias is True
    (a,), (b,) = folded.read([page.image], "base"), table.read([page.image], "base")
    assert a.text == b.text and np.allclose(a.cells, b.cells, atol=1e-4)
    assert all(not m.fold_bias for m in model.modules() if hasattr(m, "fold_bias"))  # the last read's own


def test_a_compiled_encoder_pads_short_batches_and_reads_as_the_eager_one(tiny_model_dir):
    """compile=True (here with torch.compile's eager backend: the wiring, not inductor) reads the same cells;
    a short last batch is padded to batch_size and cut back."""
    from ocr_model.glyphs import make_glyph_heads

    model, tok = load_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    heads = make_glyph_heads(model.cfg.decoder.dim, (16,), n_classes=300)
    pages = pg.render_turns([pg.Turn("user", "The locker code is QX-4821-MB. " * 12), pg.Turn("assistant", "ok " * 40)])
    ims = [pages[0].image] * 6  # batches of 4 and 2
    eager = OpticalReader(model, tok, glyph_heads=heads, mode="grid", views={})
    compiled = OpticalReader(model, tok, glyph_heads=heads, mode="grid", views={}, compile=True)
    compiled._compile_backend = "eager"
    got = compiled.read(ims, "base")
    ref = eager.read(ims, "base")
    assert [r.text for r in got] == [r.text for r in ref]
    assert all(np.allclose(a.cells, b.cells, atol=1e-5) for a, b in zip(got, ref))
    shapes = []  # what the compiled function is given
    model.__dict__["_compiled_encode"] = {("eager", None): lambda x: shapes.append(x.shape[0]) or model.encode_grid(x)}
    again = compiled.read(ims, "base")
    assert shapes == [4, 4]  # the short batch of 2 went in padded to 4, and came back as 2 pages
    assert [r.text for r in again] == [r.text for r in ref]


def test_batch_size_and_compile_are_checked_and_default_by_device(tiny_model_dir):
    """batch_size None: 4 on a CPU (a GPU reader takes GPU_BATCH); compile takes a bool or a torch.compile
    mode, kept for the compiled encoder; bad values name what to pass."""
    from ocr_model.reader import GPU_BATCH

    model, tok = load_pretrained(tiny_model_dir)
    assert OpticalReader(model, tok).batch_size == 4 and OpticalReader(model, tok, batch_size=9).batch_size == 9
    assert GPU_BATCH == 128
    graphs = OpticalReader(model, tok, compile="reduce-overhead")
    assert graphs.compile and graphs._compile_mode == "reduce-overhead"
    assert OpticalReader(model, tok, compile=True)._compile_mode is None and not OpticalReader(model, tok).compile
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="batch_size"):
            OpticalReader(model, tok, batch_size=bad)
    with pytest.raises(ValueError, match="torch.compile mode"):
        OpticalReader(model, tok, compile=1.0)
