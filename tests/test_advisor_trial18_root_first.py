"""Trial 18: the advisor named the right cause only after a wrong one, or tied no secondary finding
to its root.

- U1: LoRA adapters that never train (their param group at LR 0, or reentrant checkpointing of a
  frozen base, whose inputs do not require grad): the zero-init lora_B never moves, so its rows stay
  identical, and symmetric_weights said "bad init (strong fit)", the app's headline "likely problem:
  bad init", no_progress's fix 1 "unfreeze the frozen parameters" (the base, frozen on purpose). A
  matrix that never received an update is frozen_layers' doing: its LR 0 / graph cut leads.
- U2: a GAN whose discriminator's LR is 100x the generator's: the saturated D Sigmoid said "He init,
  standardise the inputs, BatchNorm"; the GAN imbalance (discriminator wins) leads with GAN fixes.
- U6: a custom autograd.Function whose backward returns zeros cuts the stem off: "exactly zero
  gradient in every step" read "bad init"; it is the graph cut (graph_detached), and the fix names
  the two layers to look between.
- U8: an LSTM LM at 100x its LR diverged, and the gradients that vanished right after read "depth
  without skip connections (strong fit)"; they are tied to the divergence. "Clip gradients" went to
  a script that clips (its config says clip=0.25) and "in mixed precision use a loss scaler" to an
  fp32 run with a hand-written update.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from trainspect.analysis import diagnose
from trainspect.recorder import Recorder

torch.set_num_threads(1)


def by_symptom(findings):
    return {f.symptom: f for f in findings}


def loud(findings):
    return [f for f in findings if f.severity != "info"]


def headline_cause(findings):
    """The app's "likely problem" (advisor_panel.run_verdict): the top cause of the first warning with causes."""
    lead = next((f for f in loud(findings) if f.causes), None)
    return lead.causes[0].id if lead is not None else None


# ------------------------------------------------------------------ U1: LoRA that never trains
class LoRALinear(nn.Module):
    def __init__(self, n_in, n_out, r=4):
        super().__init__()
        self.base = nn.Linear(n_in, n_out)
        self.base.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.randn(r, n_in) / math.sqrt(n_in))
        self.lora_B = nn.Parameter(torch.zeros(n_out, r))      # zero at init: the LoRA paper's / peft's design

    def forward(self, x):
        return self.base(x) + x @ self.lora_A.t() @ self.lora_B.t()


class LoRAMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = LoRALinear(16, 32), LoRALinear(32, 32), LoRALinear(32, 4)

    def forward(self, x):
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class Block(nn.Module):
    def __init__(self, d=32):
        super().__init__()
        self.fc1, self.fc2 = LoRALinear(d, d), LoRALinear(d, d)

    def forward(self, x):
        return x + self.fc2(F.relu(self.fc1(x)))


class CheckpointedLoRA(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(16, 32)
        self.embed.requires_grad_(False)             # a pretrained, frozen input layer: its output needs no grad
        self.blocks = nn.ModuleList(Block() for _ in range(2))
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        h = self.embed(x)
        for b in self.blocks:
            h = checkpoint(b, h, use_reentrant=True)  # the classic PEFT pitfall: no gradient reaches the adapters
        return self.head(h)


def teacher_batches(seed, n_in=16):
    g = torch.Generator().manual_seed(seed)
    teacher = torch.randn(n_in, 4, generator=g)

    def batch():
        x = torch.randn(64, n_in, generator=g)
        return x, (x @ teacher).argmax(1)
    return batch


def fit(path, model, opt, steps, batch):
    with Recorder(path, stats_every=5) as rec:
        rec.watch(model, opt)
        for _ in range(steps):
            x, y = batch()
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
    return diagnose(path)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lora_at_lr_zero_leads_with_the_zero_lr_not_bad_init(tmp_path, seed):
    torch.manual_seed(seed)
    model = LoRAMLP()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.0)
    found = fit(tmp_path / "lora_lr0.h5", model, opt, 150, teacher_batches(seed))
    got = by_symptom(found)
    assert "symmetric_weights" not in got, got["symmetric_weights"].title       # lora_B = 0 never updated
    frozen = got["frozen_layers"]
    assert frozen.severity == "warning" and frozen.causes[0].id == "optimizer_setup"
    assert frozen.fixes[0].id == "zero_lr_group"
    assert all(c.confidence < 0.5 for c in frozen.causes if c.id == "bad_init")
    assert headline_cause(found) == "optimizer_setup", [(f.symptom, f.causes[:1]) for f in found]
    for f in loud(found):
        assert f.causes[0].id != "bad_init", (f.symptom, f.causes)
        assert "unfreeze" not in [x.id for x in f.fixes], (f.symptom, f.fixes)
    if "no_progress" in got:
        assert got["no_progress"].fixes[0].id == "zero_lr_group", got["no_progress"].fixes


@pytest.mark.parametrize("seed", [0, 1])
def test_lora_under_reentrant_checkpointing_leads_with_the_graph_cut(tmp_path, seed):
    import warnings
    torch.manual_seed(seed)
    model = CheckpointedLoRA()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)      # torch's reentrant-checkpoint warning
        found = fit(tmp_path / "lora_ckpt.h5", model, opt, 120, teacher_batches(seed))
    got = by_symptom(found)
    assert "symmetric_weights" not in got, got["symmetric_weights"].title
    frozen = got["frozen_layers"]
    assert frozen.causes[0].id == "graph_detached"
    assert "non_reentrant_checkpoint" in [x.id for x in frozen.fixes]
    assert headline_cause(found) == "graph_detached"


@pytest.mark.parametrize("seed", [0, 1])
def test_zero_initialised_mlp_is_still_bad_init(tmp_path, seed):
    """The rule it must not lose: every weight 0 at init, nothing frozen, a working LR: identical
    units that get exactly zero gradient are bad init."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    got = by_symptom(fit(tmp_path / "zero_init.h5", model, opt, 120, teacher_batches(seed)))
    assert "symmetric_weights" in got
    assert got["symmetric_weights"].causes[0].id == "bad_init"
    assert got["frozen_layers"].causes[0].id == "bad_init", got["frozen_layers"].causes


# ------------------------------------------------------------------ U2: D wins the GAN
def real_batch(n, g):
    k = torch.randint(0, 8, (n,), generator=g).float() * (2 * math.pi / 8)
    return torch.stack([2 * torch.cos(k), 2 * torch.sin(k)], 1) + 0.05 * torch.randn(n, 2, generator=g)


def train_gan(tmp_path, seed, lr_d, steps=600):
    """pytorch/examples' dcgan loop with MLPs on a ring of 8 Gaussians, two Recorders (README)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    nz = 8
    net_g = nn.Sequential(nn.Linear(nz, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    net_d = nn.Sequential(nn.Linear(2, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64), nn.LeakyReLU(0.2),
                          nn.Linear(64, 1), nn.Sigmoid())
    criterion = nn.BCELoss()
    opt_d = torch.optim.Adam(net_d.parameters(), lr=lr_d, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bs = 64
    paths = tmp_path / f"gan{seed}-G.h5", tmp_path / f"gan{seed}-D.h5"
    with Recorder(paths[0]) as rec_g, Recorder(paths[1]) as rec_d:
        rec_g.watch(net_g, opt_g)
        rec_d.watch(net_d, opt_d)
        for i in range(steps):
            net_d.zero_grad()
            out = net_d(real_batch(bs, g)).view(-1)
            err_real = criterion(out, torch.ones(bs))
            err_real.backward()
            fake = net_g(torch.randn(bs, nz, generator=g))
            out = net_d(fake.detach()).view(-1)
            err_fake = criterion(out, torch.zeros(bs))
            err_fake.backward()
            opt_d.step()
            net_g.zero_grad()
            err_g = criterion(net_d(fake).view(-1), torch.ones(bs))
            err_g.backward()
            opt_g.step()
            rec_d.log({"Loss_D": err_real + err_fake}, step=i)
            rec_g.log({"Loss_G": err_g}, step=i)
    return paths


GAN_FIXES = {"balance_gan_lr", "fewer_d_steps", "label_smoothing", "instance_noise"}
INIT_INPUT_FIXES = {"proper_init", "zero_bias", "standardise_inputs", "check_preprocessing", "add_norm_layers"}


@pytest.mark.parametrize("seed", [0, 1])
def test_gan_discriminator_at_100x_lr_is_the_game_imbalance(tmp_path, seed):
    _, d_path = train_gan(tmp_path, seed, lr_d=2e-2)
    got = by_symptom(diagnose(d_path))
    sat = got.get("saturated_activations")
    assert sat is not None and sat.severity == "warning", list(got)
    assert sat.causes[0].id == "discriminator_wins", sat.causes
    assert sat.causes[0].confidence >= 0.8
    ids = [x.id for x in sat.fixes]
    assert ids[0] == "balance_gan_lr" and GAN_FIXES <= set(ids), ids
    assert not INIT_INPUT_FIXES & set(ids), ids
    assert "bad init" not in sat.confirm and "He/Xavier" not in sat.confirm


def test_healthy_gan_stays_quiet(tmp_path):
    paths = train_gan(tmp_path, 0, lr_d=2e-4)
    for p in paths:
        assert loud(diagnose(p)) == [], p


# ------------------------------------------------------------------ U6: backward returning zeros
class ZeroGradRound(torch.autograd.Function):
    """A straight-through round whose backward was written wrong: it returns g * 0."""
    @staticmethod
    def forward(ctx, x):
        return torch.round(x * 4) / 4

    @staticmethod
    def backward(ctx, g):
        return g * 0


class QuantNet(nn.Module):
    def __init__(self, broken):
        super().__init__()
        self.broken = broken
        self.stem = nn.Linear(16, 32)
        self.blocks = nn.Sequential(nn.LayerNorm(32), nn.Linear(32, 32), nn.GELU(), nn.Linear(32, 32))
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        h = self.stem(x)
        h = ZeroGradRound.apply(h) if self.broken else h
        return self.head(h + self.blocks(h))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_backward_returning_zeros_is_a_graph_cut(tmp_path, seed):
    torch.manual_seed(seed)
    model = QuantNet(broken=True)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    got = by_symptom(fit(tmp_path / "ste_bug.h5", model, opt, 120, teacher_batches(seed)))
    frozen = got["frozen_layers"]
    assert frozen.severity == "warning" and set(frozen.layers) == {"stem.weight", "stem.bias"}
    assert frozen.causes[0].id == "graph_detached" and frozen.causes[0].confidence >= 0.8, frozen.causes
    assert all(c.confidence < 0.3 for c in frozen.causes if c.id == "bad_init")
    assert frozen.fixes[0].id == "find_cut"
    assert "between stem and blocks.0 in forward()" in frozen.fixes[0].text, frozen.fixes[0].text
    assert "proper_init" not in [x.id for x in frozen.fixes]
    assert "non_reentrant_checkpoint" not in [x.id for x in frozen.fixes]     # reentrant gives None, not 0
    assert "He/Xavier" not in frozen.confirm


def test_the_same_net_without_the_bug_is_quiet_about_gradients(tmp_path):
    torch.manual_seed(0)
    model = QuantNet(broken=False)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    got = by_symptom(fit(tmp_path / "ste_ok.h5", model, opt, 120, teacher_batches(0)))
    assert "frozen_layers" not in got


# ------------------------------------------------------------------ U8: diverged LSTM LM
class LSTMLM(nn.Module):
    def __init__(self, vocab=100, emb=32, hid=64):
        super().__init__()
        self.encoder = nn.Embedding(vocab, emb)
        self.rnn = nn.LSTM(emb, hid, 2)
        self.decoder = nn.Linear(hid, vocab)
        self.encoder.weight.data.uniform_(-0.1, 0.1)
        self.decoder.weight.data.uniform_(-0.1, 0.1)
        self.decoder.bias.data.zero_()

    def forward(self, x, hidden):
        out, hidden = self.rnn(self.encoder(x), hidden)
        return self.decoder(out).view(-1, self.decoder.out_features), hidden


def train_word_lm(path, seed, lr, steps=100, clip=0.25, vocab=100, bptt=20, bsz=16):
    """pytorch/examples' word_language_model loop: truncated BPTT, clip_grad_norm_, p.data.add_ (no optimizer)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    trans = torch.softmax(torch.randn(vocab, vocab, generator=g) * 3, 1)
    toks = torch.empty(bsz, steps * bptt + 1, dtype=torch.long)
    toks[:, 0] = torch.randint(0, vocab, (bsz,), generator=g)
    for t in range(1, toks.shape[1]):
        toks[:, t] = torch.multinomial(trans[toks[:, t - 1]], 1, generator=g).view(-1)
    data = toks.t().contiguous()
    model = LSTMLM(vocab)
    with Recorder(path, config={"lr": lr, "clip": clip, "bptt": bptt}) as rec:
        rec.watch(model)
        hidden = None
        for i in range(0, steps * bptt, bptt):
            d, t = data[i:i + bptt], data[i + 1:i + 1 + bptt].reshape(-1)
            model.zero_grad()
            hidden = tuple(h.detach() for h in hidden) if hidden is not None else None
            out, hidden = model(d, hidden)
            loss = F.cross_entropy(out, t)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-lr)
            rec.log({"train/loss": loss, "lr": lr})
    return diagnose(path)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_diverged_lstm_ties_vanishing_gradients_to_the_divergence(tmp_path, seed):
    got = by_symptom(train_word_lm(tmp_path / "wordlm.h5", seed, lr=2000.0))
    div = got["divergence"]
    assert div.causes[0].id == "lr_too_high"
    ids = [x.id for x in div.fixes]
    assert "clip_grads" not in ids, ids          # the script clips at 0.25 (its config says so)
    assert "loss_scaler" not in ids, ids         # float32, a hand-written update: no mixed precision
    van = got["vanishing_gradients"]     # the blow-up saturates the gates: the first layers' gradients vanish after it
    assert van.precursor is not None and van.precursor.symptom == "divergence"
    assert van.causes[0].id == "lr_too_high", van.causes
    assert all(c.confidence < 0.5 for c in van.causes if c.id == "depth_without_skip_connections")
    assert "skip_connections" not in [x.id for x in van.fixes]


def test_lstm_lm_at_its_usual_lr_stays_quiet(tmp_path):
    assert loud(train_word_lm(tmp_path / "wordlm_ok.h5", 0, lr=20.0)) == []


@pytest.mark.parametrize("seed", (0, 1))
def test_a_float64_model_is_not_told_to_use_a_loss_scaler(tmp_path, seed):
    """autocast leaves float64 ops alone: a diverged float64 LBFGS model (pytorch/examples'
    time_sequence_prediction) listed "in mixed precision use a loss scaler / bf16" (trial 18 re-trial)."""
    from scenario_kit import fit_and_diagnose

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1)).double()
    opt = torch.optim.SGD(model.parameters(), lr=3.0)
    w = torch.randn(8, 1, generator=g, dtype=torch.float64)

    def batch_loss():
        x = 3 * torch.randn(32, 8, generator=g, dtype=torch.float64)
        return F.mse_loss(model(x), x @ w)

    found = fit_and_diagnose(tmp_path / "f64.h5", model, opt, batch_loss, 60)
    loud = [f for f in found if f.severity != "info"]
    assert loud, [(f.symptom, f.title) for f in found]
    assert not any(fix.id == "loss_scaler" for f in found for fix in f.fixes)
