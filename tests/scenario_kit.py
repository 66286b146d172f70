"""Building blocks of the scenario suite (tests/scenarios.py): small data sets, small models of
every common kind, and one training loop that every scenario shares.

Data sets are the ones sklearn ships (no download): ``load_digits`` (8x8 digits, 10 classes),
``load_iris`` and ``load_diabetes``. Sequence and attention models read a digit as a sequence
(8 rows of 8 pixels, or 64 pixels of 1), so every model kind trains on the same task.
"""
from __future__ import annotations

import math

import numpy as np

_DATA = {}


def _split(X, y, n_train):
    import torch
    return (torch.from_numpy(X[:n_train]), torch.from_numpy(y[:n_train]),
            torch.from_numpy(X[n_train:]), torch.from_numpy(y[n_train:]))


def _standardise(X, n_train):
    mean, std = X[:n_train].mean(0), X[:n_train].std(0)
    return (X - mean) / np.where(std > 0, std, 1.0)


def digits(raw: bool = False, n_train: int = 1400):
    """(X_train, y_train, X_val, y_val) as torch tensors; standardised unless ``raw``."""
    import torch
    key = ("digits", raw, n_train)
    if key not in _DATA:
        from sklearn.datasets import load_digits
        X, y = load_digits(return_X_y=True)
        rng = np.random.default_rng(0)
        order = rng.permutation(len(X))
        X, y = X[order].astype(np.float32), y[order].astype(np.int64)
        if raw:
            X = X * 16.0            # 0..255 like raw 8-bit pixels, never rescaled
        else:
            X = _standardise(X, 1400).astype(np.float32)
        _DATA[key] = (torch.from_numpy(X[:n_train]), torch.from_numpy(y[:n_train]),
                      torch.from_numpy(X[1400:]), torch.from_numpy(y[1400:]))
    return _DATA[key]


def iris(raw: bool = True):
    """Iris (150 flowers, 4 features in cm, 3 classes): 120 to train, 30 to validate.

    Raw, the features lie in 0.1..7.9 (mean 3.5, std 2): mildly unscaled, as users feed them."""
    key = ("iris", raw)
    if key not in _DATA:
        from sklearn.datasets import load_iris
        X, y = load_iris(return_X_y=True)
        order = np.random.default_rng(0).permutation(len(X))
        X, y = X[order].astype(np.float32), y[order].astype(np.int64)
        if not raw:
            X = _standardise(X, 120).astype(np.float32)
        _DATA[key] = _split(X, y, 120)
    return _DATA[key]


def diabetes(raw: bool = False):
    """Diabetes regression (442 patients, 10 features, disease progression): 350 / 92.

    The target is standardised; the features are standardised unless ``raw`` (age in years,
    blood pressure, serum values up to ~300: unscaled, as they come from the clinic)."""
    key = ("diabetes", raw)
    if key not in _DATA:
        from sklearn.datasets import load_diabetes
        X, y = load_diabetes(return_X_y=True, scaled=False)
        order = np.random.default_rng(0).permutation(len(X))
        X, y = X[order].astype(np.float32), y[order].astype(np.float32)
        y = ((y - y[:350].mean()) / y[:350].std()).astype(np.float32)
        if not raw:
            X = _standardise(X, 350).astype(np.float32)
        _DATA[key] = _split(X, y, 350)
    return _DATA[key]


def binary_rows(n_bits: int = 2):
    """Every n-bit input (rows of all zeros and all ones included), label = XOR of the bits.

    With batch size 1, an all-zero or all-ones row has std 0 and switches ReLUs off: the
    statistics of such a batch are degenerate, not evidence of a fault."""
    import torch
    key = ("binary", n_bits)
    if key not in _DATA:
        X = np.array([[(i >> b) & 1 for b in range(n_bits)] for i in range(2 ** n_bits)], dtype=np.float32)
        y = (X.sum(1) % 2).astype(np.int64)
        X, y = torch.from_numpy(X), torch.from_numpy(y)
        _DATA[key] = (X, y, X, y)
    return _DATA[key]


# ------------------------------------------------------------------------ models
def mlp(sizes, act="relu", norm=None, out_act=None):
    import torch.nn as nn
    acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            if norm == "batch":
                layers.append(nn.BatchNorm1d(b))
            layers.append(acts[act]())
    if out_act is not None:
        layers.append(out_act)
    return nn.Sequential(*layers)


def small_cnn(norm: bool = False, widths=(8, 16), hidden: int = 0):
    """Conv-ReLU-Conv-ReLU-MaxPool (+BatchNorm2d) over 8x8 digits, then a Linear head
    (with a hidden Linear-ReLU if ``hidden``)."""
    import torch.nn as nn
    a, b = widths
    layers = [nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, a, 3, padding=1)]
    layers += [nn.BatchNorm2d(a)] if norm else []
    layers += [nn.ReLU(), nn.Conv2d(a, b, 3, padding=1)]
    layers += [nn.BatchNorm2d(b)] if norm else []
    layers += [nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()]
    if hidden:
        layers += [nn.Linear(b * 16, hidden), nn.ReLU(), nn.Linear(hidden, 10)]
    else:
        layers += [nn.Linear(b * 16, 10)]
    return nn.Sequential(*layers)


def residual_mlp(width: int = 64, blocks: int = 3, norm: bool = True):
    """x + GELU(Linear(LayerNorm(x))) blocks between an input and an output Linear."""
    import torch.nn as nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = nn.LayerNorm(width) if norm else nn.Identity()
            self.fc = nn.Linear(width, width)
            self.act = nn.GELU()

        def forward(self, x):
            return x + self.act(self.fc(self.norm(x)))

    tail = [nn.LayerNorm(width)] if norm else []
    return nn.Sequential(nn.Linear(64, width), *[Block() for _ in range(blocks)], *tail, nn.Linear(width, 10))


def tiny_transformer(d: int = 32, layers: int = 2):
    """A digit as 8 tokens (its rows): Linear embedding + learned positions, a 2-layer
    TransformerEncoder (pre-norm), mean pooling, a Linear head."""
    import torch
    import torch.nn as nn

    class TinyTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(8, d)
            self.pos = nn.Parameter(torch.zeros(8, d))
            layer = nn.TransformerEncoderLayer(d, nhead=4, dim_feedforward=2 * d, dropout=0.0, batch_first=True,
                                               norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.head = nn.Linear(d, 10)

        def forward(self, x):
            h = self.encoder(self.embed(x.view(-1, 8, 8)) + self.pos)
            return self.head(h.mean(1))
    return TinyTransformer()


def recurrent(kind: str = "gru", hidden: int = 32, pixels: bool = False, nonlinearity: str = "tanh"):
    """An RNN/LSTM/GRU reading a digit row by row (8 steps of 8) or pixel by pixel (64 of 1);
    its last hidden state goes to a Linear head."""
    import torch.nn as nn
    steps, width = (64, 1) if pixels else (8, 8)

    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            extra = {"nonlinearity": nonlinearity} if kind == "rnn" else {}
            self.rnn = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[kind](width, hidden, batch_first=True, **extra)
            self.head = nn.Linear(hidden, 10)

        def forward(self, x):
            out, _ = self.rnn(x.view(-1, steps, width))
            return self.head(out[:, -1])
    return Recurrent()


def scale_init(model, gain: float, types=("Linear", "Conv2d")) -> None:
    """Multiply the weights of every layer of ``types`` by ``gain`` (a too-large/small init)."""
    import torch
    with torch.no_grad():
        for m in model.modules():
            if type(m).__name__ in types:
                m.weight.mul_(gain)


# ------------------------------------------------------------------------ loop
def cross_entropy(out, y):
    import torch.nn.functional as F
    return F.cross_entropy(out, y)


def digit_value_mse(out, y):
    """Regression on digits: the digit's value / 9 from one output unit."""
    import torch.nn.functional as F
    return F.mse_loss(out.squeeze(-1), y.float() / 9.0)


def mse(out, y):
    import torch.nn.functional as F
    return F.mse_loss(out.squeeze(-1), y)


def train(rec, model, opt, *, data=None, steps=300, batch=64, val_every=20, lr_at=None,
          corrupt_at=(), watch=True, seed=0, regression=False, loss_fn=None, clip=None,
          zero_grad=True, label_noise=0.0, back_to_train=True, mistake=None, mixup=0.0):
    """Plain minibatch training loop; logs train/loss every step, val/loss every ``val_every``.

    ``regression``: mean squared error against the digit's value / 9 (one output unit).
    ``loss_fn(out, y)`` replaces the loss; ``clip`` clips the gradient norm; ``zero_grad=False``
    forgets ``optimizer.zero_grad()`` (gradients accumulate); ``label_noise`` replaces that
    fraction of each batch's labels by uniformly random ones (an irreducible loss floor);
    ``back_to_train=False`` forgets ``model.train()`` after the first validation; ``mistake``
    "zero_grad_after_backward" clears the gradients between ``backward()`` and ``step()``,
    "no_backward" never calls ``backward()``, "no_step" never ``optimizer.step()``; ``mixup``
    (Beta(a, a)) trains on mixed pairs of inputs with the loss mixed likewise, as mixup does."""
    import torch
    torch.manual_seed(seed)
    Xtr, ytr, Xva, yva = data if data is not None else digits()
    if loss_fn is None:
        loss_fn = digit_value_mse if regression else cross_entropy
    if watch:
        rec.watch(model, opt)
    g = torch.Generator().manual_seed(seed)
    corrupt_at = set(corrupt_at)
    for step in range(steps):
        if lr_at is not None:
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
        idx = torch.randint(0, len(Xtr), (batch,), generator=g)
        xb, yb = Xtr[idx], ytr[idx]
        if step in corrupt_at:          # a corrupted batch: every label wrong
            yb = (yb + 1) % 10
        if label_noise:
            flip = torch.rand(batch, generator=g) < label_noise
            yb = torch.where(flip, torch.randint(0, 10, (batch,), generator=g), yb)
        if back_to_train or step == 0:
            model.train()
        if mixup:
            lam = float(torch.distributions.Beta(mixup, mixup).sample())
            pair = torch.randperm(batch, generator=g)
            out = model(lam * xb + (1 - lam) * xb[pair])
            loss = lam * loss_fn(out, yb) + (1 - lam) * loss_fn(out, yb[pair])
        else:
            loss = loss_fn(model(xb), yb)
        if zero_grad and mistake is None:
            opt.zero_grad()
        if mistake != "no_backward":
            loss.backward()
        if mistake in ("zero_grad_after_backward", "no_backward"):
            opt.zero_grad()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        if mistake != "no_step":
            opt.step()
        rec.log({"train/loss": loss.detach()}, step=step)
        if val_every and (step % val_every == 0 or step == steps - 1):
            model.eval()
            with torch.no_grad():
                val = loss_fn(model(Xva), yva)
            rec.log({"val/loss": val}, step=step)


def train_epochs(rec, model, opt, *, order="shuffled", epochs=14, batch=64, seed=0, val_every=20):
    """Epoch loop over the digits' training set in batches, as a DataLoader gives them: ``order``
    "shuffled" (a new order every epoch, ``shuffle=True``), "fixed" (one random order made once and
    reused, ``shuffle=False`` over a shuffled file) or "sorted" (class by class, ``shuffle=False``
    over an ImageFolder). Logs train/loss every step and val/loss every ``val_every`` steps."""
    import torch
    torch.manual_seed(seed)
    Xtr, ytr, Xva, yva = digits()
    if order == "sorted":
        by_class = torch.argsort(ytr, stable=True)
        Xtr, ytr = Xtr[by_class], ytr[by_class]
    rec.watch(model, opt)
    g = torch.Generator().manual_seed(seed)
    once = torch.randperm(len(Xtr), generator=g)
    step = 0
    for _ in range(epochs):
        perm = {"sorted": torch.arange(len(Xtr)), "fixed": once}.get(order)
        if perm is None:
            perm = torch.randperm(len(Xtr), generator=g)
        for start in range(0, len(Xtr), batch):
            idx = perm[start:start + batch]
            model.train()
            loss = cross_entropy(model(Xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.detach()}, step=step)
            if step % val_every == 0:
                model.eval()
                with torch.no_grad():
                    rec.log({"val/loss": cross_entropy(model(Xva), yva)}, step=step)
            step += 1


def warmup_cosine(peak: float, warmup: int, total: int, floor: float = 0.0):
    """Linear warm-up from 0 to ``peak`` over ``warmup`` steps, then cosine decay to ``floor``."""
    def lr(step):
        if step < warmup:
            return peak * (step + 1) / warmup
        t = (step - warmup) / max(1, total - warmup)
        return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    return lr


def fit_and_diagnose(path, model, opt, loss_of, steps: int):
    """Record ``steps`` optimizer steps on ``loss_of()`` (a fresh batch's loss each call), logging
    it as train/loss, and diagnose the run: the plain loop many advisor tests share."""
    from trainspect.analysis import diagnose
    from trainspect.recorder import Recorder
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for _ in range(steps):
            loss = loss_of()
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
    return diagnose(path)
