"""nn.MultiheadAttention's forward reads its ``out_proj`` weight and never calls the module, so
with ``out_proj`` as a leaf every transformer built from torch's layers (TransformerEncoderLayer,
nn.Transformer, a hand-made block around nn.MultiheadAttention) had an activation column that
stayed NaN, and the attention's own output was never recorded. The attention is the leaf."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from trainspect.analysis import open_run
from trainspect.analysis.labels import LayerLabels
from trainspect.recorder import Recorder

torch.set_num_threads(1)
STEPS = 4


class Block(nn.Module):
    """A hand-made pre-norm block that asks for the attention weights too (a tuple output)."""

    def __init__(self, d=16):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, 2, batch_first=True)
        self.head = nn.Linear(d, 1)

    def forward(self, x):
        h = self.norm(x)
        a, _ = self.attn(h, h, h, need_weights=True)
        return self.head(x + a)


def train(model, path, seed, attn):
    outputs = []    # the attention output of the first forward of each step
    attn.register_forward_hook(lambda m, a, y: outputs.append(y[0].detach().clone()) if len(outputs) < STEPS else None)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = torch.Generator().manual_seed(seed)
    with Recorder(path, stats_every=1) as rec:
        rec.watch(model, opt)
        for _ in range(STEPS):
            loss = model(torch.randn(4, 5, 16, generator=data)).pow(2).mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
            rec.log({"train/loss": loss})
    return open_run(path), outputs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_transformer_layers_record_the_attention_output_and_no_dead_column(tmp_path, seed):
    torch.manual_seed(seed)
    model = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True), 2)
    run, outputs = train(model, tmp_path / "t.h5", seed, model.layers[0].self_attn)
    names = [m.name for m in run.modules]
    assert ("layers.0.self_attn", "MultiheadAttention") in [(m.name, m.type) for m in run.modules]
    assert not any("out_proj" in n for n in names)
    std = run.layer_stat("act_std")
    assert not np.isnan(std.values).all(axis=0).any(), [n for n, dead in zip(std.layers, np.isnan(std.values).all(axis=0)) if dead]
    col = std.layers.index("layers.0.self_attn")
    np.testing.assert_allclose(std.values[:, col], [float(y.std(unbiased=False)) for y in outputs], rtol=1e-4)
    # its parameters keep their names and read as a Linear's (out_proj is no leaf: its type
    # comes from the model's module list)
    assert "layers.0.self_attn.out_proj.weight" in run.layer_stat("grad_norm").layers
    label = LayerLabels.for_run(run)
    assert label("layers.0.self_attn.out_proj.weight") == "layers.0.self_attn.out_proj.weight (Linear)"
    assert label("layers.0.self_attn.in_proj_weight") == "layers.0.self_attn.in_proj_weight (MultiheadAttention)"


@pytest.mark.parametrize("seed", [0, 1])
def test_a_hand_made_block_records_the_attention_output_of_its_tuple(tmp_path, seed):
    torch.manual_seed(seed)
    model = Block()
    run, outputs = train(model, tmp_path / "b.h5", seed, model.attn)
    assert [(m.name, m.type) for m in run.modules] == [("norm", "LayerNorm"), ("attn", "MultiheadAttention"),
                                                       ("head", "Linear")]
    mean = run.layer_stat("act_mean")
    np.testing.assert_allclose(mean.values[:, 1], [float(y.mean()) for y in outputs], rtol=1e-4, atol=1e-6)
