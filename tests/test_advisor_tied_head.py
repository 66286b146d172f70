"""The output layer of a model whose head shares its weight with the input embedding.

nanoGPT, GPT-2 and T5 tie ``lm_head.weight`` to the token embedding. The recorder lists the
shared tensor once, under its first owner (``wte.weight``), so "the last weight matrix" was the
last MLP projection: an N(0, 1) init of a tied GPT (first loss 8.6x ln 28) read "no problems
found" while the untied one was named (user trial 16, M1)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainspect.analysis import diagnose
from trainspect.analysis.advisor.context import build_context
from trainspect.analysis.advisor.signals import extract
from trainspect.analysis.run import open_run
from trainspect.recorder import Recorder

V, D, T, B = 24, 32, 16, 16


class TinyGPT(nn.Module):
    """Token + position embeddings, one pre-LN block, a final LayerNorm and a bias-free head,
    tied to the token embedding as nanoGPT does (``wte.weight = lm_head.weight``)."""

    def __init__(self, tied: bool, init_std: float):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, D), nn.Embedding(T, D)
        self.ln1, self.attn, self.proj = nn.LayerNorm(D), nn.Linear(D, 3 * D), nn.Linear(D, D)
        self.ln2, self.fc, self.fc2 = nn.LayerNorm(D), nn.Linear(D, 4 * D), nn.Linear(4 * D, D)
        self.ln_f = nn.LayerNorm(D)
        self.lm_head = nn.Linear(D, V, bias=False)
        if tied:
            self.wte.weight = self.lm_head.weight
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, init_std)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        q, k, v = self.attn(self.ln1(x)).split(D, 2)
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v, is_causal=True))
        x = x + self.fc2(F.gelu(self.fc(self.ln2(x))))
        return self.lm_head(self.ln_f(x))


def _train(path, seed, *, tied=True, init_std=1.0, steps=60):
    torch.manual_seed(seed)
    model = TinyGPT(tied, init_std)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for _ in range(steps):
            start = torch.randint(0, V, (B, 1), generator=g)
            seq = (start + torch.arange(T + 1)) % V          # a learnable next-token rule
            logits = model(seq[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, V), seq[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
    return path


def _context(path):
    with open_run(path) as run:
        return build_context(extract(run))


@pytest.mark.parametrize("seed", (0, 1, 2))
def test_an_n01_init_of_a_tied_gpt_is_named(tmp_path, seed):
    path = _train(tmp_path / "tied.h5", seed)
    f = next((f for f in diagnose(path) if f.symptom == "loss_at_init_high"), None)
    assert f is not None, "the tied head's large scores were not read"
    assert f.layers == ["lm_head"] and f.causes[0].id == "bad_init"
    assert f.facts["classes"] == V and f.facts["first_loss"] >= 1.5 * math.log(V)


def test_the_tied_head_is_the_output_layer_with_the_embeddings_size(tmp_path):
    ctx = _context(_train(tmp_path / "tied.h5", 0, init_std=0.02, steps=5))
    assert ctx.initial_output is not None and ctx.initial_output[0] == "lm_head"
    assert ctx.n_outputs == V
    assert ctx.output_gain == pytest.approx(0.02 * math.sqrt(D), rel=0.3)   # wte.weight's, as the head's


def test_an_untied_head_is_read_as_before(tmp_path):
    ctx = _context(_train(tmp_path / "untied.h5", 0, tied=False, init_std=0.02, steps=5))
    assert ctx.initial_output[0] == "lm_head" and ctx.n_outputs == V


@pytest.mark.parametrize("seed", (0, 1))
def test_a_small_init_of_a_tied_gpt_is_not_named(tmp_path, seed):
    path = _train(tmp_path / "ok.h5", seed, init_std=0.02)
    assert "loss_at_init_high" not in [f.symptom for f in diagnose(path)]


def test_a_model_whose_last_matrix_is_its_head_keeps_it(tmp_path):
    """An embedding and a head of different sizes: nothing is tied, the last matrix is the head."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(V, D), nn.Flatten(), nn.Linear(D * 4, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "cls.h5"
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for _ in range(5):
            loss = F.cross_entropy(model(torch.randint(0, V, (8, 4))), torch.randint(0, 10, (8,)))
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
    ctx = _context(path)
    assert ctx.initial_output[0] == "2" and ctx.n_outputs == 10
