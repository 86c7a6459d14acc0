from __future__ import annotations

import os
import random

import pytest
import torch
import torch.nn.functional as F

from ocr_model.model import Generation, ngram_ban, ngram_ban_reference


@pytest.fixture(scope="module")
def visual(tiny_model):
    torch.manual_seed(3)
    with torch.no_grad():
        return tiny_model.encode(torch.randn(3, 3, 512, 512))  # [3,73,48]


def test_forward_shapes_and_loss(tiny_model, visual):
    ids = torch.randint(4, 320, (3, 9))
    labels = ids.clone()
    labels[:, :2] = -100
    out = tiny_model(ids, visual, labels=labels)
    assert out.logits.shape == (3, 9, 320) and out.aux_loss is None
    want = F.cross_entropy(out.logits[:, 2:].reshape(-1, 320).float(), ids[:, 2:].reshape(-1))
    assert torch.allclose(out.loss, want)
    no_visual = tiny_model(ids)
    assert no_visual.logits.shape == (3, 9, 320) and no_visual.loss is None


def test_train_mode_aux_loss_and_backward(tiny_model, visual):
    tiny_model.train()
    try:
        ids = torch.randint(4, 320, (2, 6))
        out = tiny_model(ids, tiny_model.encode(torch.randn(2, 3, 512, 512)), labels=ids)
        assert out.aux_loss is not None and out.aux_loss.item() > 0
        (out.loss + out.aux_loss).backward()
        assert tiny_model.sam_model.patch_embed.proj.weight.grad is not None
        assert tiny_model.decoder.layers[1].mlp.gate.weight.grad is not None
    finally:
        tiny_model.zero_grad(set_to_none=True)
        tiny_model.eval()


def test_generation_agrees_with_teacher_forcing(tiny_model, visual):
    """Greedy tokens re-fed through forward() give the same argmax and the same log-probs."""
    (g,) = tiny_model.generate(visual[:1], max_new_tokens=12, no_repeat_ngram=0, eos_id=-1)
    assert isinstance(g, Generation) and len(g.token_ids) == 12 and not g.eos
    ids = torch.tensor([g.token_ids])
    with torch.no_grad():
        logits = tiny_model(ids, visual[:1]).logits[0]
    assert logits.argmax(-1).tolist() == g.token_ids
    lp = logits.float().log_softmax(-1).gather(1, ids.T)[:, 0]
    assert torch.allclose(lp, torch.tensor(g.logprobs), atol=1e-4)


def test_cached_equals_uncached(tiny_model, visual):
    kw = dict(max_new_tokens=16, prompt_ids=[5, 6, 7], no_repeat_ngram=3, ngram_window=10)
    cached = tiny_model.generate(visual, **kw)
    uncached = tiny_model.generate(visual, use_cache=False, **kw)
    for a, b in zip(cached, uncached):
        assert a.token_ids == b.token_ids and a.eos == b.eos
        assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-4)


def test_batched_equals_single_with_ragged_rows(tiny_model, visual):
    rows = [visual[0], visual[1, :40], visual[2, :73]]  # different lengths -> left padding
    prompts = [[9], [10, 11, 12], []]
    batched = tiny_model.generate(rows, prompt_ids=prompts, max_new_tokens=10)
    for row, prompt, got in zip(rows, prompts, batched):
        (single,) = tiny_model.generate([row], prompt_ids=[prompt], max_new_tokens=10)
        assert got.token_ids == single.token_ids
        assert torch.allclose(torch.tensor(got.logprobs), torch.tensor(single.logprobs), atol=1e-4)


def test_eos_and_cap(tiny_model, visual):
    (free,) = tiny_model.generate(visual[:1], max_new_tokens=6, no_repeat_ngram=0, eos_id=-1)
    first, third = free.token_ids[0], free.token_ids[2]
    (stop0,) = tiny_model.generate(visual[:1], max_new_tokens=6, no_repeat_ngram=0, eos_id=first)
    assert stop0.eos and stop0.token_ids == [] and stop0.logprobs == []
    if third not in free.token_ids[:2]:
        (stop2,) = tiny_model.generate(visual[:1], max_new_tokens=6, no_repeat_ngram=0, eos_id=third)
        assert stop2.eos and stop2.token_ids == free.token_ids[:2]
    assert not free.eos and len(free.token_ids) == 6


def test_generation_respects_ngram_ban(tiny_model, visual):
    n, window = 3, 20
    gens = tiny_model.generate(visual, max_new_tokens=60, no_repeat_ngram=n, ngram_window=window, eos_id=-1)
    for g in gens:
        ids = g.token_ids
        for t in range(len(ids)):
            assert ids[t] not in ngram_ban_reference(ids[:t], n, window)


def test_ngram_ban_matches_official_rule():
    rng = random.Random(0)
    for trial in range(200):
        n = rng.choice([1, 2, 3, 4])
        window = rng.choice([n, n + 3, 12, 30])
        L = rng.randint(0, 40)
        ids = [rng.randint(0, 5) for _ in range(L)]
        white = [rng.randint(0, 5)] if trial % 3 == 0 else []
        gen = torch.full((1, 50), -1, dtype=torch.long)
        gen[0, :L] = torch.tensor(ids, dtype=torch.long)
        mask = ngram_ban(gen, torch.tensor(L), n, window, 6, torch.tensor(white, dtype=torch.long))
        got = set(torch.nonzero(mask[0]).flatten().tolist())
        assert got == ngram_ban_reference(ids, n, window, white), (ids, n, window, white)


def test_generate_errors(tiny_model, visual):
    with pytest.raises(ValueError, match="max_positions"):
        tiny_model.generate(visual[:1], max_new_tokens=10_000)
    with pytest.raises(ValueError, match="prompts"):
        tiny_model.generate(visual, prompt_ids=[[1], [2]], max_new_tokens=2)
    with pytest.raises(ValueError, match="cuda"):
        tiny_model.generate(visual[:1], max_new_tokens=2, cuda_graph=True)
    with pytest.raises(ValueError, match="max_positions"):
        tiny_model(torch.zeros(1, 600, dtype=torch.long), visual[:1])


def test_generate_under_autocast_on_fp32_weights(tiny_model, visual):
    """Training's greedy check runs generate on fp32 master weights under bf16 autocast: the KV cache is fp32
    while new keys are bf16 (this crashed run s2 at its first decode check)."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gens = tiny_model.generate(visual[:2], max_new_tokens=4, cuda_graph=False)
    assert len(gens) == 2 and all(1 <= len(g.token_ids) <= 4 for g in gens)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("OPTIMEM_SLOW"), reason="torch.compile takes ~100 s on 2 cores; set OPTIMEM_SLOW=1")
def test_torch_compile_training_step(tiny_cfg):
    from ocr_model.weights import build_model
    torch.manual_seed(0)
    model = build_model(tiny_cfg).train()
    compiled = torch.compile(model)
    px = torch.randn(2, 3, 512, 512)
    ids = torch.randint(4, 320, (2, 8))
    out = compiled(ids, model.encode(px), labels=ids)
    ref = model(ids, model.encode(px), labels=ids)
    assert torch.allclose(out.loss, ref.loss, atol=1e-4)
    (out.loss + out.aux_loss).backward()
