"""A language model's cross-entropy summed over every token of the batch, not averaged.

``F.cross_entropy(out.reshape(-1, V), y.reshape(-1), reduction="sum")`` over a (B, T) batch is
B*T per-token losses added up: its first value is ~B*T x ln(V), not B x, so ``loss_summed``,
which compared it with ``sys/batch_size`` alone, read "no problems found" (user trial 16:
``tokens.py --bug sumall --lr 0.05``, an LSTM LM clipped at 0.25, per-token loss 1.9 at the end
against 0.72 with the mean). The recorder now counts the input's elements (``sys/input_numel``):
for token ids, the tokens. A sum over the time steps of each sequence, averaged over the batch
(the seq2seq tutorial's, healthy) is not that count and stays unnamed."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainspect.analysis import diagnose
from trainspect.analysis.run import open_run
from trainspect.recorder import Recorder

V, E, H, PAD = 30, 32, 64, 0


class LM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, E, padding_idx=PAD)
        self.rnn = nn.LSTM(E, H, batch_first=True)
        self.dec = nn.Linear(H, V)

    def forward(self, x):
        return self.dec(self.rnn(self.emb(x))[0])


def _batch(g, B, T):
    """Sequences of a simple rule (next = 3 prev + 1 mod 29, + 1) with 10 % noise, padded after a
    random length between T/2 and T."""
    seq = [torch.randint(1, V, (B, 1), generator=g)]
    for _ in range(T):
        noise = torch.rand(B, 1, generator=g) < 0.1
        seq.append(torch.where(noise, torch.randint(1, V, (B, 1), generator=g), (seq[-1] * 3 + 1) % (V - 1) + 1))
    seq = torch.cat(seq, 1)
    length = torch.randint(T // 2, T + 1, (B,), generator=g)
    seq[torch.arange(T + 1)[None] > length[:, None]] = PAD
    return seq[:, :-1], seq[:, 1:]


def _run(path, seed, *, reduce="all", lr=0.05, clip=None, B=24, T=24, steps=80):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = LM()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for _ in range(steps):
            x, y = _batch(g, B, T)
            total = F.cross_entropy(model(x).reshape(-1, V), y.reshape(-1), ignore_index=PAD, reduction="sum")
            loss = {"all": total, "tokens": total / (y != PAD).sum(), "sequences": total / B}[reduce]
            opt.zero_grad()
            loss.backward()
            if clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            rec.log({"train/loss": loss.item()})
    return path


def test_the_recorder_counts_the_tokens_of_each_batch_in_either_layout(tmp_path):
    model = nn.Sequential(nn.Embedding(V, 8), nn.Linear(8, V))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with Recorder(tmp_path / "n.h5", stats_every=1, dense_start=0) as rec:
        rec.watch(model, opt)
        for shape in ((12, 7), (7, 12), (5, 3)):
            loss = model(torch.randint(0, V, shape)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
    with open_run(tmp_path / "n.h5") as run:
        assert run.scalar("sys/input_numel").values.tolist() == [84, 84, 15]
        assert run.scalar("sys/batch_size").values.tolist() == [12, 7, 5]


@pytest.mark.parametrize("seed", (0, 1))
def test_a_sum_over_every_token_under_sgd_is_named(tmp_path, seed):
    findings = diagnose(_run(tmp_path / "sum.h5", seed, lr=0.002))
    f = next((f for f in findings if f.symptom == "loss_summed"), None)
    assert f is not None, [x.symptom for x in findings]
    assert f.facts["tokens"] == 24 * 24 and 0.5 * 576 <= f.facts["times"] <= 1.3 * 576
    assert "token" in f.title and f.causes[0].id == "loss_summed" and f.fixes[0].id == "mean_reduction"


@pytest.mark.parametrize("seed", (0, 1))
def test_a_sum_over_every_token_that_clipping_cuts_down_at_each_step_is_named(tmp_path, seed):
    """tokens.py --bug sumall --lr 0.05: clip_grad_norm_(0.25) against gradients ~400x the mean's
    makes every step 0.05 x 0.25 long, and the loss was still falling at the end: a warning."""
    findings = diagnose(_run(tmp_path / "clip.h5", seed, clip=0.25, steps=300))
    f = next((f for f in findings if f.symptom == "loss_summed"), None)
    assert f is not None, [x.symptom for x in findings]
    assert f.severity == "warning" and f.facts["tokens"] == 576 and "clip" in f.title
    assert f.fixes[0].id == "mean_reduction" and "tokens" in f.fixes[0].text
    slow = next(x for x in findings if x.symptom == "slow_convergence")
    assert slow.causes[0].id == "loss_summed" and "max_norm" in slow.causes[0].why


@pytest.mark.parametrize("seed", (0, 1))
def test_a_clipped_sum_over_every_token_that_trains_well_is_a_note(tmp_path, seed):
    """At the mean's LR, steps of max_norm's length trained as well as the mean: still summed (the
    training and validation losses are in other units), a note, not a warning."""
    findings = diagnose(_run(tmp_path / "clip1.h5", seed, clip=0.25, lr=1.0))
    f = next((f for f in findings if f.symptom == "loss_summed"), None)
    assert f is not None and f.severity == "info"


@pytest.mark.parametrize("reduce,lr", (("tokens", 1.0), ("sequences", 0.05)))
@pytest.mark.parametrize("seed", (0, 1))
def test_the_mean_over_tokens_and_a_sum_over_each_sequence_are_not_named(tmp_path, seed, reduce, lr):
    """Per-token mean (word_language_model), and the sum over each sequence's steps averaged over
    the batch (B = T here: its first loss is ~B x ln V, read as 'summed over the batch' before the
    clipping rule): neither is the token count."""
    findings = diagnose(_run(tmp_path / f"{reduce}.h5", seed, reduce=reduce, lr=lr, clip=0.25))
    assert "loss_summed" not in [f.symptom for f in findings]


def test_a_file_without_the_token_count_is_read_as_before(tmp_path):
    """Files written before sys/input_numel: the token sum is not judged, nothing fails."""
    import h5py
    path = _run(tmp_path / "old.h5", 0, lr=0.002, steps=40)
    with h5py.File(path, "r+") as f:     # the count's rows now belong to a metric of another name
        names = f["tags/name"]
        i = [bytes(n).rstrip(b"\0") for n in names[:]].index(b"sys/input_numel")
        names[i] = b"user/other"
    with open_run(path) as run:
        assert "sys/input_numel" not in run.scalar_names()
    assert "loss_summed" not in [f.symptom for f in diagnose(path)]
