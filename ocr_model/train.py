"""Train the optical reader: DeepEncoder + MoE decoder, with a per-region glyph loss and a curriculum.

    python -m ocr_model.train --config small --corpus corpus/ --out runs/r1 --minutes 20
    torchrun --nproc_per_node 2 -m ocr_model.train ...           # data parallel over the GPUs of one host
    python -m ocr_model.train ... --resume runs/r1/ckpt             # same run: weights, optimizer, stage, step
    python -m ocr_model.train ... --init ocr_model/weights/optimem-small   # new run from shipped weights

Why the glyph loss: a plain end-to-end recipe lets the decoder learn a language model and ignore the image.
The renderer tells us exactly which character sits in every cell, so each visual token (after the projector,
the very vectors the decoder reads) is asked to name the characters of its page region, slot by slot
(`ocr_model.glyphs.slot_table`). That gives the vision tower a dense, exact signal from step 0.

The curriculum advances on held-out glyph accuracy (non-blank cells), never on the clock: one or two rows
of mostly random characters at 1024 px, then more rows, full pages, then the 640/512/384 px tiers.

Logs: `<out>/log.jsonl` (one JSON object per log/eval line) and stdout. Checkpoints: `<out>/ckpt/`
(model shards + glyph heads + optimizer, all safetensors; `state.json` holds step, stage and RNG seeds).
"""
from __future__ import annotations

import argparse
import dataclasses
import faulthandler
import json
import multiprocessing as mp
import os
import random
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ocr_model import data, glyphs
from ocr_model.config import load_config
from ocr_model.glyphs import make_glyph_heads, save_glyph_heads
from ocr_model.tokenizer import Tokenizer
from ocr_model.weights import build_model, load_pretrained, save_pretrained
from ocr_model import page as pg

TIER_GRID = {name: t.grid for name, t in pg.TIERS.items()}

MEMORY_MIX = (("chat", 0.30), ("fenced_code", 0.07), ("latin", 0.05), ("greek", 0.03), ("cyrillic", 0.04), ("zh", 0.05),
              ("ja", 0.04), ("ko", 0.04), ("all_glyphs", 0.08), ("emoji", 0.03), ("lookalikes", 0.03), ("symbols", 0.02),
              ("random_chars", 0.05), ("random_words", 0.04), ("structured", 0.04), ("prose", 0.04), ("dialogue", 0.02),
              ("code", 0.03))
# run s5 on: the weakest scripts of run s4's evaluation (Hangul, CJK, Cyrillic, emoji) seen about 1.4x as often,
# and no gist pages (the gist head is not shipped); every page is read at all three tiers (--tier-reuse 3)
SCRIPTS_MIX = (("chat", 0.26), ("fenced_code", 0.07), ("latin", 0.06), ("greek", 0.03), ("cyrillic", 0.06),
               ("zh", 0.07), ("ja", 0.05), ("ko", 0.06), ("all_glyphs", 0.07), ("emoji", 0.04), ("lookalikes", 0.03),
               ("symbols", 0.02), ("random_chars", 0.04), ("random_words", 0.03), ("structured", 0.04),
               ("prose", 0.03), ("dialogue", 0.02), ("code", 0.03))
# run s7 on: what run s6 still missed at small and tiny - Chinese, Japanese, Korean (each ~1.45x SCRIPTS_MIX's
# share) and Cyrillic - taken from the conversation pages (which mix every script anyway) and all_glyphs
CJK_MIX = (("chat", 0.21), ("fenced_code", 0.07), ("latin", 0.06), ("greek", 0.03), ("cyrillic", 0.07),
           ("zh", 0.10), ("ja", 0.07), ("ko", 0.09), ("all_glyphs", 0.05), ("emoji", 0.04), ("lookalikes", 0.03),
           ("symbols", 0.02), ("random_chars", 0.03), ("random_words", 0.03), ("structured", 0.04),
           ("prose", 0.03), ("dialogue", 0.01), ("code", 0.03))
# run s8 on: the gist tier (384 px, 36 tokens) trained on Latin-script pages of its own (`GIST_MIX`, a quarter of
# the steps), and Cyrillic, the one script still below target at base, ~1.3x CJK_MIX's share
CJK_CYR_MIX = tuple((k, {"chat": 0.19, "cyrillic": 0.09}.get(k, w)) for k, w in CJK_MIX)
GIST_MIX = (("prose", 0.25), ("dialogue", 0.12), ("chat", 0.15), ("code", 0.10), ("fenced_code", 0.08),
            ("random_words", 0.10), ("structured", 0.10), ("latin", 0.05), ("symbols", 0.05))

STAGES = (
    data.Stage("rows2", max_rows=2, mix=(("random_chars", 0.5), ("random_words", 0.2), ("structured", 0.1),
                                         ("prose", 0.1), ("code", 0.1))),
    data.Stage("rows6", max_rows=6),
    data.Stage("rows16", max_rows=16),
    data.Stage("full", max_rows=pg.ROWS, min_rows=12),
    data.Stage("full+small", max_rows=pg.ROWS, min_rows=12, tiers=("base", "small")),
    data.Stage("all-tiers", max_rows=pg.ROWS, min_rows=12, tiers=("base", "small", "tiny")),
    data.Stage("all-tiers+gist", max_rows=pg.ROWS, min_rows=12, tiers=("base", "small", "tiny", "gist", "large")),
    # run s4 on: what Memory draws (dense conversation pages, fenced code, every script, emoji, look-alikes)
    data.Stage("memory", max_rows=pg.ROWS, min_rows=12, tiers=("base", "small", "tiny", "gist"), mix=MEMORY_MIX),
    data.Stage("scripts", max_rows=pg.ROWS, min_rows=12, tiers=("base", "small", "tiny"), mix=SCRIPTS_MIX),
    data.Stage("cjk", max_rows=pg.ROWS, min_rows=12, tiers=("base", "small", "tiny"), mix=CJK_MIX),
    data.Stage("gist", max_rows=pg.ROWS, min_rows=12, tiers=("base", "small", "tiny", "gist"), mix=CJK_CYR_MIX,
               gist_mix=GIST_MIX, gist_share=0.6),
)


# ----------------------------------------------------------------------------------------------------------
# batches: rendered by DataLoader workers, one tier per batch

class PageBatches(torch.utils.data.IterableDataset):
    """Endless batches for the current curriculum stage. The stage index lives in shared memory, so the
    trainer advances the curriculum without tearing down its render workers (recreating a DataLoader
    mid-run crashed a 4-GPU run: the old workers' shared-memory batches piled up)."""

    def __init__(self, corpus_dir: str, split: str, stage_index, tokenizer_path: str, batch_size: int,
                 max_tokens: int, seed: int, max_positions: int, tier_weights: dict[str, float] | None = None,
                 stored: float = 0.0, tier_reuse: int = 1):
        self.corpus_dir, self.split, self.stage_index = corpus_dir, split, stage_index
        self.tier_weights, self.stored, self.tier_reuse = tier_weights or {}, stored, tier_reuse
        self.tokenizer_path, self.batch_size, self.max_tokens, self.seed = tokenizer_path, batch_size, max_tokens, seed
        self.max_positions = max_positions

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid = info.id if info is not None else 0
        rng = random.Random(self.seed * 1000 + wid)
        corpus = data.Corpus(self.corpus_dir, self.split)
        tok = Tokenizer.from_file(self.tokenizer_path)
        while True:
            stage = STAGES[self.stage_index.value]
            tiers, stage = round_tiers(stage, self.tier_weights, self.tier_reuse, rng)
            budget = min(token_budget(self.max_tokens, t, self.max_positions) for t in tiers)
            yield from make_batches(corpus, tok, stage, tiers, self.batch_size, budget, rng, stored=self.stored)


def parse_tier_weights(spec: str | None) -> dict[str, float]:
    """'tiny=2.5,small=1.5' -> {'tiny': 2.5, 'small': 1.5}; tiers not named keep weight 1."""
    out = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        name, sep, w = part.partition("=")
        name = name.strip()
        if not sep or name not in TIER_GRID:
            raise ValueError(f"--tier-weights: expected TIER=WEIGHT with TIER in {sorted(TIER_GRID)}, got {part!r}")
        try:
            out[name] = float(w)
        except ValueError:
            raise ValueError(f"--tier-weights: weight of {name} must be a number, got {w!r}") from None
        if out[name] < 0:
            raise ValueError(f"--tier-weights: weight of {name} must be >= 0, got {w!r}")
    return out


def lr_at(args, step: int, minutes: float) -> float:
    """Peak lr after a linear warmup (skipped on --resume), then, in the last --decay-minutes of the wall-clock
    budget, a linear decay to 10% of peak (a warmup-stable-decay schedule: the next run re-warms from here)."""
    lr = args.lr * min(1.0, (step + 1) / args.warmup) if not args.resume else args.lr
    if args.decay_minutes > 0:
        lr *= max(0.1, min(1.0, (args.minutes - minutes) / args.decay_minutes))
    return lr


def token_budget(max_tokens: int, tier: str, max_positions: int) -> int:
    """Text tokens (incl. EOS) that fit after [BOS] + the tier's visual positions in `max_positions`."""
    return min(max_tokens, max_positions - 1 - pg.geometry.decoder_positions(TIER_GRID[tier]))


def round_tiers(stage, weights: dict[str, float], k: int, rng: random.Random):
    """(tiers, stage whose mix the pages come from) of one render round. In a stage with a gist_mix, a
    gist_share of the rounds are gist + one other tier on gist_mix pages, and the rest never read gist."""
    if stage.gist_mix is None:
        return pick_tiers(stage.tiers, weights, k, rng), stage
    others = [t for t in stage.tiers if t != "gist"]
    if rng.random() < stage.gist_share:
        return ["gist"] + pick_tiers(others, weights, min(1, k - 1), rng), gist_pages(stage)
    return pick_tiers(others, weights, k, rng), stage


def gist_pages(stage):
    """The stage whose pages a gist read is trained and evaluated on (itself unless it has a gist_mix)."""
    return stage if stage.gist_mix is None else dataclasses.replace(stage, mix=stage.gist_mix)


def pick_tiers(tiers, weights: dict[str, float], k: int, rng: random.Random) -> list[str]:
    """k distinct tiers of a stage drawn by weight without replacement (all of them when k >= len(tiers))."""
    pool, out = list(tiers), []
    while pool and len(out) < k:
        t = rng.choices(pool, [weights.get(x, 1.0) for x in pool])[0]
        out.append(t)
        pool.remove(t)
    return out


def make_batches(corpus, tok, stage, tiers, batch_size, max_tokens, rng, kind=None, stored: float = 0.0) -> list[dict]:
    """One batch per tier in `tiers`, all of the same rendered pages: laying out and drawing a page costs
    more than resampling it, so --tier-reuse K makes the render workers ~K times as productive."""
    pages, ids = [], []
    for _ in range(batch_size):
        page, _, _ = data.make_page(corpus, stage, rng, kind)
        pages.append(page)
        x = tok.encode(page.text) + [tok.eos_id]
        # a page too long for the budget is a prefix with NO end-of-text: teaching EOS mid-page would teach
        # the reader to stop early on dense pages
        ids.append(x[:max_tokens])
    T = max(len(x) for x in ids)
    input_ids = torch.full((batch_size, T), tok.pad_id, dtype=torch.long)
    labels = torch.full((batch_size, T), -100, dtype=torch.long)
    for b, x in enumerate(ids):
        input_ids[b, : len(x)] = torch.tensor(x)
        labels[b, : len(x)] = torch.tensor(x)
    out = []
    for tier in tiers:
        grid = TIER_GRID[tier]
        pixels = np.stack([data.page_pixels(p, tier, rng, stored) for p in pages])
        glyph = np.stack([data.glyph_targets(p, grid) for p in pages])
        out.append({"tier": tier, "pixels": torch.from_numpy(pixels), "glyphs": torch.from_numpy(glyph).short(),
                    "input_ids": input_ids, "labels": labels})
    return out


def make_batch(corpus, tok, stage, tier, batch_size, max_tokens, rng, kind=None, stored: float = 0.0) -> dict:
    return make_batches(corpus, tok, stage, [tier], batch_size, max_tokens, rng, kind, stored)[0]


def to_model_input(pixels_u8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, S, S) grayscale -> float (B, 3, S, S) in [-1, 1] (mean/std 0.5, as ocr_model.image_process)."""
    x = pixels_u8.float().div_(127.5).sub_(1.0)
    return x.unsqueeze(1).expand(-1, 3, -1, -1)


# ----------------------------------------------------------------------------------------------------------
# loss and evaluation

def compute_losses(model, heads, batch, device, glyph_weight: float, aux_weight: float, shuffle_images=False,
                   blank_share: float = 0.25, text: bool = True):
    """Glyph loss on the token grid plus (with `text`) the decoder's next-token loss and the MoE balance loss.
    text=False skips the decoder entirely (--text-every: the glyph heads are the shipped reader)."""
    pixels = to_model_input(batch["pixels"].to(device, non_blocking=True))
    glyphs = batch["glyphs"].to(device, non_blocking=True).long()
    input_ids = batch["input_ids"].to(device, non_blocking=True)
    labels = batch["labels"].to(device, non_blocking=True)
    grid = model.encode_grid(pixels)  # (B, h, w, D)
    head = heads[str(grid.shape[1])]
    feats = head.features(grid)  # (B, h, w, S, E)
    # classify only slots that own a cell, and a quarter of the blank ones: with ~17k classes the logits of
    # every slot would be tens of GB; blank cells are the easy majority
    keep = (glyphs > 0) | ((glyphs == 0) & (torch.rand(glyphs.shape, device=glyphs.device) < blank_share))
    target = glyphs[keep]  # (N,)
    logits = head.cls(feats[keep]).float()  # (N, classes)
    glyph_loss = F.cross_entropy(logits, target)
    with torch.no_grad():
        pred = logits.argmax(-1)
        real = target > 0  # non-blank cells
        glyph_acc = ((pred == target) & real).sum() / real.sum().clamp(min=1)
    if not text:
        return glyph_weight * glyph_loss, {"glyph_loss": glyph_loss.detach(), "glyph_acc": glyph_acc.detach()}, None
    visual = model.layout_visual(grid)
    if shuffle_images:
        visual = visual.roll(1, dims=0)
    out = model(input_ids=input_ids, visual=visual, labels=labels)
    loss = out.loss + glyph_weight * glyph_loss + aux_weight * (out.aux_loss if out.aux_loss is not None else 0.0)
    return loss, {"text_loss": out.loss.detach(), "glyph_loss": glyph_loss.detach(), "glyph_acc": glyph_acc.detach(),
                  "aux": (out.aux_loss.detach() if out.aux_loss is not None else torch.zeros((), device=device))}, out


@torch.no_grad()
def greedy_precision(model, batch: dict, tokenizer, device, autocast, n_pages: int = 8, max_new_tokens: int = 300) -> float:
    """Mean character precision of plain greedy decodes (eager loop) against the pages' text prefixes."""
    from ocr_model.eval import char_precision

    pixels = to_model_input(batch["pixels"][:n_pages].to(device))
    with autocast:
        gens = model.generate(model.encode(pixels), max_new_tokens=max_new_tokens, cuda_graph=False)
    scores = []
    for g, ids in zip(gens, batch["input_ids"][:n_pages].tolist()):
        ref_ids = [t for t in ids if t not in (tokenizer.pad_id, tokenizer.eos_id)][: len(g.token_ids) if not g.eos else None]
        scores.append(char_precision(tokenizer.decode(ref_ids), tokenizer.decode(g.token_ids)))
    return float(np.mean(scores))


@torch.no_grad()
def evaluate(model, heads, batches: list[dict], device, autocast, tokenizer=None, decode_tokens: int = 300) -> dict:
    """Held-out glyph accuracy, teacher-forced token accuracy, and the image-usage gap (other page - real);
    with a tokenizer, also the character precision of greedy decodes of the first batch's first pages."""
    model.eval()
    sums: dict[str, float] = {}
    if tokenizer is not None:
        sums[f"{batches[0]['tier']}/greedy_cp"] = greedy_precision(model, batches[0], tokenizer, device, autocast,
                                                                   max_new_tokens=decode_tokens)
    for batch in batches:
        with autocast:
            _, m, out = compute_losses(model, heads, batch, device, 0.0, 0.0)
            _, m_shuf, _ = compute_losses(model, heads, batch, device, 0.0, 0.0, shuffle_images=True)
        labels = batch["labels"].to(device)
        pred = out.logits.argmax(-1)  # logits[:, t] predicts input_ids[:, t] (OpticalModel.forward)
        tok_acc = ((pred == labels) & (labels >= 0)).sum() / (labels >= 0).sum()
        tier = batch["tier"]
        for k, v in (("glyph_acc", m["glyph_acc"]), ("text_loss", m["text_loss"]), ("tok_acc", tok_acc),
                     ("gap", m_shuf["text_loss"] - m["text_loss"])):
            sums[f"{tier}/{k}"] = sums.get(f"{tier}/{k}", 0.0) + float(v) / sum(b["tier"] == tier for b in batches)
    model.train()
    return sums


# ----------------------------------------------------------------------------------------------------------
# checkpoints (safetensors only: nothing here is ever unpickled)

def save_checkpoint(path, model, heads, opt, state: dict, tokenizer) -> None:
    tmp = path + ".tmp"
    os.makedirs(tmp, exist_ok=True)
    save_pretrained(model, tokenizer, tmp, dtype=torch.bfloat16)
    save_glyph_heads(heads, tmp)
    names = {id(p): n for n, p in list(model.named_parameters()) + [("glyph." + n, p) for n, p in heads.named_parameters()]}
    opt_state = {}
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p)
            if st:
                for k in ("exp_avg", "exp_avg_sq"):
                    opt_state[f"{names[id(p)]}::{k}"] = st[k].detach().contiguous()
                opt_state[f"{names[id(p)]}::step"] = torch.as_tensor(st["step"], dtype=torch.float32).reshape(1)
    save_file(opt_state, os.path.join(tmp, "optimizer.safetensors"))
    with open(os.path.join(tmp, "state.json"), "w") as f:
        json.dump(state, f, indent=1)
    if os.path.exists(path):
        os.rename(path, path + ".old")
    os.rename(tmp, path)
    if os.path.exists(path + ".old"):
        import shutil
        shutil.rmtree(path + ".old")


def load_optimizer(path, model, heads, opt) -> None:
    f = os.path.join(path, "optimizer.safetensors")
    if not os.path.exists(f):
        return
    saved = load_file(f)
    params = dict(list(model.named_parameters()) + [("glyph." + n, p) for n, p in heads.named_parameters()])
    for name, p in params.items():
        if f"{name}::exp_avg" in saved:
            opt.state[p] = {"exp_avg": saved[f"{name}::exp_avg"].to(p.device), "exp_avg_sq": saved[f"{name}::exp_avg_sq"].to(p.device),
                            "step": saved[f"{name}::step"].reshape(()).to(p.device) if opt.defaults.get("capturable") or opt.defaults.get("fused")
                            else saved[f"{name}::step"].reshape(())}


# ----------------------------------------------------------------------------------------------------------

def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m ocr_model.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="small", help="preset name or config JSON (ignored with --resume/--init)")
    ap.add_argument("--tokenizer", default="ocr_model/weights/optimem-small/tokenizer.json", help="tokenizer.json to use")
    ap.add_argument("--corpus", default="corpus", help="corpus directory from `python -m ocr_model.data build`")
    ap.add_argument("--out", required=True, help="run directory (log.jsonl, ckpt/)")
    ap.add_argument("--resume", default=None, help="checkpoint dir of the same run: weights, optimizer, stage, step")
    ap.add_argument("--init", default=None, help="start a new run from these weights (a save_pretrained dir)")
    ap.add_argument("--minutes", type=float, default=20.0, help="stop (and checkpoint) after this much wall time")
    ap.add_argument("--max-steps", type=int, default=10**9, help="stop after this many steps")
    ap.add_argument("--batch-size", type=int, default=48, help="pages per GPU per step")
    ap.add_argument("--max-tokens", type=int, default=1700, help="text tokens kept per page (incl. EOS; also capped by max_positions)")
    ap.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (constant after warmup)")
    ap.add_argument("--warmup", type=int, default=200, help="linear warmup steps")
    ap.add_argument("--decay-minutes", type=float, default=0.0, help="decay lr linearly to 10%% over the last N of --minutes")
    ap.add_argument("--stored-share", type=float, default=0.5,
                    help="share of training pages shown as Memory stores them (16 greys, faded tier by tier; see data.page_pixels)")
    ap.add_argument("--tier-weights", default=None, help="sampling weight per tier within a stage, e.g. tiny=2.5,small=1.5 (others 1)")
    ap.add_argument("--head-lr-scale", type=float, default=1.0,
                    help="learning rate of the glyph heads as a multiple of --lr (new classes learn faster with more)")
    ap.add_argument("--weight-decay", type=float, default=0.05, help="AdamW weight decay on matrices")
    ap.add_argument("--glyph-weight", type=float, default=1.0, help="weight of the per-region glyph loss")
    ap.add_argument("--aux-weight", type=float, default=1.0, help="multiplier on the MoE balance loss (already scaled by aux_loss_alpha)")
    ap.add_argument("--advance-at", type=float, default=0.9, help="held-out glyph accuracy that advances the curriculum")
    ap.add_argument("--stage", type=int, default=None, help="force the starting curriculum stage index")
    ap.add_argument("--eval-every", type=int, default=200, help="steps between held-out evaluations")
    ap.add_argument("--eval-pages", type=int, default=32, help="held-out pages per evaluation batch (2 batches per tier)")
    ap.add_argument("--eval-full", type=int, default=1, help="1: also evaluate full 1024 px pages at every stage")
    ap.add_argument("--decode-every", type=int, default=1000, help="steps between greedy-decode checks (0: never)")
    ap.add_argument("--decode-tokens", type=int, default=300, help="new tokens per page in the greedy-decode check")
    ap.add_argument("--ckpt-every", type=int, default=300, help="steps between checkpoints")
    ap.add_argument("--text-every", type=int, default=1,
                    help="decoder text loss on every Nth step only (others: glyph loss alone, ~2x faster steps)")
    ap.add_argument("--tier-reuse", type=int, default=1,
                    help="each rendered page is used at this many distinct tiers (in consecutive batches)")
    ap.add_argument("--workers", type=int, default=12, help="render workers per GPU")
    ap.add_argument("--seed", type=int, default=1234, help="base random seed")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda or cpu")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    args = ap.parse_args(argv)
    try:
        tier_weights = parse_tier_weights(args.tier_weights)
    except ValueError as e:
        ap.error(str(e))
    if args.text_every < 1 or args.tier_reuse < 1:
        ap.error(f"--text-every and --tier-reuse are counts >= 1, got {args.text_every} and {args.tier_reuse}")
    if not 0.0 <= args.stored_share <= 1.0:
        ap.error(f"--stored-share is a probability in [0, 1], got {args.stored_share}")

    # batches are large tensors handed over by many worker processes: share them through files, not
    # file descriptors (the fd strategy ran out of descriptors with 4 ranks x 14 workers)
    torch.multiprocessing.set_sharing_strategy("file_system")
    faulthandler.enable()  # a crash in any rank prints its Python stack into the log
    distributed = "RANK" in os.environ
    if distributed and args.device == "cuda":
        dist.init_process_group("nccl")
        rank, world = dist.get_rank(), dist.get_world_size()
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    elif distributed:  # CPU processes (gloo): lets the data-parallel logic be checked without a GPU
        dist.init_process_group("gloo")
        rank, world, device = dist.get_rank(), dist.get_world_size(), torch.device("cpu")
    else:
        rank, world, device = 0, 1, torch.device(args.device)
    master = rank == 0
    os.makedirs(args.out, exist_ok=True)

    state = {"step": 0, "stage": 0, "pages": 0, "seconds": 0.0, "seed": args.seed}
    src = args.resume or args.init
    if src:
        model, tokenizer = load_pretrained(src, device="cpu", dtype=torch.float32)  # fp32 master weights
        if args.resume and os.path.exists(os.path.join(src, "state.json")):
            with open(os.path.join(src, "state.json")) as f:
                state.update(json.load(f))
    else:
        cfg = load_config(args.config)
        model = build_model(cfg, device="cpu", dtype=torch.float32)
        tokenizer = Tokenizer.from_file(args.tokenizer)
    if args.stage is not None:
        state["stage"] = args.stage
    tok_path = os.path.join(args.out, "tokenizer.json")
    if master:
        tokenizer.save(tok_path)
    if distributed:
        dist.barrier()
    model.to(device).train()
    n_cls = glyphs.n_classes_()
    heads = make_glyph_heads(model.cfg.decoder.dim, TIER_GRID.values(), n_classes=n_cls)
    stored = glyphs.load_glyph_heads(src, model.cfg.decoder.dim, n_classes=n_cls) if src else None
    if stored is not None:
        # one loader for bf16 and int8 heads; heads of fewer classes are widened (new classes start silent);
        # a shipped model may carry heads for some grids only: the others start fresh
        missing, unexpected = heads.load_state_dict(stored.state_dict(), strict=False)
        if unexpected:
            raise SystemExit(f"{src}/{glyphs.FILENAME} has heads this trainer does not know: {unexpected[:4]}")
        if master and missing:
            print(f"glyph heads not in {src}, starting fresh: grids {sorted({k.split('.')[0] for k in missing})}")
    heads = heads.to(device)
    if distributed:  # same start on every rank
        for p in list(model.parameters()) + list(heads.parameters()):
            dist.broadcast(p.data, 0)

    params = [p for p in list(model.parameters()) + list(heads.parameters()) if p.requires_grad]
    head_ids = {id(p) for p in heads.parameters()}
    groups = []
    for in_heads, scale in ((False, 1.0), (True, args.head_lr_scale)):
        mine = [p for p in params if (id(p) in head_ids) == in_heads]
        groups += [{"params": [p for p in mine if p.dim() >= 2], "weight_decay": args.weight_decay, "lr_scale": scale},
                   {"params": [p for p in mine if p.dim() < 2], "weight_decay": 0.0, "lr_scale": scale}]
    opt = torch.optim.AdamW(groups,
                            lr=args.lr, betas=(0.9, 0.95), fused=device.type == "cuda")
    if args.resume:
        load_optimizer(args.resume, model, heads, opt)
    fwd_model = torch.compile(model) if args.compile else model
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    shared_stage = mp.Value("i", state["stage"])  # read by every render worker before each batch
    max_positions = model.cfg.decoder.max_positions
    ds = PageBatches(args.corpus, "train", shared_stage, tok_path, args.batch_size, args.max_tokens,
                     seed=args.seed + 7919 * rank + 104729 * state["step"], max_positions=max_positions,
                     tier_weights=tier_weights, stored=args.stored_share, tier_reuse=args.tier_reuse)
    batches = iter(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=args.workers, pin_memory=device.type == "cuda",
                                               prefetch_factor=2 if args.workers else None))

    heldout = data.Corpus(args.corpus, "heldout")
    eval_tok = Tokenizer.from_file(tok_path)

    def eval_batches(stage_idx: int) -> list[dict]:
        rng = random.Random(99)  # the same held-out pages at every evaluation of a stage
        stage = STAGES[stage_idx]
        n = args.eval_pages
        out = [make_batch(heldout, eval_tok, gist_pages(stage) if tier == "gist" else stage, tier, n,
                          token_budget(args.max_tokens, tier, max_positions), rng)
               for tier in stage.tiers for _ in range(2)]
        if stage.name != "full" and args.eval_full:  # also track full 1024 px pages: the first milestone
            out += [make_batch(heldout, eval_tok, STAGES[3], "base", n, token_budget(args.max_tokens, "base", max_positions), rng)]
            out[-1]["tier"] = "fullbase"
        return out

    logf = open(os.path.join(args.out, "log.jsonl"), "a") if master else None

    def log(rec: dict) -> None:
        if master:
            rec = {k: (round(v, 5) if isinstance(v, float) else v) for k, v in rec.items()}
            print(json.dumps(rec), flush=True)
            logf.write(json.dumps(rec) + "\n")
            logf.flush()

    log({"event": "start", "world": world, "params": sum(p.numel() for p in model.parameters()),
         "glyph_head_params": sum(p.numel() for p in heads.parameters()), "args": vars(args), "state": state})
    stage_idx = state["stage"]
    ev = eval_batches(stage_idx) if master else None
    t0, t_last, pages_last = time.time(), time.time(), state["pages"]
    seconds0 = state["seconds"]
    acc = {}
    elapsed = 0.0  # wall minutes of this run as rank 0 saw them at the last sync (every 25 steps)
    while True:
        step = state["step"]
        lr = lr_at(args, step, elapsed)
        for g in opt.param_groups:
            g["lr"] = lr * g["lr_scale"]
        batch = next(batches)
        text_step = step % args.text_every == 0
        with autocast:
            loss, m, _ = compute_losses(fwd_model, heads, batch, device, args.glyph_weight, args.aux_weight,
                                        text=text_step)
        # no gradient (None) for the decoder on glyph-only steps: AdamW then leaves it as it is, instead of
        # moving it on momentum and weight decay
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if distributed:  # one flat all-reduce of every gradient (unused heads contribute zeros)
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat)
            flat /= world
            off = 0
            for p, g in zip(params, grads):
                n = g.numel()
                p.grad = flat[off:off + n].view_as(p)
                off += n
        gnorm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        # skip a step with a non-finite gradient without a host sync: zero the update by scaling lr per group
        finite = torch.isfinite(gnorm)
        for p in params:
            if p.grad is not None:
                p.grad.nan_to_num_(0.0, 0.0, 0.0).mul_(finite.to(p.grad.dtype))
        opt.step()
        state["step"] += 1
        state["pages"] += args.batch_size * world
        for k, v in m.items():
            acc[k] = acc.get(k, 0.0) + v
            acc["n:" + k] = acc.get("n:" + k, 0) + 1  # text_loss is absent on glyph-only steps
        if state["step"] % 25 == 0:
            now = time.time()
            rec = {"step": state["step"], "stage": STAGES[stage_idx].name, "lr": lr,
                   "pages_per_s": (state["pages"] - pages_last) / (now - t_last), "gnorm": float(gnorm),
                   "minutes": (now - t0) / 60}
            rec.update({k: float(v) / acc["n:" + k] for k, v in acc.items() if not k.startswith("n:")})
            log(rec)
            acc, t_last, pages_last = {}, now, state["pages"]
        done = state["step"] >= args.max_steps
        if state["step"] % 25 == 0:  # the clock decides on rank 0 only: every rank stops (and decays lr) alike
            clock = torch.tensor((time.time() - t0) / 60, device=device, dtype=torch.float64)
            if distributed:
                dist.broadcast(clock, 0)
            elapsed = float(clock.item())
            done = done or elapsed >= args.minutes
        if state["step"] % args.eval_every == 0 or done:
            advance = torch.zeros((), device=device)
            if master:
                decode = args.decode_every and state["step"] % args.decode_every == 0
                res = evaluate(model, heads, ev, device, autocast, eval_tok if decode or done else None,
                               args.decode_tokens)
                log({"eval_step": state["step"], "stage": STAGES[stage_idx].name, **res})
                stage_tiers = STAGES[stage_idx].tiers
                ok = all(res.get(f"{t}/glyph_acc", 0.0) >= args.advance_at for t in stage_tiers)
                if ok and stage_idx + 1 < len(STAGES):
                    advance.fill_(1.0)
            if distributed:
                dist.broadcast(advance, 0)
            if advance.item() > 0:
                stage_idx += 1
                state["stage"] = stage_idx
                shared_stage.value = stage_idx
                log({"event": "advance", "step": state["step"], "stage": STAGES[stage_idx].name})
                ev = eval_batches(stage_idx) if master else None
                if master:  # keep every stage reached
                    save_checkpoint(os.path.join(args.out, "ckpt"), model, heads, opt, dict(state), tokenizer)
        if master and (state["step"] % args.ckpt_every == 0 or done):
            state["seconds"] = seconds0 + time.time() - t0
            save_checkpoint(os.path.join(args.out, "ckpt"), model, heads, opt, dict(state), tokenizer)
            log({"event": "checkpoint", "step": state["step"], "stage": STAGES[stage_idx].name})
        if done:
            break
    log({"event": "done", "step": state["step"], "pages": state["pages"], "minutes": (time.time() - t0) / 60})
    if distributed:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
