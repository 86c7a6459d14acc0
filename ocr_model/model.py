"""The full optical model: DeepEncoder -> visual token layout -> MoE decoder, plus generation.

Token layout (the official order). For one image with an h x w token grid:

    [BOS] [v(0,0) .. v(0,w-1) NL] .. [v(h-1,0) .. v(h-1,w-1) NL] [SEP] [input tokens ...]

NL is the learned `image_newline` vector, SEP the learned `view_seperator` (sic) vector; neither is a
vocabulary token. Gundam mode puts the stitched local tiles (with NL per row) before the global view.

Legend: B batch, S image side, h w token grid, D decoder dim, Tv visual positions, T text tokens,
P prefix length (BOS + visual + prompt), M max new tokens, V vocab.
"""
from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import OpticalConfig
from .deepencoder import ClipEncoder, Projector, SamEncoder, _init_vit_
from .moe_decoder import Decoder, KVCache

__all__ = ["OpticalModel", "Output", "Generation", "visual_positions", "ngram_ban", "ngram_ban_reference"]


@dataclass(frozen=True)
class Output:
    """logits [B,T,V]: logits[:, t] is the prediction *for* input_ids[:, t] (made at the position before it;
    the view separator predicts input 0). loss: mean token cross-entropy over labels != -100 (fp32), or None.
    aux_loss: the MoE balance loss, already weighted by aux_loss_alpha and summed over layers, while training
    (else None). Train on `loss + aux_loss`."""

    logits: torch.Tensor
    loss: torch.Tensor | None
    aux_loss: torch.Tensor | None


@dataclass(frozen=True)
class Generation:
    """token_ids: generated ids, without the final EOS. eos: whether generation ended with EOS (False means
    the length cap was hit: treat as a likely failure/repetition). logprobs: the model's log-probability of
    each token in token_ids (from the unmodified distribution, before the n-gram ban)."""

    token_ids: list[int]
    eos: bool
    logprobs: list[float]


def visual_positions(h: int, w: int) -> int:
    """LM positions one h x w grid takes: a newline after each row plus the final separator (for a square
    page grid: ocr_model.page.geometry.decoder_positions)."""
    return h * (w + 1) + 1


class OpticalModel(nn.Module):
    def __init__(self, cfg: OpticalConfig):
        super().__init__()
        self.cfg = cfg
        self.sam_model = SamEncoder(cfg.sam)
        self.vision_model = ClipEncoder(cfg.clip)
        self.projector = Projector(cfg.projector)
        d = cfg.decoder.dim
        self.image_newline = nn.Parameter(torch.empty(d))
        self.view_seperator = nn.Parameter(torch.empty(d))  # sic, the official name
        self.decoder = Decoder(cfg.decoder)
        self._graphs: OrderedDict = OrderedDict()  # CUDA-graph decode steps, by (batch, slots, dtype)
        self._graph_failed = False  # a failed capture in auto mode is not retried

    @torch.no_grad()
    def init_weights(self) -> None:
        _init_vit_(self.sam_model)
        _init_vit_(self.vision_model)
        _init_vit_(self.projector)
        std = 1.0 / math.sqrt(self.cfg.decoder.dim)
        nn.init.normal_(self.image_newline, std=std)
        nn.init.normal_(self.view_seperator, std=std)
        self.decoder.init_weights()

    @property
    def dtype(self) -> torch.dtype:
        return self.view_seperator.dtype

    @property
    def device(self) -> torch.device:
        return self.view_seperator.device

    # ------------------------------------------------------------------------------------- encoding

    def encode_grid(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values [B,3,S,S'] (normalised to [-1,1] by image_process) -> projector output [B,h,w,D]."""
        _check_pixels(pixel_values)
        x = pixel_values.to(device=self.device, dtype=self.sam_model.patch_embed.proj.weight.dtype)
        sam = self.sam_model(x)  # [B,C2,h,w]
        B, C2, h, w = sam.shape
        clip = self.vision_model(sam)  # [B,1+h*w,C2]
        feats = torch.cat([clip[:, 1:], sam.flatten(2).transpose(1, 2)], dim=-1)  # [B,h*w,Cclip+C2]
        return self.projector(feats).view(B, h, w, -1)  # [B,h,w,D]

    def layout_visual(self, grid: torch.Tensor) -> torch.Tensor:
        """[B,h,w,D] -> [B, h*(w+1)+1, D]: image_newline after every row, view_seperator at the end."""
        B, h, w, D = grid.shape
        nl = self.image_newline.to(grid.dtype).expand(B, h, 1, D)
        rows = torch.cat([grid, nl], dim=2).reshape(B, h * (w + 1), D)
        return torch.cat([rows, self.view_seperator.to(grid.dtype).expand(B, 1, D)], dim=1)

    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values [B,3,S,S] -> visual tokens [B,Tv,D], ready for forward/generate."""
        return self.layout_visual(self.encode_grid(pixel_values))

    def encode_gundam(self, global_view: torch.Tensor, tiles: torch.Tensor | None, grid: tuple[int, int]) -> torch.Tensor:
        """One Gundam-mode image (see image_process.to_gundam): global_view [1,3,1024,1024], tiles [n,3,640,640]
        in row-major order, grid = (tiles across, tiles down) -> visual tokens [1,Tv,D] with the stitched local
        grid (NL per row) first, then the global grid (NL per row), then the separator."""
        g = self.encode_grid(global_view)  # [1,h,w,D]
        _, h, w, D = g.shape
        glob = torch.cat([g, self.image_newline.to(g.dtype).expand(1, h, 1, D)], dim=2).reshape(1, h * (w + 1), D)
        parts = []
        if tiles is not None and tiles.shape[0] > 0:
            nw, nh = grid
            if nw * nh != tiles.shape[0]:
                raise ValueError(f"gundam grid {grid} needs {nw * nh} tiles, got {tiles.shape[0]}")
            t = self.encode_grid(tiles)  # [n,h2,w2,D]
            _, h2, w2, _ = t.shape
            t = t.view(nh, nw, h2, w2, D).permute(0, 2, 1, 3, 4).reshape(nh * h2, nw * w2, D)
            t = torch.cat([t, self.image_newline.to(t.dtype).expand(nh * h2, 1, D)], dim=1)
            parts.append(t.reshape(1, -1, D))
        parts += [glob, self.view_seperator.to(g.dtype).expand(1, 1, D)]
        return torch.cat(parts, dim=1)

    # ---------------------------------------------------------------------------------- LM forward

    def _prefix(self, visual: torch.Tensor | None, B: int) -> torch.Tensor:
        dc = self.cfg.decoder
        bos = self.decoder.embed_tokens.weight[dc.bos_id].expand(B, 1, dc.dim)  # [B,1,D]
        if visual is None:
            return bos
        if visual.dim() != 3 or visual.shape[0] != B or visual.shape[2] != dc.dim:
            raise ValueError(f"visual must be [B={B}, Tv, D={dc.dim}] from model.encode, got {tuple(visual.shape)}")
        return torch.cat([bos, visual.to(bos.dtype)], dim=1)

    def forward(
        self,
        input_ids: torch.Tensor,
        visual: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> Output:
        """Teacher-forced pass over [BOS] + visual + input_ids. input_ids/labels [B,T]; labels aligned with
        input_ids (-100 = ignore). Pad batches on the right: causal attention never lets real tokens see
        right padding, so no attention mask is needed."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be [B,T], got shape {tuple(input_ids.shape)}")
        B, T = input_ids.shape
        prefix = self._prefix(visual, B)  # [B,1+Tv,D]
        h = torch.cat([prefix, self.decoder.embed_tokens(input_ids)], dim=1)  # [B,1+Tv+T,D]
        L = h.shape[1]
        if L > self.cfg.decoder.max_positions:
            raise ValueError(f"sequence of {L} positions exceeds max_positions {self.cfg.decoder.max_positions}; "
                             "use a smaller mode or shorter text")
        positions = torch.arange(L, device=h.device).expand(B, L)
        hidden = self.decoder(h, positions)  # [B,L,D]
        P = prefix.shape[1]
        logits = self.decoder.lm_head(hidden[:, P - 1 : P - 1 + T])  # [B,T,V]
        loss = None
        if labels is not None:
            if labels.shape != input_ids.shape:
                raise ValueError(f"labels shape {tuple(labels.shape)} must equal input_ids shape {(B, T)}")
            loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100)
        return Output(logits=logits, loss=loss, aux_loss=self.decoder.aux_loss() if self.training else None)

    # ---------------------------------------------------------------------------------- generation

    @torch.inference_mode()
    def generate(
        self,
        visual: torch.Tensor | Sequence[torch.Tensor],
        *,
        prompt_ids: Sequence[int] | Sequence[Sequence[int]] | None = None,
        max_new_tokens: int,
        no_repeat_ngram: int = 30,
        ngram_window: int = 90,
        ngram_whitelist: Sequence[int] = (),
        eos_id: int | None = None,
        use_cache: bool = True,
        cuda_graph: bool | None = None,
    ) -> list[Generation]:
        """Greedy decoding for a batch of pages.

        visual: [B,Tv,D] from `encode`, or a list of [Tv_i,D] / [1,Tv_i,D] tensors of different lengths
        (rows are left-padded). prompt_ids: one prompt for every row, or one per row (default: none).
        no_repeat_ngram / ngram_window: the official windowed n-gram ban over the generated ids (0 disables).
        use_cache=False recomputes the whole sequence each step (the reference path, for tests).
        cuda_graph: replay the decode step as a CUDA graph; default on when the model is on CUDA.
        """
        dc = self.cfg.decoder
        eos = dc.eos_id if eos_id is None else eos_id
        rows = _split_rows(visual)
        B = len(rows)
        prompts = _split_prompts(prompt_ids, B)
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        dev, dt = self.device, self.dtype
        prefixes = []
        for v, p in zip(rows, prompts):
            parts = [self.decoder.embed_tokens.weight[dc.bos_id][None], v.to(dev, dt)]
            if p:
                parts.append(self.decoder.embed_tokens(torch.tensor(p, device=dev)))
            prefixes.append(torch.cat(parts, dim=0))  # [P_i,D]
        P = max(x.shape[0] for x in prefixes)
        S = P + max_new_tokens
        if S > dc.max_positions:
            raise ValueError(f"prefix {P} + max_new_tokens {max_new_tokens} = {S} exceeds max_positions "
                             f"{dc.max_positions}; lower max_new_tokens")
        pad = torch.tensor([P - x.shape[0] for x in prefixes], device=dev)  # [B] left padding
        h0 = torch.stack([F.pad(x, (0, 0, P - x.shape[0], 0)) for x in prefixes])  # [B,P,D]
        slots = torch.arange(S, device=dev)
        key_valid = slots[None, :] >= pad[:, None]  # [B,S]
        causal = slots[:P, None] >= slots[None, :P]  # [P,P]
        # pad queries may see themselves so no softmax row is empty (NaN); real queries never see pads
        prefill_mask = (causal & key_valid[:, None, :P]) | torch.eye(P, dtype=torch.bool, device=dev)
        prefill_mask = prefill_mask[:, None] if bool((pad > 0).any()) else None  # [B,1,P,P] or causal
        positions = (slots[None, :P] - pad[:, None]).clamp(min=0)  # [B,P]

        use_graph = cuda_graph if cuda_graph is not None else dev.type == "cuda"
        if use_graph and dev.type != "cuda":
            raise ValueError("cuda_graph=True needs the model on a CUDA device")
        if not use_cache:
            use_graph = False

        gen = torch.full((B, max_new_tokens), -1, dtype=torch.long, device=dev)  # generated ids
        logps = torch.zeros(B, max_new_tokens, device=dev)
        done = torch.zeros(B, dtype=torch.bool, device=dev)
        ended = torch.zeros(B, dtype=torch.bool, device=dev)
        length = torch.zeros(B, dtype=torch.long, device=dev)
        whitelist = torch.tensor(list(ngram_whitelist), dtype=torch.long, device=dev)

        step_fn = None
        if use_cache:
            graph = None
            if use_graph and not (cuda_graph is None and self._graph_failed):
                try:
                    graph = self._decode_graph(B, S)
                except Exception as e:  # noqa: BLE001 - auto mode degrades to eager, explicit mode raises
                    if cuda_graph:
                        raise
                    self._graph_failed = True
                    warnings.warn(f"CUDA-graph capture of the decode step failed ({type(e).__name__}: {e}); "
                                  "decoding eagerly. Pass cuda_graph=False to skip the attempt.", stacklevel=2)
            if graph is not None:
                graph.key_valid.zero_()
                graph.key_valid[:, :S].copy_(key_valid)  # slots past S stay masked
                graph.pad.copy_(pad)
                cache = graph.cache
                step_fn = graph.step
            else:
                cache = KVCache(dc, B, S, dev, dt)
                step_fn = lambda tok, slot: self._decode_step(tok, slot, pad, key_valid, cache)  # noqa: E731
            hidden = self.decoder(h0, positions, prefill_mask, cache)  # [B,P,D]
            logits = self.decoder.lm_head(hidden[:, -1]).float()  # [B,V]

        for t in range(max_new_tokens):
            if not use_cache:
                logits = self._uncached_logits(h0, gen[:, :t], pad, key_valid[:, : P + t], P)
            lp = logits.log_softmax(-1)  # [B,V]
            if no_repeat_ngram > 0:
                banned = ngram_ban(gen, torch.tensor(t, device=dev), no_repeat_ngram, ngram_window,
                                   logits.shape[-1], whitelist)
                logits = logits.masked_fill(banned, float("-inf"))
            tok = logits.argmax(-1)  # [B]
            is_eos = (tok == eos) & ~done
            ended |= is_eos
            done |= is_eos
            live = ~done
            gen[:, t] = torch.where(live, tok, torch.full_like(tok, -1))
            logps[:, t] = lp.gather(1, tok[:, None])[:, 0]
            length += live.long()
            if (t % 8 == 7 or dev.type != "cuda") and bool(done.all()):
                break
            if t + 1 < max_new_tokens and use_cache:
                tok_in = torch.where(live, tok, torch.full_like(tok, dc.pad_id))
                logits = step_fn(tok_in, torch.full((1,), P + t, dtype=torch.long, device=dev))

        gen, logps, length, ended = gen.cpu(), logps.float().cpu(), length.cpu(), ended.cpu()
        return [
            Generation(token_ids=gen[b, : length[b]].tolist(), eos=bool(ended[b]),
                       logprobs=logps[b, : length[b]].tolist())
            for b in range(B)
        ]

    def _decode_step(self, tok, slot, pad, key_valid, cache) -> torch.Tensor:
        """One token per row at cache slot `slot` ([1] long tensor) -> logits [B,V] fp32."""
        S = key_valid.shape[1]
        h = self.decoder.embed_tokens(tok)[:, None]  # [B,1,D]
        positions = (slot - pad)[:, None]  # [B,1]
        mask = (key_valid & (torch.arange(S, device=tok.device) <= slot))[:, None, None, :]  # [B,1,1,S]
        kv_len = None
        if not tok.is_cuda:  # eager CPU: attend over the filled slots only (the graph path needs full S)
            kv_len = int(slot) + 1
            mask = mask[..., :kv_len]
        hidden = self.decoder(h, positions, mask, cache, slot, kv_len)
        return self.decoder.lm_head(hidden[:, 0]).float()

    def _uncached_logits(self, h0, gen, pad, key_valid, P) -> torch.Tensor:
        """Reference: recompute [prefix + generated] from scratch, return next-token logits [B,V]."""
        B = h0.shape[0]
        toks = gen.clamp(min=0)
        h = torch.cat([h0, self.decoder.embed_tokens(toks)], dim=1)  # [B,L,D]
        L = h.shape[1]
        ar = torch.arange(L, device=h.device)
        mask = ((ar[:, None] >= ar[None, :]) & key_valid[:, None, :]) | torch.eye(L, dtype=torch.bool, device=h.device)
        positions = (ar[None, :] - pad[:, None]).clamp(min=0)
        hidden = self.decoder(h, positions, mask[:, None])
        return self.decoder.lm_head(hidden[:, -1]).float()

    def _decode_graph(self, B: int, S: int) -> "_DecodeGraph":
        S = -(-S // 256) * 256  # bucket the cache length so graphs are reused across calls
        S = min(S, self.cfg.decoder.max_positions)
        key = (B, S, self.dtype, self.device)
        if key not in self._graphs:
            self._graphs[key] = _DecodeGraph(self, B, S)
            while len(self._graphs) > 4:
                self._graphs.popitem(last=False)
        self._graphs.move_to_end(key)
        return self._graphs[key]


class _DecodeGraph:
    """A decode step (embed -> all layers with the static KV cache -> lm_head) captured as one CUDA graph.

    Inputs are copied into static tensors and the graph replayed, so a step costs one launch instead of
    hundreds of Python-issued kernels. The MoE uses its gathered-weights or grouped path, both free of
    host syncs. Slots beyond the caller's S are masked out by key_valid (False there)."""

    def __init__(self, model: OpticalModel, B: int, S: int):
        dev, dc = model.device, model.cfg.decoder
        self.model = model
        self.cache = KVCache(dc, B, S, dev, model.dtype)
        self.key_valid = torch.zeros(B, S, dtype=torch.bool, device=dev)
        self.pad = torch.zeros(B, dtype=torch.long, device=dev)
        self.tok = torch.zeros(B, dtype=torch.long, device=dev)
        self.slot = torch.zeros(1, dtype=torch.long, device=dev)
        run = lambda: model._decode_step(self.tok, self.slot, self.pad, self.key_valid, self.cache)  # noqa: E731
        self.key_valid.fill_(True)  # warm-up must not see an all-masked row (NaN k/v would persist)
        stream = torch.cuda.Stream(device=dev)
        stream.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(stream):
            for _ in range(2):  # warm-up allocations and library handles outside the capture
                run()
        torch.cuda.current_stream(dev).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.logits = run()

    def step(self, tok: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
        self.tok.copy_(tok)
        self.slot.copy_(slot)
        self.graph.replay()
        return self.logits


def ngram_ban(gen: torch.Tensor, length: torch.Tensor, n: int, window: int, vocab: int,
              whitelist: torch.Tensor) -> torch.Tensor:
    """The official windowed no-repeat-n-gram rule, vectorised with static shapes (CUDA-graph safe).

    gen [B,M] generated ids (entries >= length unused), length: 0-d long tensor. Among the n-grams that
    start in [length-window, length-n] and whose first n-1 ids equal the last n-1 generated ids, ban the
    last id. Returns a bool mask [B,V]; whitelisted ids are never banned."""
    B, M = gen.shape
    nwin = max(window - n + 1, 0)
    banned = torch.zeros(B, vocab, dtype=torch.bool, device=gen.device)
    if nwin == 0 or n < 1:
        return banned
    start = length - window + torch.arange(nwin, device=gen.device)  # [W] candidate n-gram starts
    idx = start[:, None] + torch.arange(n, device=gen.device)  # [W,n]
    grams = gen[:, idx.clamp(0, M - 1)]  # [B,W,n]
    pidx = (length - n + 1 + torch.arange(n - 1, device=gen.device)).clamp(0, M - 1)
    prefix = gen[:, pidx]  # [B,n-1]
    match = (grams[..., :-1] == prefix[:, None, :]).all(-1) & (start >= 0) & (length >= n)  # [B,W]
    last = grams[..., -1].clamp(min=0)
    hits = torch.zeros(B, vocab, device=gen.device).scatter_add_(1, last, match.float())
    banned = hits > 0
    if whitelist.numel():
        banned[:, whitelist] = False
    return banned


def ngram_ban_reference(ids: Sequence[int], n: int, window: int, whitelist: Sequence[int] = ()) -> set[int]:
    """The official `NoRepeatNGramLogitsProcessor` rule on one list of generated ids (for tests)."""
    if len(ids) < n:
        return set()
    prefix = tuple(ids[-(n - 1):]) if n > 1 else ()
    banned = set()
    for i in range(max(0, len(ids) - window), len(ids) - n + 1):
        gram = tuple(ids[i : i + n])
        if gram[:-1] == prefix:
            banned.add(gram[-1])
    return banned - set(whitelist)


def _check_pixels(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"pixel_values must be a torch.Tensor from ocr_model.image_process.to_tensor, got {type(x)}")
    if not x.is_floating_point():
        raise TypeError(f"pixel_values must be floating point in [-1,1] (got {x.dtype}); "
                        "convert images with ocr_model.image_process.to_tensor")
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"pixel_values must be [B,3,S,S], got {tuple(x.shape)}; use image_process.to_tensor")
    if x.shape[2] % 64 or x.shape[3] % 64 or x.shape[2] < 64 or x.shape[3] < 64:
        raise ValueError(f"image sides must be positive multiples of 64 px (one visual token per 64x64), got "
                         f"{x.shape[2]}x{x.shape[3]}; use a mode of image_process (tiny 512, small 640, base 1024, "
                         "large 1280)")


def _split_rows(visual) -> list[torch.Tensor]:
    if isinstance(visual, torch.Tensor):
        if visual.dim() != 3:
            raise ValueError(f"visual must be [B,Tv,D], got {tuple(visual.shape)}")
        return list(visual.unbind(0))
    rows = []
    for v in visual:
        if v.dim() == 3 and v.shape[0] == 1:
            v = v[0]
        if v.dim() != 2:
            raise ValueError(f"each visual row must be [Tv,D] or [1,Tv,D], got {tuple(v.shape)}")
        rows.append(v)
    if not rows:
        raise ValueError("visual is empty: pass at least one page")
    return rows


def _split_prompts(prompt_ids, B: int) -> list[list[int]]:
    if prompt_ids is None:
        return [[] for _ in range(B)]
    prompt_ids = list(prompt_ids)
    if prompt_ids and not isinstance(prompt_ids[0], int):
        if len(prompt_ids) != B:
            raise ValueError(f"got {len(prompt_ids)} prompts for {B} pages; pass one per page or one for all")
        return [list(p) for p in prompt_ids]
    return [list(prompt_ids) for _ in range(B)]
