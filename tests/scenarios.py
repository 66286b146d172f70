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

from tests.scenario_kit import (  # noqa: F401  (digits, mlp, train: used by other tests)
    binary_rows, cross_entropy, diabetes, digits, iris, mlp, mse, recurrent, residual_mlp, scale_init, small_cnn,
    tiny_transformer, train, train_epochs, warmup_cosine)

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


def checkpointed_residual_mlp(reentrant):
    """Residual MLP (64 -> 3 blocks of 64 -> 10) whose blocks run under torch.utils.checkpoint,
    activation memory traded for compute as with HF's gradient_checkpointing."""
    import torch
    from torch.utils.checkpoint import checkpoint

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.ModuleList(
                torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU()) for _ in range(3))
            self.head = torch.nn.Linear(64, 10)

        def forward(self, x):
            for block in self.blocks:
                x = x + checkpoint(block, x, use_reentrant=reentrant)
            return self.head(x)
    return Net()


def checkpoint_cuts_graph(rec, seed):
    import warnings

    import torch
    torch.manual_seed(27 + 1000 * seed)
    # use_reentrant=True over the raw batch (no requires_grad): no block gets a gradient, only
    # the head trains (torch says so once per step in a UserWarning users learn to ignore)
    model = checkpointed_residual_mlp(reentrant=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3), steps=200, seed=seed)


def model_left_in_eval_mode(rec, seed):
    import torch
    torch.manual_seed(26 + 1000 * seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Dropout(0.3),
                                torch.nn.Linear(128, 10))
    train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3), seed=seed, back_to_train=False)


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


# ------------------------------------------------- healthy runs that look scary
def healthy_noisy_small_batch_sgd(rec, seed):
    import torch
    torch.manual_seed(30 + 1000 * seed)
    model = mlp([64, 64, 10])
    # batch 4: every step's loss is the loss of 4 digits, so the curve is ragged all along
    train(rec, model, torch.optim.SGD(model.parameters(), lr=0.02), batch=4, steps=400, seed=seed)


def healthy_warmup_bump(rec, seed):
    import torch
    torch.manual_seed(31 + 1000 * seed)
    model = tiny_transformer()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-2)
    train(rec, model, opt, lr_at=warmup_cosine(3e-3, 40, 250), steps=250, seed=seed)


def healthy_step_schedule(rec, seed):
    import torch
    torch.manual_seed(32 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    # noisy SGD (batch 8) at LR 0.2, then a 10x drop at step 150: the loss steps down
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    train(rec, model, opt, lr_at=lambda s: 0.2 if s < 150 else 0.02, steps=300, batch=8, seed=seed)


def healthy_label_noise_step_schedule(rec, seed):
    import torch
    torch.manual_seed(32 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    # 20 % random labels: the loss reaches its floor (~0.9) by step ~40 and stays; the LR drop
    # at step 150 changes little. A floor reached early is not a stall.
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    train(rec, model, opt, lr_at=lambda s: 0.1 if s < 150 else 0.01, steps=300, seed=seed, label_noise=0.2)


def pretrained_backbone():
    """A 64-128-64 ReLU backbone trained on digits (unrecorded), then frozen on purpose."""
    import torch
    import torch.nn.functional as F
    backbone = mlp([64, 128, 64])
    head = torch.nn.Linear(64, 10)
    opt = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=2e-3)
    Xtr, ytr, _, _ = digits()
    for i in range(60):
        idx = slice(64 * (i % 20), 64 * (i % 20 + 1))
        loss = F.cross_entropy(head(torch.relu(backbone(Xtr[idx]))), ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    opt.zero_grad()             # as loaded from a checkpoint: no gradients left over
    backbone.requires_grad_(False)
    return backbone


def healthy_frozen_backbone(rec, seed):
    import torch
    torch.manual_seed(33 + 1000 * seed)
    backbone = pretrained_backbone()
    model = torch.nn.Sequential(backbone, torch.nn.ReLU(), torch.nn.Linear(64, 10))
    # only the new head is trained: the backbone is frozen by design (requires_grad=False)
    train(rec, model, torch.optim.Adam(model[2].parameters(), lr=3e-3), steps=200, seed=seed)


def healthy_checkpointed(rec, seed):
    import torch
    torch.manual_seed(35 + 1000 * seed)
    model = checkpointed_residual_mlp(reentrant=False)   # blocks recomputed in backward
    train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3), steps=200, seed=seed)


def healthy_no_grad_backbone(rec, seed):
    import torch
    torch.manual_seed(36 + 1000 * seed)
    backbone = pretrained_backbone().requires_grad_(True)

    class FeatureExtractor(torch.nn.Module):
        """Frozen the other common way: the backbone still requires grad but runs under
        torch.no_grad(), and only the head is given to the optimizer."""

        def __init__(self):
            super().__init__()
            self.backbone, self.head = backbone, torch.nn.Linear(64, 10)

        def forward(self, x):
            with torch.no_grad():
                feats = torch.relu(self.backbone(x))
            return self.head(feats)
    model = FeatureExtractor()
    train(rec, model, torch.optim.Adam(model.head.parameters(), lr=3e-3), steps=200, seed=seed)


def healthy_high_loss_floor(rec, seed):
    import torch
    torch.manual_seed(34 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    # 60 % of the labels of every batch are random: the loss cannot go below ~1.7
    train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3), label_noise=0.6, steps=300, seed=seed)


def healthy_sparse_validation(rec, seed):
    import torch
    torch.manual_seed(35 + 1000 * seed)
    model = mlp([64, 32, 10])
    # validation only every 500 steps: 4 points over 1500 steps
    train(rec, model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), steps=1500, batch=32,
          val_every=500, seed=seed)


def healthy_gru(rec, seed):
    import torch
    torch.manual_seed(36 + 1000 * seed)
    model = recurrent("gru")
    train(rec, model, torch.optim.Adam(model.parameters(), lr=3e-3), clip=1.0, steps=250, seed=seed)


def healthy_regression(rec, seed):
    import torch
    torch.manual_seed(37 + 1000 * seed)
    model = mlp([10, 32, 1])
    train(rec, model, torch.optim.Adam(model.parameters(), lr=3e-3), data=diabetes(), loss_fn=mse, batch=32,
          steps=250, seed=seed)


def healthy_xor_batch1(rec, seed):
    import torch
    torch.manual_seed(38 + 1000 * seed)
    model = mlp([2, 16, 2])
    # batch 1 on the 4 XOR rows: half of the batches are all zeros or all ones (std 0), and an
    # all-zero row leaves every ReLU without input but its bias
    train(rec, model, torch.optim.SGD(model.parameters(), lr=0.05), data=binary_rows(2), batch=1,
          steps=400, val_every=20, seed=seed)


# ------------------------------------------------ pathologies on other model kinds
def cnn_lr_too_high(rec, seed):
    import torch
    torch.manual_seed(40 + 1000 * seed)
    model = small_cnn()
    # SGD LR 0.5 + momentum 0.9: the loss falls for ~10 steps, then climbs back to chance
    train(rec, model, torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9), steps=250, seed=seed)


def cnn_dead_relu(rec, seed):
    import torch
    torch.manual_seed(41 + 1000 * seed)
    model = small_cnn(hidden=64)
    hidden = [m for m in model if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))][:-1]   # not the head
    with torch.no_grad():
        for m in hidden:
            m.bias.fill_(-6.0)
    train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3), steps=250, seed=seed)


def cnn_raw_pixels(rec, seed):
    import torch
    torch.manual_seed(42 + 1000 * seed)
    model = small_cnn()
    train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3), data=digits(raw=True), steps=250, seed=seed)


def cnn_constant_init(rec, seed):
    import torch
    torch.manual_seed(43 + 1000 * seed)
    model = small_cnn(hidden=32)
    with torch.no_grad():
        for m in model:
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                m.weight.fill_(0.05)
                m.bias.zero_()
    train(rec, model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), steps=250, seed=seed)


def residual_big_init_exploding(rec, seed):
    import torch
    torch.manual_seed(44 + 1000 * seed)
    model = residual_mlp(blocks=6, norm=False)
    scale_init(model, 4.0)          # no normalisation, each block adds a 4x-too-large branch
    train(rec, model, torch.optim.SGD(model.parameters(), lr=1e-7), steps=200, seed=seed)


def residual_lr_too_low(rec, seed):
    import torch
    torch.manual_seed(45 + 1000 * seed)
    model = residual_mlp()
    train(rec, model, torch.optim.AdamW(model.parameters(), lr=1e-7), steps=250, seed=seed)


def transformer_warmup_too_high(rec, seed):
    import torch
    torch.manual_seed(46 + 1000 * seed)
    model = tiny_transformer()
    # warm-up to a peak LR of 0.3 (100x too high for Adam): fine at first, diverges as the LR rises
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    train(rec, model, opt, lr_at=lambda s: 1e-4 * (3000 ** min(1.0, s / 150)), steps=250, seed=seed)


def transformer_lr_too_low(rec, seed):
    import torch
    torch.manual_seed(47 + 1000 * seed)
    model = tiny_transformer()
    train(rec, model, torch.optim.SGD(model.parameters(), lr=1e-5), steps=250, seed=seed)


def rnn_exploding_through_time(rec, seed):
    import torch
    torch.manual_seed(48 + 1000 * seed)
    model = recurrent("rnn", nonlinearity="relu")
    with torch.no_grad():      # recurrent weights orthogonal x 3.5: the gradient grows ~x2.5 per step back in time
        torch.nn.init.orthogonal_(model.rnn.weight_hh_l0, gain=3.5)
    train(rec, model, torch.optim.SGD(model.parameters(), lr=1e-6), steps=150, seed=seed)


def lstm_lr_too_high(rec, seed):
    import torch
    torch.manual_seed(49 + 1000 * seed)
    model = recurrent("lstm")
    # no clipping: the loss jumps from 2.3 to 100+ within the first steps and stays far above 2.3
    train(rec, model, torch.optim.SGD(model.parameters(), lr=100.0), steps=200, seed=seed)


def gru_head_missing_from_optimizer(rec, seed):
    import torch
    torch.manual_seed(50 + 1000 * seed)
    model = recurrent("gru")
    train(rec, model, torch.optim.Adam(model.rnn.parameters(), lr=3e-3), steps=250, seed=seed)


def regression_raw_features(rec, seed):
    import torch
    torch.manual_seed(51 + 1000 * seed)
    model = mlp([10, 32, 1])
    train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3), data=diabetes(raw=True), loss_fn=mse,
          batch=32, steps=250, seed=seed)


def regression_lr_too_low(rec, seed):
    import torch
    torch.manual_seed(52 + 1000 * seed)
    model = mlp([10, 32, 1])
    train(rec, model, torch.optim.SGD(model.parameters(), lr=1e-6), data=diabetes(), loss_fn=mse, batch=32,
          steps=250, seed=seed)


def batchnorm_layer_missing_from_optimizer(rec, seed):
    import torch
    torch.manual_seed(53 + 1000 * seed)
    model = mlp([64, 128, 128, 10], norm="batch")
    frozen = {id(p) for p in model[0].parameters()}
    opt = torch.optim.SGD([p for p in model.parameters() if id(p) not in frozen], lr=0.05, momentum=0.9)
    train(rec, model, opt, steps=250, seed=seed)


def batchnorm_lr_too_low(rec, seed):
    import torch
    torch.manual_seed(54 + 1000 * seed)
    model = small_cnn(norm=True)
    train(rec, model, torch.optim.SGD(model.parameters(), lr=1e-6), steps=250, seed=seed)


def sigmoid_big_init_saturation(rec, seed):
    import torch
    torch.manual_seed(55 + 1000 * seed)
    model = mlp([64, 128, 128, 10], act="sigmoid")
    scale_init(model, 20.0)        # pre-activations with std ~10: most sigmoid outputs sit at 0 or 1
    train(rec, model, torch.optim.SGD(model.parameters(), lr=0.01), steps=250, seed=seed)


# ------------------------------------------------ wrong advice seen on real programs
def mnist_adadelta_lr40(rec, seed):
    """pytorch/examples mnist at --lr 40: Adadelta at LR 40 on a conv net. The loss explodes
    over the first steps, the ReLUs die, and it settles at chance (ln 10 = 2.30)."""
    import torch
    torch.manual_seed(60 + 1000 * seed)
    model = small_cnn(widths=(16, 32), hidden=64)
    train(rec, model, torch.optim.Adadelta(model.parameters(), lr=40.0), steps=200, seed=seed)


def ddp_tutorial_one_output(rec, seed):
    """The torchrun DDP tutorial: cross_entropy over a Linear(20, 1) model. The softmax of one
    logit is 1, so the loss is exactly 0 and so is every gradient, from step 0."""
    import torch
    import torch.nn.functional as F
    torch.manual_seed(61 + 1000 * seed)
    g = torch.Generator().manual_seed(seed)
    X, y = torch.rand(512, 20, generator=g), torch.rand(512, 1, generator=g)
    model = torch.nn.Linear(20, 1)
    train(rec, model, torch.optim.SGD(model.parameters(), lr=1e-3), data=(X[:448], y[:448], X[448:], y[448:]),
          loss_fn=F.cross_entropy, batch=32, steps=200, seed=seed)


def softmax_over_one_unit(rec, seed):
    """A binary classifier (digit < 5) ending in Linear(.., 1) + Softmax(dim=1): the output is
    1.0 for every input, so every gradient is exactly zero and nothing ever learns."""
    import torch
    import torch.nn.functional as F
    torch.manual_seed(62 + 1000 * seed)
    Xtr, ytr, Xva, yva = digits()
    data = (Xtr, (ytr < 5).float(), Xva, (yva < 5).float())
    model = mlp([64, 64, 1], out_act=torch.nn.Softmax(dim=1))
    train(rec, model, torch.optim.SGD(model.parameters(), lr=0.1),
          data=data, loss_fn=lambda out, y: F.mse_loss(out.squeeze(-1), y), steps=200, seed=seed)


def first_forward_nan_stacked_exp(rec, seed):
    import torch

    class ExpAct(torch.nn.Module):
        def forward(self, x):
            return torch.exp(x)
    torch.manual_seed(63 + 1000 * seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), ExpAct(), torch.nn.Linear(64, 64), ExpAct(),
                                torch.nn.Linear(64, 64), ExpAct(), torch.nn.Linear(64, 10))
    # Inf in the very first forward pass: nothing about the LR (no update has happened yet)
    train(rec, model, torch.optim.SGD(model.parameters(), lr=0.01), steps=60, seed=seed)


def missing_zero_grad(rec, seed):
    import torch
    torch.manual_seed(64 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    # optimizer.zero_grad() forgotten: each step's gradient is the sum of all so far
    train(rec, model, torch.optim.SGD(model.parameters(), lr=0.002), zero_grad=False, steps=200, seed=seed)


def missing_zero_grad_sgd_momentum(rec, seed):
    import torch
    torch.manual_seed(64 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    # pytorch/examples' mnist with SGD 0.01 momentum 0.9 and no zero_grad(): the summed gradients
    # blow the ReLUs dead, after which the sum stops moving (a norm that climbs, then sits still)
    train(rec, model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), zero_grad=False, steps=200,
          seed=seed)


def train_by_hand(rec, model, *, lr, clear, steps=250, seed=0, batch=64, val_every=20):
    """The PyTorch tutorials' loop without an optimizer: ``p -= lr * p.grad`` under no_grad, then
    ``clear`` the gradient: "none" (``p.grad = None``) or "never" (the bug)."""
    import torch
    Xtr, ytr, Xva, yva = digits()
    rec.watch(model)
    g = torch.Generator().manual_seed(seed)
    for step in range(steps):
        idx = torch.randint(0, len(Xtr), (batch,), generator=g)
        loss = cross_entropy(model(Xtr[idx]), ytr[idx])
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
                if clear == "none":
                    p.grad = None
        rec.log({"train/loss": loss.detach()}, step=step)
        if step % val_every == 0:
            with torch.no_grad():
                rec.log({"val/loss": cross_entropy(model(Xva), yva)}, step=step)


def healthy_hand_written_update(rec, seed):
    import torch
    torch.manual_seed(67 + 1000 * seed)
    train_by_hand(rec, mlp([64, 128, 64, 10]), lr=0.05, clear="none", seed=seed)


def hand_written_update_without_clearing(rec, seed):
    import torch
    torch.manual_seed(67 + 1000 * seed)
    # trial 13's hand-written loop: no p.grad = None, every step adds all earlier gradients
    train_by_hand(rec, mlp([64, 128, 64, 10]), lr=0.05, clear="never", seed=seed)


def warmup_stepped_per_epoch(rec, seed):
    import torch
    torch.manual_seed(68 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    # a timm-style per-update warm-up (100 updates) stepped with the epoch number (22 steps an
    # epoch): LR 0 for the first epoch, 0.13x the target when the run ends
    train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3), lr_at=lambda step: 1e-3 * min(1.0, (step // 22) / 100),
          steps=300, seed=seed)


def adamw_cosine_lr_ten_times_low(rec, seed):
    import torch
    torch.manual_seed(71 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    # HF-style AdamW with warm-up and a cosine to 0, peak 1e-4 where 1e-3 trains this MLP: the loss
    # falls a little (more than no_progress's 5 %), the cosine flattens the end (trial 14, M4)
    train(rec, model, torch.optim.AdamW(model.parameters(), lr=1e-4), lr_at=warmup_cosine(1e-4, 20, 300), steps=300,
          seed=seed)


def multitask_unscaled_target(rec, seed):
    """A digits classifier with a second head regressing the digit's "size" in raw units (x 3 + 20, an "age" of 20-47,
    never standardised): the MSE term starts ~1000x the cross-entropy and the shared trunk follows
    it; logs the total and both terms, as multi-task scripts do (trial 14, M1)."""
    import torch
    import torch.nn.functional as F

    class TwoHeads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk, self.cls, self.reg = mlp([64, 128, 64]), torch.nn.Linear(64, 10), torch.nn.Linear(64, 1)

        def forward(self, x):
            h = self.trunk(x)
            return self.cls(h), self.reg(h).squeeze(1)

    torch.manual_seed(72 + 1000 * seed)
    Xtr, ytr, _, _ = digits()
    model = TwoHeads()
    opt = torch.optim.SGD(model.parameters(), lr=5e-4, momentum=0.9)
    rec.watch(model, opt)
    g = torch.Generator().manual_seed(seed)
    for step in range(300):
        idx = torch.randint(0, len(Xtr), (64,), generator=g)
        logits, size = model(Xtr[idx])
        l_cls, l_reg = F.cross_entropy(logits, ytr[idx]), F.mse_loss(size, ytr[idx].float() * 3 + 20)
        loss = l_cls + l_reg
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec.log({"train/loss": loss.detach(), "train/loss_cls": l_cls.detach(), "train/loss_reg": l_reg.detach()},
                step=step)


def vae_kl_sign_flipped(rec, seed):
    """A VAE on the digits whose KL term is subtracted (pytorch/examples' VAE with KLD = -KLD): the
    objective has no minimum and the loss runs to -1e3x its start and beyond (trial 15, F1)."""
    import torch
    import torch.nn.functional as F

    class VAE(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.enc, self.mu, self.logvar = mlp([64, 32]), torch.nn.Linear(32, 4), torch.nn.Linear(32, 4)
            self.dec = mlp([4, 32, 64])

        def forward(self, x, noise):
            h = torch.relu(self.enc(x))
            mu, logvar = self.mu(h), self.logvar(h)
            return torch.sigmoid(self.dec(mu + noise * torch.exp(0.5 * logvar))), mu, logvar

    torch.manual_seed(73 + 1000 * seed)
    Xtr, _, _, _ = digits()
    x01 = (Xtr - Xtr.min()) / (Xtr.max() - Xtr.min())
    model = VAE()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    rec.watch(model, opt)
    g = torch.Generator().manual_seed(seed)
    for step in range(200):
        x = x01[torch.randint(0, len(x01), (32,), generator=g)]
        recon, mu, logvar = model(x, torch.randn(32, 4, generator=g))
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        loss = (F.binary_cross_entropy(recon, x, reduction="sum") - kld) / 32      # the bug: - instead of +
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec.log({"train/loss": loss.detach()}, step=step)


def clip_far_below_gradients(rec, seed):
    import torch
    torch.manual_seed(66 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    # clip_grad_norm_ at 1e-4: every step's gradient (norm ~0.5) is scaled down ~5000x
    train(rec, model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), clip=1e-4, steps=250, seed=seed)


def adam_weight_decay_one(rec, seed):
    import torch
    torch.manual_seed(67 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    # Adam's L2 weight_decay at 1.0: the weights are pulled to ~0 within a few hundred steps
    train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1.0), steps=300, seed=seed)


def softmax_before_cross_entropy(rec, seed):
    import torch
    torch.manual_seed(68 + 1000 * seed)
    # nn.Softmax on the output, then cross_entropy (which applies log_softmax again): probabilities
    # taken for logits, the loss cannot go below ~1.46 however well the model classifies
    model = mlp([64, 128, 64, 10], out_act=torch.nn.Softmax(dim=1))
    train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3), steps=600, seed=seed)


def softmax_in_forward_before_cross_entropy(rec, seed):
    import torch

    class SoftmaxedMLP(torch.nn.Module):
        """pytorch/examples-style: the forward ends in F.softmax, no module says so."""
        def __init__(self):
            super().__init__()
            self.net = mlp([64, 128, 64, 10])

        def forward(self, x):
            return torch.nn.functional.softmax(self.net(x), dim=1)

    torch.manual_seed(68 + 1000 * seed)
    model = SoftmaxedMLP()
    train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3), steps=600, seed=seed)


def adam_eps_one(rec, seed):
    import torch
    torch.manual_seed(69 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    # eps=1 against gradient elements of ~3e-3: Adam's step lr * m / (sqrt(v) + eps) is ~lr * m / eps,
    # ~300x smaller than Adam's own; the loss hardly moves in 300 steps
    train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3, eps=1.0), steps=300, seed=seed)


def adamw_eps_tenth(rec, seed):
    import torch
    torch.manual_seed(70 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    # eps=0.1, ~25x the gradients' RMS: AdamW trains, but as SGD at LR 1e-2 (still falling at the end)
    train(rec, model, torch.optim.AdamW(model.parameters(), lr=1e-3, eps=0.1, weight_decay=1e-2), steps=300,
          seed=seed)


def dropout_mlp(p_hidden, p_input=0.0):
    """64-128-64-10 ReLU MLP with Dropout(p_hidden) after each hidden ReLU (and Dropout(p_input) on the inputs)."""
    import torch.nn as nn
    first = [nn.Dropout(p_input)] if p_input else []
    return nn.Sequential(*first, nn.Linear(64, 128), nn.ReLU(), nn.Dropout(p_hidden), nn.Linear(128, 64), nn.ReLU(),
                         nn.Dropout(p_hidden), nn.Linear(64, 10))


def summed_cross_entropy_sgd(rec, seed):
    import torch
    import torch.nn.functional as F
    torch.manual_seed(75 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    # reduction='sum' over batches of 64 at an LR tuned down for it: the steps are sane, the sum is still a sum
    train(rec, model, torch.optim.SGD(model.parameters(), lr=0.05 / 64, momentum=0.9), steps=200, seed=seed,
          loss_fn=lambda out, y: F.cross_entropy(out, y, reduction="sum"))


def normal_init_batchnorm_mlp(rec, seed):
    import torch
    import torch.nn as nn
    torch.manual_seed(76 + 1000 * seed)
    model = mlp([64, 128, 128, 10], norm="batch")
    for m in model.modules():          # "std=1 like the paper": the BatchNorms hide it until the output
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 1.0)
    train(rec, model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), steps=300, seed=seed)


def validation_with_dropout_on(rec, seed):
    import torch
    torch.manual_seed(77 + 1000 * seed)
    model = dropout_mlp(0.5)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    Xtr, ytr, Xva, yva = digits()
    rec.watch(model, opt)
    g = torch.Generator().manual_seed(seed)
    for step in range(300):
        idx = torch.randint(0, len(Xtr), (64,), generator=g)
        loss = cross_entropy(model(Xtr[idx]), ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec.log({"train/loss": loss.detach()}, step=step)
        if step % 20 == 0 or step == 299:
            with torch.no_grad():      # no model.eval(): the Dropouts still drop half the units
                rec.log({"val/loss": cross_entropy(model(Xva), yva)}, step=step)


def softmax_in_loop_sgd(rec, seed):
    import torch
    import torch.nn.functional as F
    torch.manual_seed(78 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    # .softmax(1) in the training loop before cross_entropy: under SGD every step shrinks ~10x
    train(rec, model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), steps=300, seed=seed,
          loss_fn=lambda out, y: F.cross_entropy(out.softmax(1), y))


def gan_generator_fake_labels(rec, seed):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    torch.manual_seed(79 + 1000 * seed)
    g = torch.Generator().manual_seed(seed)
    netG = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
    netD = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
    optD = torch.optim.Adam(netD.parameters(), lr=2e-3, betas=(0.5, 0.999))
    optG = torch.optim.Adam(netG.parameters(), lr=2e-3, betas=(0.5, 0.999))
    rec.watch(netD, optD)
    ones, zeros = torch.ones(64, 1), torch.zeros(64, 1)
    for step in range(300):
        real = torch.randn(64, 2, generator=g) * 0.5 + torch.tensor([2.0, -1.0])
        fake = netG(torch.randn(64, 8, generator=g))
        loss_d = (F.binary_cross_entropy_with_logits(netD(real), ones)
                  + F.binary_cross_entropy_with_logits(netD(fake.detach()), zeros))
        optD.zero_grad()
        loss_d.backward()
        optD.step()
        # the DCGAN loop's generator step with the wrong label: G helps D call its fakes fake
        loss_g = F.binary_cross_entropy_with_logits(netD(fake), zeros)
        optG.zero_grad()
        loss_g.backward()
        optG.step()
        rec.log({"Loss_D": loss_d.detach(), "Loss_G": loss_g.detach()}, step=step)


def dropout_ninety(rec, seed):
    import torch
    torch.manual_seed(71 + 1000 * seed)
    model = dropout_mlp(0.9)
    # Dropout(0.9) after each hidden layer: 1 unit in 10 survives; the training loss stays high and noisy
    train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3), steps=300, seed=seed)


def healthy_dropout(rec, seed):
    import torch
    torch.manual_seed(72 + 1000 * seed)
    model = dropout_mlp(0.5, p_input=0.1)
    train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3), steps=300, seed=seed)


def apart_dropout_net(p):
    """pytorch/examples' mnist Net as an MLP: the Dropouts registered after the layers, the ReLUs
    applied as functions, so no Dropout follows its input in registration order."""
    import torch.nn as nn
    import torch.nn.functional as F

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.fc3 = nn.Linear(64, 128), nn.Linear(128, 64), nn.Linear(64, 10)
            self.dropout1, self.dropout2 = nn.Dropout(p), nn.Dropout(p)

        def forward(self, x):
            x = self.dropout1(F.relu(self.fc1(x)))
            return self.fc3(self.dropout2(F.relu(self.fc2(x))))
    return Net()


def dropout_ninety_registered_apart(rec, seed):
    import torch
    torch.manual_seed(74 + 1000 * seed)
    model = apart_dropout_net(0.9)
    train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3), steps=300, seed=seed)


def healthy_dropout_registered_apart(rec, seed):
    import torch
    torch.manual_seed(75 + 1000 * seed)
    model = apart_dropout_net(0.25)
    train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3), steps=300, seed=seed)


def healthy_adam_eps_1e3(rec, seed):
    import torch
    torch.manual_seed(73 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    # eps=1e-3 (some RL and TPU recipes): below the gradients' RMS here, Adam trains normally
    train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-3), steps=300, seed=seed)


def zero_grad_between_backward_and_step(rec, seed):
    import torch
    torch.manual_seed(80 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3), seed=seed, mistake="zero_grad_after_backward")


def backward_never_called(rec, seed):
    import torch
    torch.manual_seed(81 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    train(rec, model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), seed=seed, mistake="no_backward")


def optimizer_step_forgotten(rec, seed):
    import torch
    torch.manual_seed(82 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3), seed=seed, mistake="no_step")


def sorted_by_class_unshuffled(rec, seed):
    import torch
    torch.manual_seed(76 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    train_epochs(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3), order="sorted", seed=seed)


def sorted_by_class_cnn_sgd_momentum(rec, seed):
    import torch
    torch.manual_seed(77 + 1000 * seed)
    model = small_cnn()
    train_epochs(rec, model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), order="sorted", seed=seed)


def healthy_shuffled_epochs(rec, seed):
    import torch
    torch.manual_seed(78 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    train_epochs(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3), order="shuffled", seed=seed)


def healthy_fixed_order_epochs(rec, seed):
    import torch
    torch.manual_seed(79 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    # shuffled once, then the same order every epoch: repeats, but every batch mixes the classes
    train_epochs(rec, model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), order="fixed", seed=seed)


def healthy_mixup(rec, seed):
    import torch
    torch.manual_seed(80 + 1000 * seed)
    model = mlp([64, 128, 64, 10])
    # mixup (timm's recipe, alpha 0.4): each batch's loss follows its mixing weight, so the training
    # curve swings and stays high while the validation loss on clean digits falls steadily
    train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3), steps=600, mixup=0.4, seed=seed)


class _Cast:
    """A parameter-free module that casts its input (a bfloat16 model fed float32 digits)."""

    def __new__(cls, dtype):
        import torch.nn as nn

        class Cast(nn.Module):
            def forward(self, x):
                return x.to(dtype)
        return Cast()


def bf16_weights_small_lr(rec, seed):
    import torch
    torch.manual_seed(74 + 1000 * seed)
    # model.to(torch.bfloat16) and a plain AdamW at 1e-4: each step is ~0.1 % of a weight, below
    # bfloat16's half-precision step (0.39 %): most updates round away, the loss creeps
    model = torch.nn.Sequential(_Cast(torch.bfloat16), *mlp([64, 128, 64, 10]), _Cast(torch.float32))
    model = model.to(torch.bfloat16)
    train(rec, model, torch.optim.AdamW(model.parameters(), lr=1e-4), steps=300, seed=seed)


def _nanogpt_recipe(rec, seed, seed_base, lr, warmup):
    """The tiny transformer at GPT-2's init (std 0.02), nanoGPT's AdamW (betas 0.9/0.95, weight
    decay 0.1) at ``lr``, ``warmup`` steps of warm-up, then a cosine to lr/10."""
    import torch
    torch.manual_seed(seed_base + 1000 * seed)
    model = tiny_transformer()
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.normal_(m.weight, std=0.02)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    train(rec, model, opt, lr_at=warmup_cosine(lr, warmup, 250, floor=lr / 10), steps=250, seed=seed)


def transformer_adam_lr_tenth(rec, seed):
    # nanoGPT's recipe at learning_rate=0.1: Adam moves every weight by ~0.1 a step, five times
    # the weights' own scale; the matrices blow up within the warm-up
    _nanogpt_recipe(rec, seed, 75, 0.1, 25)


def transformer_adam_no_warmup(rec, seed):
    # AdamW at 0.3 from the first step (no warm-up, no clipping): the loss goes 2.3 -> ~700
    # within ten steps and takes ~60 to fall back below where it started, then trains (nanoGPT
    # at learning_rate=3 without warm-up: "no problems found" before loss_blowup)
    _nanogpt_recipe(rec, seed, 76, 0.3, 0)


def iris_raw_features(rec, seed):
    import torch
    torch.manual_seed(65 + 1000 * seed)
    model = mlp([4, 16, 3])
    train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-2), data=iris(raw=True), batch=16, steps=250,
          val_every=10, seed=seed)


def rl_goal_out_of_reach(rec, seed):
    """REINFORCE (pytorch/examples' reinforce.py) on a corridor whose goal lies 12 cells away while an
    episode lasts 8 steps: every episode ends with the same reward, so there is nothing to learn from."""
    import torch
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    policy = mlp([13, 32, 2])
    opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
    for episode in range(200):
        pos, log_probs, rewards = 0, [], []
        for _ in range(8):
            state = torch.zeros(1, 13)
            state[0, pos] = 1.0
            probs = policy(state).softmax(-1)[0]
            action = int(torch.multinomial(probs, 1, generator=g))
            log_probs.append(probs[action].log())
            pos = min(12, max(0, pos + (1 if action else -1)))
            rewards.append(1.0 if pos == 12 else -0.01)
        returns = torch.tensor(rewards).flip(0).cumsum(0).flip(0)
        loss = -(torch.stack(log_probs) * (returns - returns.mean())).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec.log({"loss": loss.item(), "episode_reward": sum(rewards), "episode_length": 8.0}, step=episode)


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
    Scenario("checkpoint_cuts_graph", checkpoint_cuts_graph, "frozen_layers", ("graph_detached",),
             "blocks under reentrant torch.utils.checkpoint over the raw batch: only the head gets gradients"),
    Scenario("model_left_in_eval_mode", model_left_in_eval_mode, "eval_mode_training", ("train_mode_off",),
             "model.eval() for the first validation and no model.train() after it"),
    Scenario("sgd_small_lr_still_falling", sgd_small_lr_still_falling, "slow_convergence", ("lr_too_low",),
             "plain SGD 0.01 stopped after 300 steps while the loss still falls", severity="info"),
    # healthy runs that look scary: all must stay silent
    Scenario("healthy_noisy_small_batch_sgd", healthy_noisy_small_batch_sgd, None,
             about="MLP, plain SGD with batch 4: a ragged loss curve"),
    Scenario("healthy_warmup_bump", healthy_warmup_bump, None,
             about="tiny transformer, AdamW with a 40-step warm-up to 3e-3, cosine decay"),
    Scenario("healthy_step_schedule", healthy_step_schedule, None,
             about="SGD 0.1 then 0.01 from step 150 (20 % label noise): a plateau, then a drop"),
    Scenario("healthy_label_noise_step_schedule", healthy_label_noise_step_schedule, None,
             about="20 % random labels, SGD 0.1 then 0.01 from step 150: a floor reached early"),
    Scenario("healthy_frozen_backbone", healthy_frozen_backbone, None,
             about="pretrained backbone frozen on purpose (requires_grad=False), only the head trains"),
    Scenario("healthy_checkpointed", healthy_checkpointed, None,
             about="residual MLP, blocks under non-reentrant torch.utils.checkpoint"),
    Scenario("healthy_no_grad_backbone", healthy_no_grad_backbone, None,
             about="backbone run under torch.no_grad() (still requires grad), only the head in the optimizer"),
    Scenario("healthy_high_loss_floor", healthy_high_loss_floor, None,
             about="60 % random labels: the loss settles at a high irreducible floor"),
    Scenario("healthy_sparse_validation", healthy_sparse_validation, None,
             about="validation logged only every 500 of 1500 steps"),
    Scenario("healthy_gru", healthy_gru, None, about="GRU reading digits row by row, Adam 3e-3, clip 1.0"),
    Scenario("healthy_regression", healthy_regression, None, about="diabetes regression, standardised, Adam"),
    Scenario("healthy_xor_batch1", healthy_xor_batch1, None,
             about="XOR with batch 1: all-zero and all-ones rows (std 0) are half of the batches"),
    # planted pathologies on other model kinds
    Scenario("cnn_lr_too_high", cnn_lr_too_high, "divergence", ("lr_too_high",), "CNN, SGD LR 0.5 momentum 0.9"),
    Scenario("cnn_dead_relu", cnn_dead_relu, "dead_units", ("bad_init",), "CNN with conv biases initialised to -6"),
    Scenario("cnn_raw_pixels", cnn_raw_pixels, "unnormalized_inputs", ("input_scaling",),
             "CNN fed 0..255 pixel values"),
    Scenario("cnn_constant_init", cnn_constant_init, "symmetric_weights", ("bad_init",),
             "CNN whose every weight starts at 0.05"),
    Scenario("residual_big_init_exploding", residual_big_init_exploding, "exploding_gradients", ("bad_init",),
             "6 residual blocks without normalisation, weights 4x the default init"),
    Scenario("residual_lr_too_low", residual_lr_too_low, "no_progress", ("lr_too_low",),
             "residual LayerNorm MLP, AdamW LR 1e-7"),
    Scenario("transformer_warmup_too_high", transformer_warmup_too_high, "divergence", ("lr_too_high",),
             "tiny transformer, Adam warmed up from 1e-4 to 0.3 over 150 steps"),
    Scenario("transformer_lr_too_low", transformer_lr_too_low, "no_progress", ("lr_too_low",),
             "tiny transformer, SGD LR 1e-5"),
    Scenario("rnn_exploding_through_time", rnn_exploding_through_time, "exploding_gradients", ("bad_init",),
             "ReLU RNN over the 8 rows of a digit, recurrent weights orthogonal x 3.5"),
    Scenario("lstm_lr_too_high", lstm_lr_too_high, "divergence", ("lr_too_high",),
             "LSTM reading digit rows, SGD LR 100 without clipping"),
    Scenario("gru_head_missing_from_optimizer", gru_head_missing_from_optimizer, "frozen_layers",
             ("optimizer_setup",), "GRU whose Linear head is left out of the optimizer"),
    Scenario("regression_raw_features", regression_raw_features, "unnormalized_inputs", ("input_scaling",),
             "diabetes regression on raw clinical features (ages, serum values up to ~300)"),
    Scenario("regression_lr_too_low", regression_lr_too_low, "no_progress", ("lr_too_low",),
             "diabetes regression, SGD LR 1e-6"),
    Scenario("batchnorm_layer_missing_from_optimizer", batchnorm_layer_missing_from_optimizer, "frozen_layers",
             ("optimizer_setup",), "BatchNorm MLP, first Linear left out of the optimizer"),
    Scenario("batchnorm_lr_too_low", batchnorm_lr_too_low, "no_progress", ("lr_too_low",),
             "BatchNorm CNN, SGD LR 1e-6"),
    Scenario("sigmoid_big_init_saturation", sigmoid_big_init_saturation, "saturated_activations", ("bad_init",),
             "sigmoid MLP, weights 20x the default init"),
    # wrong advice seen on real programs (issue 12)
    Scenario("mnist_adadelta_lr40", mnist_adadelta_lr40, "no_progress", ("lr_too_high",),
             "pytorch/examples mnist at --lr 40: Adadelta LR 40, the loss explodes then sits at chance"),
    Scenario("ddp_tutorial_one_output", ddp_tutorial_one_output, "no_progress", ("loss_setup",),
             "torchrun DDP tutorial: cross_entropy over a 1-output model, loss and gradients exactly 0"),
    Scenario("softmax_over_one_unit", softmax_over_one_unit, "no_progress", ("loss_setup", "activation_choice"),
             "binary classifier with Softmax(dim=1) over its single output unit: every gradient is 0"),
    Scenario("first_forward_nan_stacked_exp", first_forward_nan_stacked_exp, "nan_inf", ("numerical_instability",),
             "three stacked exp() activations: Inf in the first forward pass, before any update"),
    Scenario("missing_zero_grad", missing_zero_grad, "exploding_gradients", ("optimizer_setup",),
             "optimizer.zero_grad() forgotten: gradients accumulate, their norm grows with the step"),
    Scenario("missing_zero_grad_sgd_momentum", missing_zero_grad_sgd_momentum, "divergence", ("optimizer_setup",),
             "MLP, SGD 0.01 momentum 0.9, zero_grad() forgotten: the ReLUs die and the summed gradient sits still"),
    Scenario("hand_written_update_without_clearing", hand_written_update_without_clearing, "gradients_not_cleared",
             ("optimizer_setup",), "tutorial-style p -= lr * p.grad without p.grad = None: gradients accumulate"),
    Scenario("healthy_hand_written_update", healthy_hand_written_update, None,
             about="tutorial-style p -= lr * p.grad, then p.grad = None"),
    Scenario("warmup_stepped_per_epoch", warmup_stepped_per_epoch, "warmup_unfinished", ("lr_too_low",),
             "a per-update warm-up of 100 updates stepped with the epoch number: LR 0 for an epoch, never reached"),
    Scenario("iris_raw_features", iris_raw_features, "unnormalized_inputs", ("input_scaling",),
             "iris features in cm as they come (0.1..7.9, mean 3.5)"),
    Scenario("adamw_cosine_lr_ten_times_low", adamw_cosine_lr_ten_times_low, "small_updates", ("lr_too_low",),
             "AdamW, warm-up and cosine to 0, peak 1e-4 (1e-3 trains it): falls a little, the weights barely move"),
    Scenario("multitask_unscaled_target", multitask_unscaled_target, "loss_term_dominates", ("loss_terms_unbalanced",),
             "classification + regression heads, the regression target in raw units: its MSE drowns the CE"),
    Scenario("vae_kl_sign_flipped", vae_kl_sign_flipped, "loss_unbounded", ("loss_sign",),
             "VAE with its KL term subtracted: the loss runs away below zero"),
    # wrong advice seen on practitioners' bugs (sweep of 2026-12-06)
    Scenario("clip_far_below_gradients", clip_far_below_gradients, "no_progress", ("clipping_too_tight",),
             "clip_grad_norm_ at 1e-4 against gradient norms ~0.5: every update scaled down ~5000x"),
    Scenario("adam_weight_decay_one", adam_weight_decay_one, "no_progress", ("weight_decay_too_strong",),
             "Adam with weight_decay=1.0: the weights decay to ~0"),
    Scenario("softmax_before_cross_entropy", softmax_before_cross_entropy, "early_plateau", ("activation_choice",),
             "nn.Softmax on the output before cross_entropy: the loss stalls near 1.5"),
    Scenario("softmax_in_forward_before_cross_entropy", softmax_in_forward_before_cross_entropy, "softmax_floor",
             ("loss_setup",), "F.softmax at the end of forward() before cross_entropy: no batch loss below 1.461"),
    # wrong advice on settings read from the run (sweep of 2026-12-06)
    Scenario("adam_eps_one", adam_eps_one, "no_progress", ("adam_eps_too_large",),
             "Adam with eps=1: steps ~lr * m / eps, ~300x too small"),
    Scenario("adamw_eps_tenth", adamw_eps_tenth, "slow_convergence", ("adam_eps_too_large",),
             "AdamW with eps=0.1 (~25x the gradients' RMS): still falling slowly at the end"),
    Scenario("summed_cross_entropy_sgd", summed_cross_entropy_sgd, "loss_summed", ("loss_summed",),
             "CrossEntropyLoss(reduction='sum') over batches of 64 under SGD"),
    Scenario("normal_init_batchnorm_mlp", normal_init_batchnorm_mlp, "loss_at_init_high", ("bad_init",),
             "a BatchNorm MLP whose Linear weights are initialised N(0, 1): the first loss far above ln 10"),
    Scenario("validation_with_dropout_on", validation_with_dropout_on, "validation_in_train_mode",
             ("train_mode_at_validation",), "validation under no_grad without model.eval(): Dropout(0.5) still on"),
    Scenario("softmax_in_loop_sgd", softmax_in_loop_sgd, "stuck_at_chance", ("loss_setup", "label_noise"),
             "logits softmaxed in the loop before cross_entropy, SGD: the loss creeps off chance"),
    Scenario("gan_generator_fake_labels", gan_generator_fake_labels, "gan_losses_vanish",
             ("generator_helps_discriminator",), "a GAN whose generator step scores its fakes against the fake label"),
    Scenario("dropout_ninety", dropout_ninety, "strong_dropout", ("dropout_too_strong",),
             "Dropout(0.9) after each hidden ReLU: the training loss stays high"),
    Scenario("healthy_dropout", healthy_dropout, None, about="MLP with Dropout(0.1) on the inputs, Dropout(0.5) hidden"),
    Scenario("dropout_ninety_registered_apart", dropout_ninety_registered_apart, "strong_dropout",
             ("dropout_too_strong",), "mnist-style Net: Dropout(0.9) modules registered after the layers, F.relu"),
    Scenario("healthy_dropout_registered_apart", healthy_dropout_registered_apart, None,
             about="mnist-style Net: Dropout(0.25) modules registered after the layers, F.relu"),
    Scenario("healthy_adam_eps_1e3", healthy_adam_eps_1e3, None, about="Adam with eps=1e-3 (RL/TPU recipes)"),
    Scenario("bf16_weights_small_lr", bf16_weights_small_lr, "lost_updates", ("low_precision_weights",),
             "model.to(torch.bfloat16) with AdamW at 1e-4: steps below half bfloat16's precision"),
    Scenario("zero_grad_between_backward_and_step", zero_grad_between_backward_and_step, "no_progress",
             ("grads_cleared_before_step",), "loss.backward(); optimizer.zero_grad(); optimizer.step(): every step "
             "finds the gradients gone"),
    Scenario("backward_never_called", backward_never_called, "no_progress", ("no_backward",),
             "optimizer.zero_grad(); optimizer.step() with no loss.backward() in the loop"),
    Scenario("optimizer_step_forgotten", optimizer_step_forgotten, "no_progress", ("no_optimizer_step",),
             "zero_grad(), backward() and no optimizer.step() in the loop"),
    Scenario("sorted_by_class_unshuffled", sorted_by_class_unshuffled, "periodic_loss", ("unshuffled_data",),
             "MLP, Adam 1e-3, digits stored class by class and fed in that order every epoch (shuffle=False)"),
    Scenario("sorted_by_class_cnn_sgd_momentum", sorted_by_class_cnn_sgd_momentum, "periodic_loss",
             ("unshuffled_data",), "2-conv CNN, SGD 0.01 momentum 0.9, digits class by class every epoch"),
    Scenario("healthy_shuffled_epochs", healthy_shuffled_epochs, None,
             about="MLP, Adam 1e-3, epochs over the digits in a new order each (shuffle=True)"),
    Scenario("healthy_mixup", healthy_mixup, None,
             about="mixup (alpha 0.4) on digits: a flat, swinging training loss, a validation loss that keeps falling"),
    Scenario("healthy_fixed_order_epochs", healthy_fixed_order_epochs, None,
             about="MLP, SGD momentum, one random order reused every epoch: repeats, classes mixed (a note at most)"),
    Scenario("transformer_adam_lr_tenth", transformer_adam_lr_tenth, "weight_growth", ("lr_too_high",),
             "AdamW at 0.1 with warm-up + cosine (nanoGPT's recipe): the weight matrices grow ~10x early"),
    Scenario("transformer_adam_no_warmup", transformer_adam_no_warmup, "loss_blowup", ("lr_too_high",),
             "AdamW at 0.3 from the first step, no warm-up: the loss blows up 300x, then recovers"),
    Scenario("rl_goal_out_of_reach", rl_goal_out_of_reach, "return_not_improving", ("sparse_reward",),
             "REINFORCE on a corridor whose goal is beyond an episode's reach: the same reward every episode"),
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
