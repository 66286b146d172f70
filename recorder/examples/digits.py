"""Train a small MLP on sklearn's bundled ``load_digits`` with a planted convergence problem,
recorded with the trainspect Recorder. ``trainspect demo`` runs this as a subprocess.

    python -m trainspect.recorder.examples.digits --scenario lr-too-high --steps 400 --out runs/demo.h5

Each scenario is a model builder, an optimizer and a data tweak. Torch and scikit-learn are
imported inside functions so ``import recorder.examples.digits`` stays light.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np

DEFAULT_SCENARIO = "lr-too-high"
N_TRAIN = 1400          # of 1797 digits; the rest is the validation set


@dataclass(frozen=True)
class Scenario:
    about: str            # what is planted, in words
    symptoms: tuple       # symptom ids the advisor should name, most telling first (empty = healthy)
    causes: tuple = ()    # cause ids that count as naming the planted problem
    steps: int = 400      # default length (enough for the advisor to see it)
    hidden: tuple = (128, 64)
    act: str = "relu"
    optimizer: str = "adam"
    lr: float = 1e-3
    bias_init: float | None = None      # fill hidden biases (negative = ReLUs start dead)
    raw_pixels: bool = False            # feed 0..255 pixels, never standardised
    n_train: int = N_TRAIN
    label_noise: float = 0.0            # fraction of training labels replaced at random
    batch: int = 64


SCENARIOS = {
    "lr-too-high": Scenario("Adam with learning rate 0.1 (100x the usual 1e-3): ReLUs die, the loss stalls and jumps",
                            ("divergence", "loss_oscillation", "dead_units", "loss_spikes", "early_plateau"),
                            ("lr_too_high",), lr=0.1),
    "vanishing": Scenario("11-layer sigmoid MLP: gradients shrink layer by layer",
                          ("vanishing_gradients",), ("activation_choice", "depth_without_skip_connections"),
                          hidden=(64,) * 10, act="sigmoid", optimizer="sgd", lr=0.1),
    "dead-relu": Scenario("ReLU MLP whose hidden biases start at -4: most units never fire",
                          ("dead_units",), ("bad_init",), hidden=(128, 128), bias_init=-4.0),
    "overfit": Scenario("300 training digits, 30 % wrong labels, a wide MLP, no regularisation",
                        ("overfitting",), ("insufficient_regularization", "label_noise"), steps=800,
                        hidden=(256, 256), lr=2e-3, n_train=300, label_noise=0.3, batch=32),
    "lr-too-low": Scenario("plain SGD with learning rate 1e-5: nothing moves", ("no_progress",), ("lr_too_low",),
                           optimizer="sgd", lr=1e-5),
    "unnormalized": Scenario("raw 0..255 pixel values fed as they are", ("unnormalized_inputs",),
                             ("input_scaling",), raw_pixels=True),
    "healthy": Scenario("MLP 64-128-64-10, ReLU, Adam 1e-3, standardised inputs", ()),
}


def describe() -> dict:
    """What ``--list`` prints (JSON): the demo reads it without importing this package."""
    return {name: {"about": sc.about, "symptoms": list(sc.symptoms), "causes": list(sc.causes), "steps": sc.steps}
            for name, sc in SCENARIOS.items()}


def load_data(sc: Scenario, seed: int = 0):
    """(X_train, y_train, X_val, y_val) torch tensors from sklearn's bundled digits."""
    import torch
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(X))
    X, y = X[order].astype(np.float32), y[order].astype(np.int64)
    if sc.raw_pixels:
        X = X * 16.0
    else:
        mean, std = X[:N_TRAIN].mean(0), X[:N_TRAIN].std(0)
        X = (X - mean) / np.where(std > 0, std, 1.0)
    Xtr, ytr = X[: sc.n_train], y[: sc.n_train].copy()
    if sc.label_noise:
        k = int(sc.label_noise * len(ytr))
        ytr[:k] = np.random.default_rng(seed + 1).integers(0, 10, k)
    return (torch.from_numpy(Xtr), torch.from_numpy(ytr), torch.from_numpy(X[N_TRAIN:]), torch.from_numpy(y[N_TRAIN:]))


def build_model(sc: Scenario):
    import torch.nn as nn

    acts = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
    sizes = (64, *sc.hidden, 10)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = nn.Linear(a, b)
        if sc.bias_init is not None and i < len(sizes) - 2:
            nn.init.constant_(linear.bias, sc.bias_init)
        layers.append(linear)
        if i < len(sizes) - 2:
            layers.append(acts[sc.act]())
    return nn.Sequential(*layers)


def build_optimizer(sc: Scenario, model):
    import torch

    if sc.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=sc.lr)
    return torch.optim.Adam(model.parameters(), lr=sc.lr)


def train(scenario: str, out, steps: int | None = None, pace: float = 0.0, flush_every: float = 0.25,
          seed: int = 0, val_every: int = 10, quiet: bool = False) -> str:
    """Train ``scenario`` for ``steps`` steps, recording into ``out``; returns the path."""
    import torch
    import torch.nn.functional as F

    from trainspect.recorder import Recorder

    sc = SCENARIOS[scenario]
    steps = sc.steps if steps is None else steps
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    Xtr, ytr, Xva, yva = load_data(sc, seed)
    model = build_model(sc)
    opt = build_optimizer(sc, model)
    config = {"scenario": scenario, "about": sc.about, "steps": steps, "lr": sc.lr,
              "optimizer": sc.optimizer, "batch": sc.batch, "hidden": list(sc.hidden), "activation": sc.act}
    gen = torch.Generator().manual_seed(seed)
    # Frequent expensive instruments: the run is tiny and the advisor should see layers early.
    with Recorder(str(out), name=f"digits-{scenario}", config=config, flush_every=flush_every,
                  stats_every=5, hist_every=25, snapshot_every=25, transfer_every=1) as rec:
        rec.watch(model, opt)
        try:   # Ctrl-C (or the demo closing) ends the run as finished, not crashed
            for step in range(steps):
                t0 = time.perf_counter()
                idx = torch.randint(0, len(Xtr), (sc.batch,), generator=gen)
                model.train()
                out_b = model(Xtr[idx])
                loss = F.cross_entropy(out_b, ytr[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                acc = (out_b.argmax(1) == ytr[idx]).float().mean()
                rec.log({"train/loss": loss.detach(), "train/acc": acc}, step=step)
                if step % val_every == 0 or step == steps - 1:
                    model.eval()
                    with torch.no_grad():
                        logits = model(Xva)
                        rec.log({"val/loss": F.cross_entropy(logits, yva),
                                 "val/acc": (logits.argmax(1) == yva).float().mean()}, step=step)
                if not quiet and (step % 50 == 0 or step == steps - 1):
                    print(f"step {step:5d}  train/loss {loss.item():.4f}", flush=True)
                if pace > 0:
                    time.sleep(max(0.0, pace - (time.perf_counter() - t0)))
        except KeyboardInterrupt:
            if not quiet:
                print(f"stopped at step {step}", flush=True)
    return str(rec.path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainspect.recorder.examples.digits", description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", default=DEFAULT_SCENARIO, choices=sorted(SCENARIOS),
                   help=f"planted problem (default {DEFAULT_SCENARIO})")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the scenario's, 400 for most)")
    p.add_argument("--out", default="runs/demo.h5", help="run file to write (default runs/demo.h5)")
    p.add_argument("--flush-every", type=float, default=0.25, help="seconds between flushes (default 0.25)")
    p.add_argument("--pace", type=float, default=0.0,
                   help="minimum seconds per step, so a watcher sees the curves grow (default 0 = full speed)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--list", action="store_true", help="print the scenarios as JSON and exit")
    args = p.parse_args(argv)
    if args.list:
        import json

        print(json.dumps(describe(), indent=1))
        return 0
    if args.steps is not None and args.steps < 1:
        p.error(f"--steps must be at least 1, got {args.steps}")
    if args.flush_every <= 0:
        p.error(f"--flush-every must be positive, got {args.flush_every}")
    train(args.scenario, args.out, steps=args.steps, pace=args.pace, flush_every=args.flush_every,
          seed=args.seed, quiet=args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
