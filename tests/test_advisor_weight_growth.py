"""nanoGPT at learning_rate=1e-1 with its warm-up and cosine decay: the loss sits at the unigram
level while the LR is high and improves only as it decays; nothing rises, oscillates or goes
NaN, and the advisor said "no problems found". Adam moves each weight by about the LR per step:
at 5x the weights' initial scale the matrices grow ~10x within the warm-up (``weight_growth``)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from trainspect.analysis import diagnose
from trainspect.recorder import Recorder


class TinyGPT(nn.Module):
    def __init__(self, vocab=64, d=32, ctx=16):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(ctx, d)
        self.block = nn.TransformerEncoderLayer(d, 2, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)
        for m in self.modules():             # GPT-2's init: std 0.02
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)

    def forward(self, idx):
        mask = nn.Transformer.generate_square_subsequent_mask(idx.shape[1])
        h = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        return self.head(self.ln(self.block(h, src_mask=mask, is_causal=True)))


def _train(path, seed, peak_lr, steps=150, warmup=15):
    torch.manual_seed(seed)
    data = torch.randint(0, 64, (4096,)) % torch.randint(8, 64, (4096,))   # skewed, learnable unigrams
    model = TinyGPT()
    opt = torch.optim.AdamW(model.parameters(), lr=peak_lr, betas=(0.9, 0.95), weight_decay=0.1)
    lr_at = lambda it: peak_lr * min(1.0, (it + 1) / warmup) * (0.55 + 0.45 * math.cos(math.pi * it / steps))  # noqa: E731
    with Recorder(path, stats_every=5) as rec:
        rec.watch(model, opt)
        for it in range(steps):
            for g in opt.param_groups:
                g["lr"] = lr_at(it)
            i = torch.randint(0, 4096 - 17, (16,))
            x = torch.stack([data[j:j + 16] for j in i])
            y = torch.stack([data[j + 1:j + 17] for j in i])
            loss = nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            rec.log({"loss": loss.item()})
    return {f.symptom: f for f in diagnose(path)}


@pytest.mark.parametrize("seed", [0, 1])
def test_an_adam_lr_far_above_the_weights_scale_is_reported_with_the_lr_first(tmp_path, seed):
    f = _train(tmp_path / "r.h5", seed, 1e-1)["weight_growth"]
    assert f.severity == "warning"
    assert f.facts["median_growth"] >= 5 and f.facts["lr_over_rms"] >= 0.5
    assert f.causes[0].id == "lr_too_high" and f.fixes[0].id == "lower_lr"
    assert "add a learning-rate warm-up" not in f.fix_texts      # the run has one


@pytest.mark.parametrize("seed", [0, 1])
def test_nanogpts_own_lr_is_not_reported(tmp_path, seed):
    assert "weight_growth" not in _train(tmp_path / "r.h5", seed, 6e-4)


@pytest.mark.parametrize("seed", [0, 1])
def test_an_adam_lr_ten_times_too_high_gets_a_note(tmp_path, seed):
    """nanoGPT at 1e-2 (10x its working LR) read "no problems found" and ended 0.1 nat worse: the
    matrices grew ~3.4x early at an LR 0.45-0.5x their scale. Below the warning, above healthy runs."""
    f = _train(tmp_path / "r.h5", seed, 1e-2).get("weight_growth")
    assert f is not None and f.severity == "info"
    assert f.facts["lr_over_rms"] >= 0.25 and f.causes[0].id == "lr_too_high"


def _train_to_a_low_loss(path, seed, peak_lr, steps=150, warmup=15):
    """The same GPT on arithmetic sequences it can learn almost exactly, validated every 25 steps,
    with a cosine decay to 0: an HF Trainer sweep's best run (AdamW 5e-2, warm-up, cosine, clip)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = TinyGPT()
    opt = torch.optim.AdamW(model.parameters(), lr=peak_lr, betas=(0.9, 0.95), weight_decay=0.1)
    lr_at = lambda it: peak_lr * min(1.0, (it + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * it / steps))  # noqa: E731

    def batch(n):
        start, stride = torch.randint(0, 64, (n, 1), generator=g), torch.randint(1, 4, (n, 1), generator=g)
        seq = (start + stride * torch.arange(17)) % 64
        return seq[:, :16], seq[:, 1:]

    with Recorder(path, stats_every=5) as rec:
        rec.watch(model, opt)
        for it in range(steps):
            for group in opt.param_groups:
                group["lr"] = lr_at(it)
            x, y = batch(32)
            loss = nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            rec.log({"train/loss": loss.item()})
            if it % 25 == 24 or it == steps - 1:
                with torch.no_grad():
                    xv, yv = batch(256)
                    rec.log({"val/loss": nn.functional.cross_entropy(model(xv).flatten(0, 1), yv.flatten()).item()})
    return {f.symptom: f for f in diagnose(path)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weight_growth_on_a_run_that_trained_far_and_still_improves_is_a_note(tmp_path, seed):
    """Trial 17, F5: 'reduce the learning rate 10x' was a warning on the best run of a sweep (eval
    loss 0.30 against 2.05 at 5e-4). Its validation loss ends < 20 % of the untrained one, at its lowest."""
    f = _train_to_a_low_loss(tmp_path / "r.h5", seed, 5e-2)["weight_growth"]
    assert f.facts["median_growth"] >= 5 and f.facts["lr_over_rms"] >= 0.5    # a warning by growth alone
    assert f.severity == "info" and f.facts["trained_well"]
    assert any(e.series == "val/loss" for e in f.evidence)
