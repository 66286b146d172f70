"""Scenario suite for the advisor: small real training runs on CPU, each with one planted
pathology (or none), recorded with the trainspect Recorder.

Every scenario trains a small model on sklearn's ``load_digits`` (8x8 digits, 10 classes)
or on synthetic data for a few hundred steps; one scenario takes about a second on one
CPU thread. ``record_scenario(name, path, seed, threads)`` writes the run file; ``SCENARIOS``
says what the advisor is expected to find in each, in every seed. Seed 0 is the run the
scenario was designed on; seeds 1, 2, ... change the initialisation and the batch order.

Run one by hand:  python -m tests.scenarios lr_too_low /tmp/run.h5 [SEED [THREADS]]
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import numpy as np

# Recorder schedules used by every scenario (expensive instruments every few steps).
RECORDER_OPTIONS = dict(flush_every=0.5, stats_every=5, hist_every=50, snapshot_every=25)


@dataclass(frozen=True)
class Scenario:
    name: str
    train: callable                      # train(rec, seed) -> None
    symptom: str | None                  # planted symptom (None = healthy run)
    causes: tuple = ()                   # acceptable top-ranked causes for that symptom
    about: str = ""
    watch: bool = True
    severity: str = "warning"            # the least severity the planted finding must have ("info": advice only)


# ------------------------------------------------------------------------ data
_DATA = {}


def digits(raw: bool = False, n_train: int = 1400):
    """(X_train, y_train, X_val, y_val) as torch tensors; standardised unless ``raw``."""
    import torch
    key = (raw, n_train)
    if key not in _DATA:
        from sklearn.datasets import load_digits
        X, y = load_digits(return_X_y=True)
        rng = np.random.default_rng(0)
        order = rng.permutation(len(X))
        X, y = X[order].astype(np.float32), y[order].astype(np.int64)
        if raw:
            X = X * 16.0            # 0..255 like raw 8-bit pixels, never rescaled
        else:
            mean, std = X[:1400].mean(0), X[:1400].std(0)
            X = (X - mean) / np.where(std > 0, std, 1.0)
        _DATA[key] = (torch.from_numpy(X[:n_train]), torch.from_numpy(y[:n_train]),
                      torch.from_numpy(X[1400:]), torch.from_numpy(y[1400:]))
    return _DATA[key]


def mlp(sizes, act="relu", norm=None):
    import torch.nn as nn
    acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            if norm == "batch":
                layers.append(nn.BatchNorm1d(b))
            layers.append(acts[act]())
    return nn.Sequential(*layers)


def train(rec, model, opt, *, data=None, steps=300, batch=64, val_every=20, lr_at=None,
          corrupt_at=(), watch=True, seed=0, regression=False):
    """Plain minibatch training loop; logs train/loss every step, val/loss every ``val_every``.

    ``regression``: mean squared error against the digit's value / 9 (one output unit)."""
    import torch
    import torch.nn.functional as F
    torch.manual_seed(seed)
    Xtr, ytr, Xva, yva = data if data is not None else digits()
    if watch:
        rec.watch(model, opt)
    g = torch.Generator().manual_seed(seed)
    corrupt_at = set(corrupt_at)

    def loss_fn(out, y):
        if regression:
            return F.mse_loss(out.squeeze(-1), y.float() / 9.0)
        return F.cross_entropy(out, y)
    for step in range(steps):
        if lr_at is not None:
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
        idx = torch.randint(0, len(Xtr), (batch,), generator=g)
        xb, yb = Xtr[idx], ytr[idx]
        if step in corrupt_at:          # a corrupted batch: every label wrong
            yb = (yb + 1) % 10
        model.train()
        loss = loss_fn(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec.log({"train/loss": loss.detach()}, step=step)
        if val_every and (step % val_every == 0 or step == steps - 1):
            model.eval()
            with torch.no_grad():
                val = loss_fn(model(Xva), yva)
            rec.log({"val/loss": val}, step=step)


# ------------------------------------------------------------------ healthy runs
def healthy_mlp_adam(rec, seed):
    import torch
    torch.manual_seed(1 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3), seed=seed)


def healthy_mlp_sgd_momentum(rec, seed):
    import torch
    torch.manual_seed(2 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    train(rec, model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), seed=seed)


def healthy_cnn(rec, seed):
    import torch
    import torch.nn as nn

    class SmallCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
            self.relu1 = nn.ReLU()
            self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
            self.relu2 = nn.ReLU()
            self.pool = nn.MaxPool2d(2)
            self.fc = nn.Linear(16 * 4 * 4, 10)

        def forward(self, x):
            x = x.view(-1, 1, 8, 8)
            x = self.pool(self.relu2(self.conv2(self.relu1(self.conv1(x)))))
            return self.fc(x.flatten(1))

    torch.manual_seed(3 + 1000 * seed)
    model = SmallCNN()
    train(rec, model, torch.optim.Adam(model.parameters(), lr=2e-3), steps=250, seed=seed)


def healthy_residual_layernorm(rec, seed):
    import torch
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.norm = nn.LayerNorm(d)
            self.fc = nn.Linear(d, d)
            self.act = nn.GELU()

        def forward(self, x):
            return x + self.act(self.fc(self.norm(x)))

    torch.manual_seed(4 + 1000 * seed)
    model = nn.Sequential(nn.Linear(64, 64), Block(64), Block(64), Block(64), nn.LayerNorm(64), nn.Linear(64, 10))
    train(rec, model, torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2), seed=seed)


def healthy_tanh_sgd(rec, seed):
    import torch
    torch.manual_seed(5 + 1000 * seed)
    model = mlp([64, 64, 64, 10], act="tanh")
    train(rec, model, torch.optim.SGD(model.parameters(), lr=0.1), steps=300, seed=seed)


def healthy_batchnorm_cosine(rec, seed):
    import torch
    torch.manual_seed(6 + 1000 * seed)
    model = mlp([64, 128, 128, 10], norm="batch")
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    train(rec, model, opt, lr_at=lambda s: 0.1 * 0.5 * (1 + math.cos(math.pi * s / 300)), seed=seed)


# ---------------------------------------------------------------- pathologies
def lr_too_low(rec, seed):
    import torch
    torch.manual_seed(10 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    train(rec, model, torch.optim.SGD(model.parameters(), lr=1e-5), seed=seed)


def lr_too_high_oscillation(rec, seed):
    import torch
    torch.manual_seed(11 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    train(rec, model, torch.optim.Adam(model.parameters(), lr=0.05), seed=seed)


def lr_ramp_divergence(rec, seed):
    import torch
    torch.manual_seed(12 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    # a warm-up that never stops: the LR grows 2 % a step, 1e-3 -> 0.4
    train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3), lr_at=lambda s: 1e-3 * 1.02 ** s, seed=seed)


def nan_from_huge_lr(rec, seed):
    import torch
    torch.manual_seed(13 + 1000 * seed)
    model = mlp([64, 64, 1], act="tanh")
    # regression head, SGD LR 0.3 + momentum: fine for 30 steps, then grows 100x a step until Inf/NaN
    train(rec, model, torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9), steps=150, regression=True,
          seed=seed)


def bad_batches_spikes(rec, seed):
    import torch
    torch.manual_seed(14 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    train(rec, model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
          corrupt_at=range(100, 300, 50), seed=seed)


def lr_decayed_too_early(rec, seed):
    import torch
    torch.manual_seed(15 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    # a step schedule that cuts the LR 1000x after 40 of 300 steps
    train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3), lr_at=lambda s: 1e-3 if s < 40 else 1e-6,
          seed=seed)


def overfit_small_noisy_train_set(rec, seed):
    import torch
    torch.manual_seed(16 + 1000 * seed)
    Xtr, ytr, Xva, yva = digits(n_train=300)
    ytr = ytr.clone()       # 30 % of the training labels are wrong: the model memorises them
    ytr[:90] = torch.randint(0, 10, (90,), generator=torch.Generator().manual_seed(seed))
    model = mlp([64, 256, 256, 10])
    train(rec, model, torch.optim.Adam(model.parameters(), lr=2e-3), data=(Xtr, ytr, Xva, yva),
          batch=32, steps=400, seed=seed)


def deep_sigmoid_vanishing(rec, seed):
    import torch
    torch.manual_seed(17 + 1000 * seed)
    model = mlp([64] + [64] * 10 + [10], act="sigmoid")
    train(rec, model, torch.optim.SGD(model.parameters(), lr=0.1), steps=200, seed=seed)


def big_init_exploding(rec, seed):
    import torch
    import torch.nn as nn
    torch.manual_seed(18 + 1000 * seed)
    model = mlp([64] + [64] * 8 + [10])
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                m.weight.normal_(0, 3.0 * math.sqrt(2.0 / m.in_features))
    train(rec, model, torch.optim.SGD(model.parameters(), lr=1e-6), steps=200, seed=seed)


def negative_bias_dead_relu(rec, seed):
    import torch
    import torch.nn as nn
    torch.manual_seed(19 + 1000 * seed)
    model = mlp([64, 128, 128, 10])
    with torch.no_grad():
        for m in list(model)[:-1]:
            if isinstance(m, nn.Linear):
                m.bias.fill_(-4.0)
    train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3), seed=seed)


def big_init_tanh_saturation(rec, seed):
    import torch
    import torch.nn as nn
    torch.manual_seed(20 + 1000 * seed)
    model = mlp([64, 128, 128, 10], act="tanh")
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                m.weight.normal_(0, 4.0 / math.sqrt(m.in_features))
    train(rec, model, torch.optim.SGD(model.parameters(), lr=0.01), seed=seed)


def constant_init_symmetry(rec, seed):
    import torch
    import torch.nn as nn
    torch.manual_seed(21 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                m.weight.fill_(0.02)
                m.bias.zero_()
    train(rec, model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), seed=seed)


def raw_pixel_inputs(rec, seed):
    import torch
    torch.manual_seed(22 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3), data=digits(raw=True), seed=seed)


def layer_missing_from_optimizer(rec, seed):
    import torch
    torch.manual_seed(23 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    opt = torch.optim.Adam(list(model[2].parameters()) + list(model[4].parameters()), lr=1e-3)
    train(rec, model, opt, seed=seed)


def sgd_small_lr_still_falling(rec, seed):
    import torch
    torch.manual_seed(25 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    # plain SGD at 0.01: learning, but 300 steps end halfway down (2.3 -> 1.85, still falling steadily)
    train(rec, model, torch.optim.SGD(model.parameters(), lr=0.01), seed=seed)


def losses_only_healthy(rec, seed):
    import torch
    torch.manual_seed(24 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3), watch=False, seed=seed)


SCENARIOS = {s.name: s for s in [
    Scenario("healthy_mlp_adam", healthy_mlp_adam, None, about="MLP 64-128-64-10, ReLU, Adam 1e-3"),
    Scenario("healthy_mlp_sgd_momentum", healthy_mlp_sgd_momentum, None, about="same MLP, SGD 0.05 momentum 0.9"),
    Scenario("healthy_cnn", healthy_cnn, None, about="2-conv CNN + max-pool, Adam 2e-3"),
    Scenario("healthy_residual_layernorm", healthy_residual_layernorm, None,
             about="residual MLP, pre-LayerNorm blocks, GELU, AdamW"),
    Scenario("healthy_tanh_sgd", healthy_tanh_sgd, None, about="tanh MLP, plain SGD 0.1"),
    Scenario("healthy_batchnorm_cosine", healthy_batchnorm_cosine, None,
             about="BatchNorm MLP, Nesterov SGD, cosine LR decay"),
    Scenario("losses_only_healthy", losses_only_healthy, None, about="healthy MLP logged without watch()",
             watch=False),
    Scenario("lr_too_low", lr_too_low, "no_progress", ("lr_too_low",), "SGD with LR 1e-5"),
    Scenario("lr_too_high_oscillation", lr_too_high_oscillation, "loss_oscillation", ("lr_too_high",),
             "Adam with LR 0.05"),
    Scenario("lr_ramp_divergence", lr_ramp_divergence, "divergence", ("lr_too_high",),
             "Adam whose LR grows 2 % a step"),
    Scenario("nan_from_huge_lr", nan_from_huge_lr, "nan_inf", ("lr_too_high",),
             "tanh MLP regression, SGD LR 0.3 momentum 0.9"),
    Scenario("bad_batches_spikes", bad_batches_spikes, "loss_spikes", ("label_noise",),
             "every 50th batch from step 100 has every label wrong"),
    Scenario("lr_decayed_too_early", lr_decayed_too_early, "early_plateau", ("lr_too_low",),
             "step schedule cuts the LR 1000x at step 40 of 300"),
    Scenario("overfit_small_noisy_train_set", overfit_small_noisy_train_set, "overfitting",
             ("insufficient_regularization", "label_noise"),
             "300 training samples, 30 % wrong labels, 256-wide MLP, no regularisation"),
    Scenario("deep_sigmoid_vanishing", deep_sigmoid_vanishing, "vanishing_gradients",
             ("activation_choice", "depth_without_skip_connections"), "11-layer sigmoid MLP"),
    Scenario("big_init_exploding", big_init_exploding, "exploding_gradients", ("bad_init",),
             "9-layer ReLU MLP, init 3x He"),
    Scenario("negative_bias_dead_relu", negative_bias_dead_relu, "dead_units", ("bad_init",),
             "ReLU MLP with biases initialised to -4"),
    Scenario("big_init_tanh_saturation", big_init_tanh_saturation, "saturated_activations", ("bad_init",),
             "tanh MLP with weights std 4/sqrt(fan_in)"),
    Scenario("constant_init_symmetry", constant_init_symmetry, "symmetric_weights", ("bad_init",),
             "all weights initialised to the same constant"),
    Scenario("raw_pixel_inputs", raw_pixel_inputs, "unnormalized_inputs", ("input_scaling",),
             "0..255 pixel values fed as they are"),
    Scenario("layer_missing_from_optimizer", layer_missing_from_optimizer, "frozen_layers", ("optimizer_setup",),
             "first Linear layer left out of the optimizer's parameter list"),
    Scenario("sgd_small_lr_still_falling", sgd_small_lr_still_falling, "slow_convergence", ("lr_too_low",),
             "plain SGD 0.01 stopped after 300 steps while the loss still falls", severity="info"),
]}


def record_scenario(name: str, path, seed: int = 0, threads: int = 1, **recorder_options):
    """Train scenario ``name`` with ``seed`` on ``threads`` CPU threads and record it into ``path``.

    The thread count changes which float kernels torch uses (and so the numbers): the suite
    records every scenario with several seeds and thread counts (tests/scenario_runs.py)."""
    import torch
    from trainspect.recorder import Recorder
    torch.set_num_threads(threads)
    scenario = SCENARIOS[name]
    options = {**RECORDER_OPTIONS, **recorder_options}
    config = {"scenario": name, "about": scenario.about, "seed": seed, "threads": threads}
    with Recorder(str(path), name=name, config=config, **options) as rec:
        scenario.train(rec, seed)
    return path


if __name__ == "__main__":
    record_scenario(sys.argv[1], sys.argv[2], *map(int, sys.argv[3:5]))
