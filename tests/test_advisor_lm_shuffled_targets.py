"""A language model whose targets do not follow from its inputs (trial 17, F1: another row's
targets, in an HF Trainer GPT-2 and in nanoGPT) learns only how often each token occurs: train
and validation losses stall together at the unigram entropy, below ln V, and the advisor said
"no problems found" / an info early_plateau. The same model on its true targets goes far lower."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainspect.analysis import diagnose
from trainspect.recorder import Recorder

V = 32


def _markov_stream(seed, n):
    """A token stream whose next token is the current one's successor half the time, else a Zipf
    draw: unigram entropy ~0.78 ln V, given the current token ~0.47 ln V."""
    rng = np.random.default_rng(1000 + seed)
    zipf = 1 / np.arange(1, V + 1) ** 1.6
    zipf /= zipf.sum()
    succ = rng.permutation(V)
    out = np.empty(n, np.int64)
    out[0] = 0
    coins, draws = rng.random(n), rng.choice(V, size=n, p=zipf)
    for i in range(1, n):
        out[i] = succ[out[i - 1]] if coins[i] < 0.5 else draws[i]
    return torch.from_numpy(out)


def _run(path, seed, *, shuffled, steps=300, rows=16, length=32):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    stream = _markov_stream(seed, 200_000)
    model = nn.Sequential(nn.Embedding(V, 32), nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, V))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def batch(n):
        start = torch.randint(0, len(stream) - length - 1, (n,), generator=g)
        x = torch.stack([stream[s:s + length] for s in start])
        y = torch.stack([stream[s + 1:s + length + 1] for s in start])
        if shuffled:          # each row gets another row's targets
            y = y[torch.randperm(n, generator=g)]
        return x, y

    with Recorder(path) as rec:
        rec.watch(model, opt)
        for it in range(steps):
            x, y = batch(rows)
            loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
            if it % 25 == 24:
                with torch.no_grad():
                    xv, yv = batch(64)
                    rec.log({"val/loss": F.cross_entropy(model(xv).flatten(0, 1), yv.flatten()).item()})
    return {f.symptom: f for f in diagnose(path)}


@pytest.mark.parametrize("seed", (0, 1, 2))
def test_a_language_model_trained_on_another_rows_targets_is_named(tmp_path, seed):
    found = _run(tmp_path / "lm.h5", seed, shuffled=True)
    f = found["stuck_at_chance"]
    assert f.severity == "warning" and f.facts["unigram_level"]
    assert 0.7 <= f.facts["end_over_chance"] < 0.9
    assert f.causes[0].id == "label_noise"
    assert f.fixes[0].id == "check_lm_targets"


@pytest.mark.parametrize("seed", (0, 1))
def test_the_same_language_model_on_its_true_targets_is_not(tmp_path, seed):
    """It converges within the run and plateaus too, train = validation, but near the data's
    conditional entropy (~0.47 ln V), far below the tokens' frequencies."""
    found = _run(tmp_path / "lm.h5", seed, shuffled=False)
    assert "stuck_at_chance" not in found
    assert all(f.severity == "info" for f in found.values()), {s: f.title for s, f in found.items()}
