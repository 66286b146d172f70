"""Rules over per-layer gradient and update norms: vanishing/exploding gradients, frozen layers.

Inputs are [records x layers] tables (``tables.Table``, read in row chunks, or arrays) in the recorder's parameter order (model order,
input side first). Conventions of the recorder: a parameter without a gradient has
grad_norm NaN (and 0 non-finite entries); update_norm is the change one optimizer step
made, recorded every ``stats_every`` steps.
"""
from __future__ import annotations

import numpy as np

from trainspect.recorder.format import SYS_GRAD_NORM

from ..findings import Evidence, Finding
from .series import column_bins, fmt, nanmedian, rounded
from .tables import as_table


def _weight_columns(shapes) -> list[int]:
    """Indices of weight matrices/kernels (>= 2-D): the layers depth rules compare."""
    return [i for i, s in enumerate(shapes) if len(s) >= 2]


def _rms(norms, numel):
    """Per-element (RMS) gradient: norms of tensors of different sizes become comparable."""
    return np.asarray(norms, dtype=np.float64) / np.sqrt(np.maximum(np.asarray(numel, dtype=np.float64), 1))


def detect_vanishing(steps, grad_norm, layers, shapes, numel, *, ratio=1e-3, first_abs=1e-4, sustain=0.5,
                     min_records=20, label=str) -> Finding | None:
    """The first (input-side) layer's gradient is tiny against the last layer's.

    AutoTrainer (Zhang et al., ICSE'21): vanishing when the ratio of first- to last-layer
    gradient norms is < 1e-3 and the first layer's norm is < 1e-4. Here the ratio uses
    per-element (RMS) norms so layers of different sizes compare fairly, and it must hold
    in at least ``sustain`` of the run (binned medians over time). Exactly zero gradients
    are not "vanishing" (nothing flows at all): ``frozen_layers`` reports those.
    """
    cols = _weight_columns(shapes)
    if len(cols) < 2 or len(steps) < min_records:
        return None
    table = as_table(grad_norm, steps, layers)
    # A gradient that shrinks through 200 tanh layers reaches the first ones as exactly 0 (below
    # float32's 1e-45): the first layer that gets any gradient is the one to compare. Layers
    # whose gradient is cut off (NaN, a dead layer's exact 0 behind a normal one) compare normally.
    summary = table.summary
    silent = 0
    while silent < len(cols) - 2 and summary.all_zero[cols[silent]]:
        silent += 1
    first, last = cols[silent], cols[-1]
    rows, binned = column_bins(table.columns([first, last]))
    numel_fl = np.asarray(numel, dtype=np.float64)[[first, last]]
    rms = _rms(binned, numel_fl)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = rms[:, 0] / rms[:, 1]
    ok = np.isfinite(r) & (binned[:, 0] > 0)
    hit = ok & (r < ratio) & (binned[:, 0] < first_abs)
    if ok.sum() < 3 or hit.sum() < sustain * ok.sum():
        return None
    idx = np.flatnonzero(hit)
    return Finding(
        symptom="vanishing_gradients", severity="warning",
        title=(f"vanishing gradients: {label(layers[first])} gets {fmt(float(np.median(r[hit])))}x the gradient of "
               f"{label(layers[last])}" + (f" ({silent} weight layer(s) before it get exactly 0)" if silent else "")),
        first_step=int(steps[rows[idx[0]]]), last_step=int(steps[rows[idx[-1]]]),
        layers=[layers[first], layers[last]],
        evidence=[Evidence(
            series="grad_norm", layer=layers[first], threshold=ratio,
            text=(f"per-element gradient of {label(layers[first])} / {label(layers[last])} = "
                  f"{fmt(float(np.median(r[hit])))} (median) with {layers[first]} norm {fmt(float(np.median(binned[hit, 0])))}; thresholds: ratio < "
                  f"{ratio:g} and norm < {first_abs:g} (AutoTrainer), in {hit.sum()}/{ok.sum()} time bins"
                  + (f"; the {silent} weight layer(s) before it get exactly 0 (below float32's range)"
                     if silent else "")),
            steps=[int(steps[rows[i]]) for i in idx[:: max(1, len(idx) // 20)]],
            values=rounded(r[idx[:: max(1, len(idx) // 20)]]))],
    )


# Optimizers whose update does not grow with the gradient's scale (Adam divides by its running
# RMS, Lion takes its sign, LAMB/LARS/Muon normalise per layer): a loss summed over the batch
# gives gradients 1000x the weights and the same training as its mean.
SCALE_FREE_OPTIMIZERS = ("adam", "adagrad", "adadelta", "rmsprop", "lion", "adafactor", "adan", "lamb", "lars",
                         "muon", "sophia", "shampoo", "prodigy")


def scale_free(optimizer_type: str) -> bool:
    name = optimizer_type.lower()
    return any(k in name for k in SCALE_FREE_OPTIMIZERS)


def detect_exploding(grad_steps, grad_norm, weight_steps, weight_norm, layers, shapes, *, total_steps=None,
                     total_norm=None, ratio=10.0, growth=100.0, sustain=0.5, min_records=5, label=str,
                     size_matters=True) -> Finding | None:
    """Gradients far larger than the weights they update, or growing without bound.

    Size: the median over weight matrices of grad_norm / weight_norm is above ``ratio`` in
    at least ``sustain`` of the weight records: one SGD step of LR 0.1 would more than
    double the weights (healthy runs of the suite: <= 0.3; AutoTrainer's absolute
    threshold depends on the loss scale, this ratio does not). Time: the global gradient
    norm's smoothed level ends ``growth`` x above its early level, sustained to the end.
    ``size_matters=False`` (a scale-free optimizer such as Adam) leaves the size test out.
    """
    evidence, first_step, last_step, names = [], None, None, []
    cols = [i for i, s in enumerate(shapes) if len(s) >= 2] if size_matters else []
    if cols and weight_norm is not None and len(weight_steps) >= min_records and len(grad_steps):
        gs = np.asarray(grad_steps)
        pos = np.clip(np.searchsorted(gs, np.asarray(weight_steps)), 0, len(gs) - 1)
        # Only the gradient rows at weight records and the weight-matrix columns: [W x C], small.
        g = as_table(grad_norm, gs, layers).rows(pos)[:, cols].astype(np.float64)
        w = as_table(weight_norm, weight_steps, layers).columns(cols).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = nanmedian(np.where(w > 0, g / w, np.nan), axis=1)
        ok = np.isfinite(r)
        hit = ok & (r > ratio)
        if ok.sum() >= min_records and hit.sum() >= sustain * ok.sum():
            idx = np.flatnonzero(hit)
            first_step, last_step = int(weight_steps[idx[0]]), int(weight_steps[idx[-1]])
            with np.errstate(divide="ignore", invalid="ignore"):
                per = nanmedian(g / w, axis=0)
            order = np.argsort(-np.nan_to_num(per, nan=-1))
            names = [layers[cols[i]] for i in order[: min(5, len(order))] if per[i] > ratio]
            evidence.append(Evidence(
                series="grad_norm", layer=names[0] if names else None, threshold=ratio,
                text=(f"gradient norm / weight norm (median over weight matrices) = {fmt(float(np.median(r[hit])))} in "
                      f"{hit.sum()}/{ok.sum()} records (threshold {ratio:g}); largest in "
                      + ", ".join(f"{label(layers[cols[i]])}: {fmt(float(per[i]))}" for i in order[:3])),
                steps=[int(weight_steps[i]) for i in idx[:: max(1, len(idx) // 20)]],
                values=rounded(r[idx[:: max(1, len(idx) // 20)]])))
    if total_norm is not None and len(total_norm) >= 20:
        ts = np.asarray(total_steps)
        tv = np.asarray(total_norm, dtype=np.float64)
        finite = np.isfinite(tv)
        ts, tv = ts[finite], tv[finite]
        if len(tv) >= 20:
            b_rows, b = column_bins(tv[:, None])
            b = b[:, 0]
            k = max(3, len(b) // 10)
            early = float(np.median(b[:k]))
            late = b[-k:]
            if early > 0 and np.all(late > growth * early):
                first_step = first_step if first_step is not None else int(ts[b_rows[np.argmax(b > growth * early)]])
                last_step = int(ts[-1])
                evidence.append(Evidence(
                    series=SYS_GRAD_NORM, threshold=growth,
                    text=(f"global gradient norm grew from {fmt(early)} to {fmt(float(np.median(late)))} "
                          f"({float(np.median(late)) / early:.0f}x; threshold {growth:g}x, sustained to the end)"),
                    steps=[int(ts[b_rows[0]]), int(ts[-1])], values=rounded([early, float(np.median(late))])))
    if not evidence:
        return None
    return Finding(
        symptom="exploding_gradients", severity="warning",
        title="exploding gradients: " + ("gradients are far larger than the weights" if names or first_step is not None
                                         and evidence[0].series == "grad_norm" else "the gradient norm keeps growing"),
        first_step=first_step, last_step=last_step, layers=names, evidence=evidence,
    )


CUT_SHARE = 0.05    # trainable elements without a gradient that make the finding a warning


def detect_frozen(grad_steps, grad_norm, weight_steps, update_norm, layers, *, min_records=3,
                  label=str, frozen=None, unoptimized=None, numel=None, orphans=None) -> Finding | None:
    """Parameters that never change: gradients but no updates, or no gradient at all.

    - gradient > 0 but update_norm == 0 in every record: the optimizer never touches it
      (left out of the optimizer's parameter list, or LR 0) -> warning;
    - gradient exactly 0 in every record: nothing flows back to it (dead path, zero
      init) -> warning;
    - no gradient at all (grad_norm NaN) -> info, as a frozen backbone can be intended.
      ``frozen``: names of the parameters with requires_grad=False at watch() (None: not
      known, a file from before it was recorded): frozen on purpose (a LoRA base), they are no
      finding. ``unoptimized``: names of the trainable parameters the watched optimizer did
      not hold (None: not known). A parameter that requires a gradient, is in the optimizer and
      never gets one is unused or cut off from the loss (a ``.detach()``, a ``torch.no_grad()``
      block, reentrant checkpointing of inputs without grad). Cut off when they are the model's
      first trainable parameters and later ones get gradients: a warning once they hold
      ``CUT_SHARE`` of the trainable elements (``numel``: name -> elements). A spare head or an
      unused pooler stays advice. ``orphans``: name -> shape of the tensors the optimizer holds
      that belong to no module of the model (``optimizer.group0.param18``): never a gradient
      there is a layer replaced after the optimizer was built, said in words, not by those names.
    """
    # Per-column facts from one chunked pass each: no [records x layers] float64 copies.
    g = as_table(grad_norm, grad_steps, layers).summary if grad_norm is not None else None
    u = as_table(update_norm, weight_steps, layers).summary if update_norm is not None else None
    g = g if g is not None and g.rows >= min_records else None
    u = u if u is not None and u.rows >= min_records else None
    groups = {"no_update": [], "zero_grad": [], "no_grad": [], "cut": [], "orphan": []}
    known = frozen is not None and unoptimized is not None   # who holds what is recorded
    for j, name in enumerate(layers):
        if frozen is not None and name in frozen:
            # frozen on purpose: a gradient it shows is left from before (trained earlier in the
            # process, then frozen for a fine-tune: no zero_grad() of the new optimizer clears it)
            continue
        if g is not None and g.all_nan[j]:
            if orphans and name in orphans:
                groups["orphan"].append(j)    # the old head's tensors after model.fc = nn.Linear(...)
                continue
            groups["cut" if known and name not in unoptimized else "no_grad"].append(j)
            continue
        if g is not None and not g.any_nonzero[j]:
            groups["zero_grad"].append(j)
            continue
        if u is not None:
            if u.n_finite[j] >= min_records and not u.any_nonzero[j] and (g is None or g.max_non_nan[j] > 0):
                groups["no_update"].append(j)
    if not any(groups.values()):
        return None
    evidence = []
    if groups["no_update"]:
        names = [layers[j] for j in groups["no_update"]]
        evidence.append(Evidence(
            series="update_norm", layer=names[0], threshold=0.0,
            text=(f"{len(names)} parameter(s) have gradients but update_norm == 0 in every record: "
                  f"{', '.join(label(n) for n in names[:8])}"),
            steps=[int(weight_steps[0]), int(weight_steps[-1])],
            values=rounded([float(g.max_non_nan[j]) if g is not None else 0.0 for j in groups["no_update"][:8]])))
    if groups["zero_grad"]:
        names = [layers[j] for j in groups["zero_grad"]]
        evidence.append(Evidence(
            series="grad_norm", layer=names[0], threshold=0.0,
            text=(f"{len(names)} parameter(s) receive exactly zero gradient in every step: "
                  f"{', '.join(label(n) for n in names[:8])}"),
            steps=[int(grad_steps[0]), int(grad_steps[-1])], values=[0.0] * min(8, len(names))))
    cut_share, cut_prefix = 0.0, False
    if groups["cut"]:
        names = [layers[j] for j in groups["cut"]]
        sizes = numel or {}
        total = sum(sizes.get(n, 1) for n in layers if n not in frozen)
        cut_share = sum(sizes.get(n, 1) for n in names) / max(total, 1)
        # the model's first trainable parameters get none and later ones do: the graph is cut
        # between them (layers are in the model's registration order, usually the forward's)
        with_grad = [j for j, n in enumerate(layers) if n not in frozen and not g.all_nan[j]]
        cut_prefix = bool(with_grad) and max(groups["cut"]) < min(with_grad)
        evidence.append(Evidence(
            series="grad_norm", layer=names[0],
            text=(f"{len(names)} parameter(s) never had a gradient although they require one and the optimizer "
                  f"holds them ({cut_share:.0%} of the trainable weights"
                  + ("; every one comes before the first layer that gets a gradient: cut off from the loss?): "
                     if cut_prefix else "; not used by the forward?): ")
                  + ", ".join(label(n) for n in names[:8]))))
    if groups["no_grad"]:
        names = [layers[j] for j in groups["no_grad"]]
        evidence.append(Evidence(
            series="grad_norm", layer=names[0],
            text=(f"{len(names)} parameter(s) never had a gradient "
                  + ("(requires_grad=False or unused): " if frozen is None else
                     "although they require one (not used by the forward?): " if unoptimized is None else
                     "although they require one; the optimizer does not hold them (frozen by torch.no_grad()?): ")
                  + ", ".join(label(n) for n in names[:8]))))
    orphan_words = ""
    if groups["orphan"]:
        n = len(groups["orphan"])
        orphan_words = (f"{n} tensor{'s' if n > 1 else ''} of the optimizer "
                        f"{'belong' if n > 1 else 'belongs'} to no module of the model (a layer replaced "
                        "after the optimizer was built?)")
        shapes = ", ".join("x".join(map(str, orphans[layers[j]])) or "scalar" for j in groups["orphan"][:8])
        evidence.append(Evidence(series="grad_norm", text=f"{orphan_words}: never a gradient; shapes {shapes}"))
    # exactly zero gradients for the model's first trainable parameters while later ones get non-zero
    # ones: something between them multiplies the gradient by 0 (a custom autograd.Function whose
    # backward returns zeros, x * 0, a mask), or identical zero weights / dead units stop it
    zero_prefix, first_with_grad = False, None
    if groups["zero_grad"] and g is not None:
        moving = [j for j, n in enumerate(layers) if not (frozen and n in frozen) and not g.all_nan[j]
                  and g.any_nonzero[j]]
        zero_prefix = bool(moving) and max(groups["zero_grad"]) < min(moving)
        first_with_grad = layers[min(moving)] if zero_prefix else None
    severe = groups["no_update"] or groups["zero_grad"] or (cut_prefix and cut_share >= CUT_SHARE)
    involved = groups["no_update"] + groups["zero_grad"] + groups["cut"] + (groups["no_grad"] if not severe else [])
    steps_all = weight_steps if weight_steps is not None and len(weight_steps) else grad_steps
    what = ("never updated" if groups["no_update"] else "get no gradient") if severe else "have no gradient (frozen)"
    title = "; ".join(
        ([f"{len(involved)} parameter(s) {what}: {', '.join(label(layers[j]) for j in involved[:4])}"
          + ("..." if len(involved) > 4 else "")] if involved else []) + ([orphan_words] if orphan_words else []))
    return Finding(
        symptom="frozen_layers", severity="warning" if severe else "info", title=title,
        first_step=int(steps_all[0]), last_step=int(steps_all[-1]),
        layers=[layers[j] for j in involved], evidence=evidence,   # (no module: no layer of the model to show)
        facts={"no_update": bool(groups["no_update"]), "zero_grad": bool(groups["zero_grad"]),
               "no_grad": bool(groups["no_grad"] or groups["cut"]),
               # trainable, in the optimizer, never a gradient: cut off from the loss or unused
               "cut": bool(groups["cut"]), "cut_share": round(cut_share, 4), "cut_prefix": cut_prefix,
               "zero_prefix": zero_prefix, "zero_grad_layers": [layers[j] for j in groups["zero_grad"]],
               "first_with_grad": first_with_grad,
               "orphans": len(groups["orphan"]),
               # never moved for want of an update: a gradient the optimizer did not apply (LR 0, left
               # out), or none at all (cut off, unused); whatever their init, it was never trained
               "unmoved_layers": [layers[j] for j in groups["no_update"] + groups["cut"] + groups["no_grad"]],
               # every parameter that has a gradient gets exactly zero: nothing in the model can learn
               "all_zero_grad": bool(groups["zero_grad"]) and
               len(groups["zero_grad"]) + len(groups["no_grad"]) + len(groups["cut"]) + len(groups["orphan"])
               == len(layers)},
    )


def detect_grad_spikes(steps, total_norm, *, z=2.5, alpha=0.05, warmup=20, min_points=20):
    """Steps where the global gradient norm jumps above its EMA by ``z`` EMA-standard-deviations.

    ZClip (Kumar et al., 2025): z-score > 2.5 against an EMA of the gradient norm's mean
    and variance. Returns (steps, values, zscores) of the spikes (evidence, not a symptom).
    """
    v = np.asarray(total_norm, dtype=np.float64)
    s = np.asarray(steps)
    finite = np.isfinite(v)
    v, s = v[finite], s[finite]
    if len(v) < min_points:
        return s[:0], v[:0], v[:0]
    if len(v) > 50_000:         # the EMA loop is sequential: thin by block maxima, spikes survive
        k = -(-len(v) // 50_000)
        n = (len(v) // k) * k
        blocks = v[:n].reshape(-1, k)
        arg = blocks.argmax(axis=1) + np.arange(blocks.shape[0]) * k
        v, s = v[arg], s[arg]
    mean, var = float(np.mean(v[:warmup])), float(np.var(v[:warmup]))
    out = []
    for i in range(warmup, len(v)):
        sd = var ** 0.5
        zi = (v[i] - mean) / sd if sd > 0 else 0.0
        if zi > z:
            out.append((i, zi))
        else:       # ZClip updates its statistics with non-spike values only
            mean = (1 - alpha) * mean + alpha * v[i]
            var = (1 - alpha) * var + alpha * (v[i] - mean) ** 2
    idx = np.array([i for i, _ in out], dtype=np.int64)
    return s[idx], v[idx], np.array([zz for _, zz in out])



def grad_spike_evidence(spike_steps, grad_steps, grad_norm, *, within=1, z=2.5):
    """Evidence for a loss-spike finding: the global gradient norm spiked at the same steps.

    Uses the ZClip test above (z-score > ``z`` against an EMA); ``within`` steps of slack
    because a bad batch shows in the loss of its step and the gradient of the same step.
    Returns None when the gradient norm stayed calm at every loss spike.
    """
    g_steps, g_values, g_z = detect_grad_spikes(grad_steps, grad_norm, z=z)
    if len(g_steps) == 0 or len(spike_steps) == 0:
        return None
    hit = [i for i, st in enumerate(g_steps) if np.any(np.abs(np.asarray(spike_steps) - st) <= within)]
    if not hit:
        return None
    matched = len({int(s) for s in spike_steps if np.any(np.abs(g_steps - s) <= within)})
    return Evidence(
        series=SYS_GRAD_NORM,
        text=(f"the global gradient norm spiked too at {matched} of the {len(spike_steps)} loss-spike steps "
              f"(z-score up to {float(np.max(g_z[hit])):.1f} > {z} against its EMA, ZClip rule)"),
        steps=[int(g_steps[i]) for i in hit], values=[float(g_values[i]) for i in hit], threshold=z)


def linear_growth(steps, total_norm, *, min_factor=5.0, min_r2=0.9, min_span=0.25, min_kept=0.7, min_points=20):
    """The global gradient norm grows like a straight line in the step: gradients that accumulate.

    Without ``optimizer.zero_grad()`` each backward() adds to the gradients of every step before
    it, so the norm grows roughly linearly with the step (and the update size with it) until the
    model settles where the summed gradients balance; an exploding gradient grows geometrically
    and a healthy one stays level or falls. The rise is the stretch from the start to where the
    binned norm first reaches 80 % of its maximum; fires when it spans ``min_span`` of the run, the
    norm grew ``min_factor`` x over it, and a straight line fits it with R^2 >= ``min_r2`` and at
    least as well as a line in log space, and the last fifth of the run kept ``min_kept`` of the
    largest norm (a sum that balances levels off; the norm of a GAN generator whose discriminator
    won rises as a line too, then falls back).
    Returns {"factor", "r2", "early", "late", "first_step", "last_step", "shape", "how"} or None
    (``shape``/``how``: the growth in words, for titles and evidence).
    """
    s = np.asarray(steps, dtype=np.float64)
    v = np.asarray(total_norm, dtype=np.float64)
    ok = np.isfinite(v) & (v > 0)
    s, v = s[ok], v[ok]
    if v.size < min_points:
        return None
    rows, b = column_bins(v[:, None])
    t, b = s[rows], b[:, 0]
    top = int(np.argmax(b >= 0.8 * b.max()))
    if top < max(10, min_span * b.size):
        return None
    # summed gradients level off where they balance; a norm that fell well back was never a sum
    if np.median(b[-max(3, b.size // 5):]) < min_kept * b.max():
        return None
    t, b = t[: top + 1], b[: top + 1]
    early, late = float(np.median(b[: max(3, b.size // 10)])), float(b[-1])
    if early <= 0 or late < min_factor * early:
        return None

    def r2(x, y):
        fit = np.polyval(np.polyfit(x, y, 1), x)
        total = float(np.sum((y - y.mean()) ** 2))
        return 1.0 - float(np.sum((y - fit) ** 2)) / total if total > 0 else 0.0
    lin, log = r2(t, b), r2(t, np.log(b))
    if lin < min_r2 or lin < log:
        return None
    return {"factor": late / early, "r2": lin, "early": early, "late": late, "first_step": int(t[0]),
            "last_step": int(t[-1]), "shape": "linearly with the step",
            "how": f"along a straight line in the step (R^2 {lin:.2f}, threshold {min_r2}, better than a geometric growth)"}


STILL_CHANGE = 0.01   # median step-to-step change of a norm that sits still; fresh gradients: >= 0.03
LOSS_MOVES = 0.02     # ... while the loss still moves between batches


def _median_change(v) -> float:
    v = np.asarray(v, dtype=np.float64)
    v = v[np.isfinite(v) & (v != 0)]
    return float(np.median(np.abs(np.diff(v)) / np.abs(v[:-1]))) if v.size > 2 else float("nan")


def rise_then_still(steps, total_norm, loss=None, *, min_factor=5.0, max_falls=0.1, min_rises=15):
    """The global gradient norm climbed almost without a dip, then sat still while the loss moved:
    gradients that accumulate.

    A sum of gradients changes by at most one step's gradient, so it climbs and, once the new
    gradients fade (units died, the sum balanced), stops moving, while each batch's loss still
    differs: SGD with momentum and no zero_grad() climbed 3.2 -> 54 at 32 of 32 steps, then read
    62.2 ten steps in a row. A fresh gradient moves >= 3 % a step in every run of the scenario
    suite; a geometric explosion keeps moving; a full-batch run's gradient moves smoothly, but so
    does its loss. Fires when the norm, up to where it first reached 80 % of its maximum
    (``min_rises`` records or more), fell at <= ``max_falls`` of the steps and grew ``min_factor`` x,
    and over the second half of the run its median step-to-step change was below
    ``STILL_CHANGE`` while the loss's was ``LOSS_MOVES`` or more.
    Returns the dict of :func:`linear_growth` or None.
    """
    s = np.asarray(steps, dtype=np.float64)
    v = np.asarray(total_norm, dtype=np.float64)
    ok = np.isfinite(v) & (v > 0)
    s, v = s[ok], v[ok]
    if v.size < 2 * min_rises or loss is None:
        return None
    top = int(np.argmax(v >= 0.8 * v.max()))
    rise = v[: top + 1]
    if top < min_rises:
        return None
    falls = float(np.mean(np.diff(rise) < -1e-3 * rise[:-1]))
    early, late = float(np.median(rise[:3])), float(rise[-1])
    if falls > max_falls or late < min_factor * early:
        return None
    change = _median_change(v[v.size // 2:])
    moves = _median_change(np.asarray(loss, dtype=np.float64)[len(loss) // 2:])
    if not (change < STILL_CHANGE and moves >= LOSS_MOVES):
        return None
    return {"factor": late / early, "r2": None, "early": early, "late": late, "first_step": int(s[0]),
            "last_step": int(s[top]), "shape": "almost without a dip, then sits still",
            "how": (f"without falling at {1 - falls:.0%} of {top} steps (threshold {1 - max_falls:.0%}); over the "
                    f"second half it sat still (median change {change:.2%} a step, fresh gradients move >= 3 %) "
                    f"while the loss moved {moves:.0%} a step")}