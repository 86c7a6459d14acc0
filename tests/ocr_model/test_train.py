"""The training script end to end at toy size: steps run, losses are finite, checkpoints resume."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from ocr_model import glyphs, train
from ocr_model.weights import load_pretrained

from .test_data import corpus_dir  # noqa: F401  (fixture)

MICRO = {
    "name": "micro",
    "sam": {"dim": 32, "depth": 1, "heads": 2, "mlp_ratio": 2.0, "patch_size": 16, "img_size": 1024,
            "window_size": 14, "global_attn_indexes": [], "neck_dim": 16, "conv_dims": [24, 32], "eps": 1e-6},
    "clip": {"dim": 32, "depth": 1, "heads": 2, "mlp_dim": 64, "pos_grid": 16, "eps": 1e-5,
             "unused_patch_embedding": False},
    "projector": {"input_dim": 64, "output_dim": 32},
    "decoder": {"vocab_size": 4096, "dim": 32, "n_layers": 2, "n_heads": 2, "dense_intermediate": 64,
                "first_k_dense": 1, "n_routed_experts": 2, "n_activated_experts": 1, "moe_intermediate": 32,
                "n_shared_experts": 1, "max_positions": 2048, "rope_theta": 10000.0, "norm_eps": 1e-6,
                "aux_loss_alpha": 0.001, "qk_norm": False, "bos_id": 0, "eos_id": 1, "pad_id": 2},
}
TOKENIZER = os.path.join(os.path.dirname(train.__file__), "weights", "optimem-small", "tokenizer.json")


def _log(out):
    with open(os.path.join(out, "log.jsonl")) as f:
        return [json.loads(line) for line in f]


@pytest.mark.skipif(not os.path.exists(TOKENIZER), reason="shipped tokenizer missing")
def test_train_runs_checkpoints_and_resumes(tmp_path, corpus_dir):  # noqa: F811
    cfg = tmp_path / "micro.json"
    cfg.write_text(json.dumps(MICRO))
    out = str(tmp_path / "run")
    common = ["--corpus", corpus_dir, "--out", out, "--batch-size", "2", "--workers", "0", "--eval-pages", "2",
              "--eval-full", "0", "--device", "cpu", "--tokenizer", TOKENIZER, "--decode-tokens", "8"]
    train.main(["--config", str(cfg), "--max-steps", "2", "--eval-every", "2", *common])
    log = _log(out)
    ev = [r for r in log if "eval_step" in r]
    assert ev and ev[-1]["eval_step"] == 2
    for key in ("base/glyph_acc", "base/text_loss", "base/tok_acc", "base/gap", "base/greedy_cp"):
        assert key in ev[-1] and ev[-1][key] == ev[-1][key]  # present and not NaN
    ckpt = os.path.join(out, "ckpt")
    state = json.loads(Path(ckpt, "state.json").read_text())
    assert state["step"] == 2 and state["pages"] == 4
    model, tok = load_pretrained(ckpt)
    assert model.cfg.name == "micro" and tok.vocab_size <= model.cfg.decoder.vocab_size

    train.main(["--resume", ckpt, "--max-steps", "3", "--eval-every", "100", *common])
    assert json.loads(Path(ckpt, "state.json").read_text())["step"] == 3
    assert [r for r in _log(out) if r.get("event") == "done"][-1]["step"] == 3

    # --init from a shipped-style directory whose heads have the first 96 classes and two grids only
    # (optimem-small as of run s2): the classifiers are widened, the missing grids start fresh
    shipped = tmp_path / "shipped"
    shutil.copytree(ckpt, shipped, ignore=shutil.ignore_patterns("optimizer.safetensors"))
    old = glyphs.make_glyph_heads(MICRO["decoder"]["dim"], [16, 10], n_classes=glyphs.ASCII_CLASSES)
    glyphs.save_glyph_heads(old, shipped)
    out2 = str(tmp_path / "run2")
    common2 = [a if a != out else out2 for a in common]
    train.main(["--init", str(shipped), "--max-steps", "1", "--eval-every", "100", *common2])
    heads = glyphs.load_glyph_heads(os.path.join(out2, "ckpt"), MICRO["decoder"]["dim"])
    assert sorted(heads.keys(), key=int) == ["6", "8", "10", "16", "20"]
    assert heads["16"].cls.out_features == glyphs.n_classes_()

    # --init from int8 heads (save_glyph_heads(int8=True)): the one loader dequantises them, so the run
    # starts from the stored weights (it used to ignore the .scale keys and exit)
    int8 = tmp_path / "int8"
    shutil.copytree(ckpt, int8, ignore=shutil.ignore_patterns("optimizer.safetensors"))
    ref = glyphs.make_glyph_heads(MICRO["decoder"]["dim"], [16], n_classes=glyphs.S3_CLASSES)
    glyphs.save_glyph_heads(ref, int8, int8=True)
    out3 = str(tmp_path / "run3")
    train.main(["--init", str(int8), "--max-steps", "1", "--eval-every", "100", "--lr", "0", "--warmup", "1",
                *[a if a != out else out3 for a in common]])
    got = glyphs.load_glyph_heads(os.path.join(out3, "ckpt"), MICRO["decoder"]["dim"])
    w_ref = ref["16"].cls.weight.detach()
    w_got = got["16"].cls.weight.detach()[: glyphs.S3_CLASSES]
    assert (w_got - w_ref).abs().max() <= w_ref.abs().max() / 100  # int8 rounding, then bf16: the same weights


def test_make_batch_shapes(corpus_dir):  # noqa: F811
    import random

    from ocr_model import data
    from ocr_model.tokenizer import Tokenizer

    if not os.path.exists(TOKENIZER):
        pytest.skip("shipped tokenizer missing")
    tok = Tokenizer.from_file(TOKENIZER)
    corpus = data.Corpus(corpus_dir, "train")
    b = train.make_batch(corpus, tok, train.STAGES[1], "small", 3, 64, random.Random(0))
    assert b["pixels"].shape == (3, 640, 640)
    assert b["glyphs"].shape[:3] == (3, 10, 10)
    assert b["input_ids"].shape == b["labels"].shape and b["input_ids"].shape[1] <= 64
    # a page that fits ends with EOS; a page cut at the budget carries no EOS at all; padding is ignored
    for row in b["labels"].tolist():
        real = [t for t in row if t != -100]
        if len(real) < 64:
            assert real[-1] == tok.eos_id and tok.eos_id not in real[:-1]
        else:
            assert tok.eos_id not in real
    assert train.token_budget(5000, "base", 2048) == 2048 - 1 - 273
    assert train.token_budget(100, "tiny", 2048) == 100
    x = train.to_model_input(b["pixels"])
    assert x.shape == (3, 3, 640, 640) and float(x.min()) >= -1.0 and float(x.max()) <= 1.0


def test_workers_follow_the_shared_stage_index(corpus_dir):  # noqa: F811
    import multiprocessing as mp

    if not os.path.exists(TOKENIZER):
        pytest.skip("shipped tokenizer missing")
    stage = mp.Value("i", 0)
    ds = train.PageBatches(corpus_dir, "train", stage, TOKENIZER, batch_size=4, max_tokens=2048, seed=0,
                           max_positions=2048)
    it = iter(ds)
    rows = lambda b: int((b["glyphs"] > 0).any(dim=-1).any(dim=2).sum(dim=1).max())
    first = next(it)
    assert train.STAGES[0].max_rows <= 2 and rows(first) <= 2  # 2 text rows span at most 2 token rows
    stage.value = 3  # full pages
    assert max(rows(next(it)) for _ in range(3)) > 2


@pytest.mark.skipif(not os.path.exists(TOKENIZER), reason="shipped tokenizer missing")
def test_data_parallel_run_advances_stages_on_every_rank(tmp_path, corpus_dir):  # noqa: F811
    """Two CPU processes (gloo): gradients all-reduced, stage advances broadcast to every rank's workers."""
    import subprocess
    import sys

    cfg = tmp_path / "micro.json"
    cfg.write_text(json.dumps(MICRO))
    out = str(tmp_path / "ddp")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "ocr_model.train",
           "--config", str(cfg), "--corpus", corpus_dir, "--out", out, "--max-steps", "4", "--batch-size", "2",
           "--workers", "1", "--eval-every", "2", "--eval-pages", "2", "--eval-full", "0", "--advance-at", "0",
           "--decode-tokens", "4", "--device", "cpu", "--tokenizer", TOKENIZER]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    log = _log(out)
    assert [r["stage"] for r in log if r.get("event") == "advance"] == ["rows6", "rows16"]
    done = [r for r in log if r.get("event") == "done"][-1]
    assert done["step"] == 4 and done["pages"] == 4 * 2 * 2  # both ranks contributed every step
    state = json.loads(Path(out, "ckpt", "state.json").read_text())
    assert state["stage"] == 2 and state["step"] == 4


def test_tier_weights_parse_and_steer_the_tier_mix(corpus_dir):  # noqa: F811
    import multiprocessing as mp
    from types import SimpleNamespace

    assert train.parse_tier_weights("tiny=2.5, small=1.5") == {"tiny": 2.5, "small": 1.5}
    assert train.parse_tier_weights(None) == {}
    for bad in ("huge=2", "tiny", "tiny=x", "tiny=-1"):
        with pytest.raises(ValueError, match="--tier-weights"):
            train.parse_tier_weights(bad)
    if not os.path.exists(TOKENIZER):
        pytest.skip("shipped tokenizer missing")
    # stage 5 shows base/small/tiny; weight 0 removes base and small: every batch is a tiny (512 px) one
    ds = train.PageBatches(corpus_dir, "train", mp.Value("i", 5), TOKENIZER, batch_size=1, max_tokens=2048, seed=0,
                           max_positions=2048, tier_weights={"base": 0.0, "small": 0.0})
    it = iter(ds)
    assert {tuple(next(it)["pixels"].shape[-2:]) for _ in range(4)} == {(512, 512)}
    # the lr schedule: warmup, flat, then the last --decay-minutes fall linearly to 10% of peak
    a = SimpleNamespace(lr=1.0, warmup=10, resume=None, decay_minutes=4.0, minutes=20.0)
    assert train.lr_at(a, 4, 0.0) == pytest.approx(0.5)
    assert train.lr_at(a, 100, 15.0) == 1.0
    assert train.lr_at(a, 100, 18.0) == pytest.approx(0.5)
    assert train.lr_at(a, 100, 25.0) == pytest.approx(0.1)


def test_tier_reuse_draws_each_page_once_for_several_tiers(corpus_dir):  # noqa: F811
    import multiprocessing as mp
    import random

    if not os.path.exists(TOKENIZER):
        pytest.skip("shipped tokenizer missing")
    ts = train.pick_tiers(("base", "small", "tiny"), {"tiny": 5}, 2, random.Random(0))
    assert len(ts) == 2 and len(set(ts)) == 2
    assert sorted(train.pick_tiers(("base", "small"), {}, 5, random.Random(0))) == ["base", "small"]
    ds = train.PageBatches(corpus_dir, "train", mp.Value("i", 5), TOKENIZER, batch_size=2, max_tokens=2048,
                           seed=0, max_positions=2048, tier_reuse=2)
    it = iter(ds)
    a, b = next(it), next(it)
    assert a["tier"] != b["tier"]  # the same pages at two tiers, one batch each
    assert a["input_ids"].equal(b["input_ids"])
    cells = lambda x: sorted(int(v) for v in x["glyphs"][x["glyphs"] > 0].tolist())
    assert cells(a) == cells(b)  # every cell's class is in both, whatever the grid


@pytest.mark.skipif(not os.path.exists(TOKENIZER), reason="shipped tokenizer missing")
def test_text_every_skips_the_decoder_on_glyph_only_steps(tmp_path, corpus_dir):  # noqa: F811
    cfg = tmp_path / "micro.json"
    cfg.write_text(json.dumps(MICRO))
    out = str(tmp_path / "run")
    train.main(["--config", str(cfg), "--max-steps", "25", "--eval-every", "100", "--corpus", corpus_dir,
                "--out", out, "--batch-size", "1", "--workers", "0", "--eval-pages", "1", "--eval-full", "0",
                "--device", "cpu", "--tokenizer", TOKENIZER, "--text-every", "5", "--tier-reuse", "2"])
    rec = [r for r in _log(out) if r.get("step") == 25 and "glyph_loss" in r][0]
    assert rec["text_loss"] == rec["text_loss"] and rec["glyph_loss"] == rec["glyph_loss"]  # both logged, finite
    with pytest.raises(SystemExit):
        train.main(["--config", str(cfg), "--out", out, "--text-every", "0"])


def test_a_gist_stage_reads_gist_only_on_its_own_pages_and_beside_one_other_tier():
    import random

    stage = next(s for s in train.STAGES if s.name == "gist")
    rng, rounds = random.Random(0), []
    for _ in range(400):
        tiers, pages = train.round_tiers(stage, {}, 3, rng)
        assert len(set(tiers)) == len(tiers)
        if "gist" in tiers:
            assert len(tiers) == 2 and pages.mix == train.GIST_MIX
        else:
            assert len(tiers) == 3 and pages.mix == stage.mix
        rounds.append("gist" in tiers)
    assert 0.5 < sum(rounds) / len(rounds) < 0.7  # gist_share 0.6
    plain = next(s for s in train.STAGES if s.name == "cjk")
    assert train.round_tiers(plain, {}, 3, random.Random(0))[1] is plain
    assert train.gist_pages(stage).mix == train.GIST_MIX and train.gist_pages(plain) is plain
    kinds = {k for k, _ in train.GIST_MIX} | {k for k, _ in train.CJK_CYR_MIX}
    assert kinds <= set(train.data.ALL_KINDS)
