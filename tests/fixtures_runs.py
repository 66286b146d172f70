"""Synthetic but realistic run files written with the low-level RunFileWriter (no torch).

Reusable by every test module: ``make_run(tmp_path / "a.h5", n_steps=2000, spike_at=700)``.
Curves look like training (decaying noisy loss, a validation loss every few steps, per-layer
gradient norms that shrink with depth), so plots, heatmaps and the advisor have something
real to chew on. Everything is seeded: same arguments, same file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trainspect.recorder import format as fmt
from trainspect.recorder.h5file import LayerLayout, RunFileWriter

DEFAULT_METRICS = ("train/loss", "val/loss", "train/acc")


def layer_layout(n_layers: int, width: int = 64) -> LayerLayout:
    """``n_layers`` Linear layers (weight + bias) each followed by a ReLU."""
    params, modules, snap_params, snap_shapes = [], [], [], []
    for i in range(n_layers):
        mod = f"layers.{i}"
        snap_params.append(len(params))
        params.append((f"{mod}.weight", mod, (width, width), width * width))
        params.append((f"{mod}.bias", mod, (width,), width))
        snap_shapes.append((min(width, fmt.SNAP_SIZE), min(width, fmt.SNAP_SIZE)))
        modules.append((mod, "Linear"))
        modules.append((f"act{i}", "ReLU"))
    return LayerLayout(params=params, modules=modules, snap_params=snap_params, snap_shapes=snap_shapes)


def _scalar_curve(name: str, steps: np.ndarray, rng) -> np.ndarray:
    t = steps.astype(np.float64)
    scale = max(float(steps[-1]), 1.0) / 4.0
    if "acc" in name:
        return np.clip(1.0 - 0.9 * np.exp(-t / scale) + rng.normal(0, 0.01, t.size), 0, 1)
    if name.startswith("sys/lr"):
        return np.full(t.size, 1e-3)
    base = 2.3 * np.exp(-t / scale) + 0.1
    if name.startswith("val"):
        base = base + 0.05
    return base * np.exp(rng.normal(0, 0.05, t.size))


def make_run(
    path,
    n_steps: int = 1000,
    metrics=DEFAULT_METRICS,
    n_layers: int = 4,
    spike_at: int | None = None,
    spike_factor: float = 50.0,
    val_every: int = 10,
    stats_every: int = 10,
    hist_every: int = 100,
    snapshot_every: int = 100,
    status: str = fmt.STATUS_FINISHED,
    name: str | None = None,
    config: dict | None = None,
    seed: int = 0,
    chunk_steps: int = 100_000,
    grads_every_step: bool = True,
    grad_spike: tuple | None = None,
    layers: int | None = None,
) -> Path:
    """Write a finished (or crashed/running) run file and return its path.

    ``spike_at``: one single step where ``train/loss`` (the first metric) is multiplied by
    ``spike_factor`` -- the point a level-of-detail bug would hide. Metrics whose name starts
    with ``val`` are logged every ``val_every`` steps, the others every step.
    ``status="running"`` leaves the file open-looking (status attr running, no end time).
    ``grad_spike=(step, param_index, value)`` plants one per-layer gradient-norm outlier.
    ``n_layers`` (alias ``layers``) Linear+ReLU blocks -> 2 params and 2 modules each; 0 = none.
    """
    path = Path(path)
    if layers is not None:   # alias: make_run(p, n_steps, layers=8)
        n_layers = int(layers)
    rng = np.random.default_rng(seed)
    name = name or path.stem
    layout = layer_layout(n_layers) if n_layers else LayerLayout()
    w = RunFileWriter(path)
    # One start time for the metadata and the file's state row (which the app's relative-time
    # axis uses): two time.time() calls drifted apart by more than a step under load.
    start_time = float(w.state[fmt.STATE_START_TIME])
    meta = {
        "name": name,
        "config": config if config is not None else {"lr": 1e-3, "batch_size": 32, "model": "mlp"},
        "start_time": start_time,
        "host": "testhost",
        "versions": {"python": "3.11", "trainspect": "0.1.0"},
        "model": {
            "modules": [{"name": m, "type": t, "params": 0} for m, t in layout.modules],
            "n_params": int(sum(p[3] for p in layout.params)),
        },
        "optimizer": {"type": "SGD", "hyperparameters": {"lr": 1e-3, "momentum": 0.9}, "param_groups": 1},
        "schedule": {"stats_every": stats_every, "hist_every": hist_every, "snapshot_every": snapshot_every},
        "schema_version": fmt.SCHEMA_VERSION,
    }
    w.start(meta, layout, flush_every=1.0)
    metrics = list(metrics)
    w.add_tags(metrics)
    t0 = meta["start_time"] + 0.01  # wall time of step s: t0 + 0.01 s (after the writer started)
    all_steps = np.arange(n_steps, dtype=np.int64)
    # Scalars: written in step chunks so a 1 M-step file never needs all rows in memory twice.
    curves = {}
    for tag, m in enumerate(metrics):
        every = val_every if m.startswith("val") else 1
        s = all_steps[::every]
        v = _scalar_curve(m, s, rng)
        if tag == 0 and spike_at is not None:
            v[np.searchsorted(s, spike_at)] *= spike_factor
        curves[tag] = (s, v)
    for lo in range(0, n_steps, chunk_steps):
        hi = min(n_steps, lo + chunk_steps)
        st, tg, va = [], [], []
        for tag, (s, v) in curves.items():
            sel = slice(np.searchsorted(s, lo), np.searchsorted(s, hi))
            st.append(s[sel]); tg.append(np.full(s[sel].size, tag, np.int32)); va.append(v[sel])
        st = np.concatenate(st); order = np.argsort(st, kind="stable")
        st = st[order]
        w.append_scalars(st, np.concatenate(tg)[order], np.concatenate(va)[order], t0 + st * 0.01)
        w.flush(last_step=int(hi - 1))
    if n_layers:
        _write_layers(w, layout, n_steps, rng, stats_every, hist_every, snapshot_every, chunk_steps,
                      grads_every_step, grad_spike)
    if status == fmt.STATUS_RUNNING:
        w.flush(last_step=n_steps - 1)
        w.f.close()  # leave status "running": looks like a writer that stopped
        w.closed = True
    else:
        w.close(status=status, last_step=n_steps - 1)
    return path


def _write_layers(w, layout, n_steps, rng, stats_every, hist_every, snapshot_every, chunk_steps, grads_every_step,
                  grad_spike=None):
    P, M, S = len(layout.params), len(layout.modules), len(layout.snap_params)
    depth = np.arange(P) // 2
    # Gradient norms shrink with depth (a mild vanishing-gradient picture) and decay in time.
    grad_scale = (0.5 ** depth).astype(np.float32)
    g_every = 1 if grads_every_step else stats_every
    for lo in range(0, n_steps, chunk_steps):
        s = np.arange(lo, min(n_steps, lo + chunk_steps), g_every, dtype=np.int64)
        if s.size == 0:
            continue
        decay = np.exp(-s / max(n_steps, 1))[:, None].astype(np.float32)
        noise = rng.lognormal(0, 0.2, (s.size, P)).astype(np.float32)
        norm = grad_scale * decay * noise
        if grad_spike is not None and lo <= grad_spike[0] < lo + chunk_steps:
            hit = np.flatnonzero(s == grad_spike[0])
            norm[hit, grad_spike[1]] = grad_spike[2]
        w.append_records(fmt.GRADS, s, {"norm": norm, "nonfinite": np.zeros((s.size, P), np.int32)})
    s = np.arange(0, n_steps, stats_every, dtype=np.int64)
    R = s.size
    wn = (1.0 + 0.1 * np.arange(P))[None, :] * (1 + s[:, None] / max(n_steps, 1))
    upd = rng.lognormal(np.log(1e-3), 0.3, (R, P))
    w.append_records(fmt.WEIGHTS, s, {"norm": wn, "update_norm": wn * upd, "update_ratio": upd})
    dead = np.clip(np.linspace(0, 0.6, M)[None, :] + rng.normal(0, 0.02, (R, M)), 0, 1)
    w.append_records(fmt.ACTS, s, {
        "mean": rng.normal(0.2, 0.05, (R, M)), "std": rng.lognormal(0, 0.3, (R, M)),
        "absmax": rng.lognormal(1, 0.3, (R, M)), "frac_nonpos": dead * 0.5 + 0.4,
        "dead_frac": dead, "frac_saturated": np.zeros((R, M)),
    })
    hs = np.arange(0, n_steps, hist_every, dtype=np.int64)
    if hs.size:
        H = fmt.HIST_BINS
        centers = np.linspace(-3, 3, H)
        widths = 1.0 + hs[:, None, None] / max(n_steps, 1)  # weights spread out over training
        counts = (1000 * np.exp(-0.5 * (centers[None, None, :] / widths) ** 2)).repeat(P, axis=1).astype(np.int32)
        rngs = np.broadcast_to(np.array([-0.3, 0.3], np.float32), (hs.size, P, 2)) * widths
        w.append_records(fmt.HISTS, hs, {"weight_counts": counts, "weight_range": rngs,
                                        "grad_counts": counts, "grad_range": rngs * 0.01})
    ss = np.arange(0, n_steps, snapshot_every, dtype=np.int64)
    if ss.size and S:
        snaps = rng.normal(0, 0.1, (ss.size, S, fmt.SNAP_SIZE, fmt.SNAP_SIZE)).astype(np.float16)
        w.append_records(fmt.SNAPS, ss, {"weight": snaps})


def make_corrupt_file(path) -> Path:
    """A file with an .h5 name that is not HDF5 at all (truncated download, wrong file)."""
    path = Path(path)
    path.write_bytes(b"this is not an hdf5 file\n" * 10)
    return path


def make_foreign_hdf5(path) -> Path:
    """A valid HDF5 file that is not a trainspect run (wrong schema)."""
    import h5py

    path = Path(path)
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=np.arange(10))
    return path


def digits_lr_sweep(path, steps: int = 60, seed: int = 0):
    """A real LR range test (``trainspect.lr_range_test``) of a 64-32-10 MLP on digits, recorded
    to ``path``: a sweep run file for the tests that open one beside a run. Returns its result."""
    import torch
    import torch.nn.functional as F
    from tests.scenario_kit import digits, mlp
    from trainspect import lr_range_test

    torch.manual_seed(seed)
    model = mlp([64, 32, 10])
    opt = torch.optim.SGD(model.parameters(), lr=1e-5)
    Xtr, ytr, _, _ = digits()

    def step(batch):
        opt.zero_grad()
        loss = F.cross_entropy(model(batch[0]), batch[1])
        loss.backward()
        opt.step()
        return loss
    g = torch.Generator().manual_seed(seed)
    batches = [(Xtr[i], ytr[i]) for i in torch.randint(0, len(Xtr), (steps, 64), generator=g)]
    return lr_range_test(model, opt, batches, step, path, steps=steps)


def assert_same_file(a, b) -> None:
    """Every dataset and root attribute of run file ``b`` equals ``a``'s (a mirror of it)."""
    import h5py

    with h5py.File(a, "r", locking=False) as fa, h5py.File(b, "r", locking=False) as fb:
        names = []
        fa.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        assert names
        for n in names:
            np.testing.assert_array_equal(fa[n][()], fb[n][()], err_msg=n)
        assert dict(fa.attrs) == dict(fb.attrs)
