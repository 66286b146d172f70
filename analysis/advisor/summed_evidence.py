"""The evidence ``loss_summed`` reads beyond the loss: the first batch's sample and token counts,
the run's update rule (does its step grow with the loss's scale?), and the output bias's gradient,
whose size and balance tell a softmax cross-entropy summed over the batch from a mean or a
regression's MSE."""
from __future__ import annotations

import numpy as np

from trainspect.recorder.format import SYS_GRAD_NORM, SYS_INPUT_NUMEL

from .gradient_rules import scale_free

FIRST_RECORDS = 3

def first_count(sig, series: str) -> float | None:
    """The first finite value of a recorded count (``sys/batch_size``, ``sys/input_numel``)."""
    found = sig.scalars.get(series)
    if found is None:
        return None
    v = np.asarray(found[1], dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v[0]) if v.size else None


def token_count(sig, size: float) -> float | None:
    """Tokens in the first batch of a model fed token ids (an ``nn.Embedding`` first): the first
    input's elements (``sys/input_numel``, B*T in either layout) when more than its first
    dimension. None for other inputs (an image's pixels are no loss terms) and older files."""
    if not sig.modules or sig.modules[0].type != "Embedding":
        return None
    n = first_count(sig, SYS_INPUT_NUMEL)
    return n if n is not None and n >= 2 * size else None


HAND_WRITTEN = "the hand-written SGD update (p -= lr * grad; no optimizer watched)"


def update_rule(sig, ctx) -> str | None:
    """Words for the run's update when its step grows with the loss's scale, else None. The
    watched optimizer, unless Adam-like (it divides the scale out); with a model watched alone
    and gradients recorded, the script updates by hand (pytorch/examples' word_language_model:
    ``p.data.add_(p.grad, alpha=-lr)``), which is plain SGD, unless the run's config names an
    Adam-like optimizer under an optimizer key (one stepping the model without being watched)."""
    if ctx.optimizer:
        return None if scale_free(ctx.optimizer) else ctx.optimizer
    meta = sig.meta
    if not isinstance(meta.get("model"), dict) or meta.get("optimizer") or SYS_GRAD_NORM not in sig.scalars:
        return None
    return None if _config_names_scale_free(meta.get("config")) else HAND_WRITTEN


def _config_names_scale_free(config, under_optim: bool = False, depth: int = 0) -> bool:
    """A string under a key naming the optimizer ("optimizer": "Adam", HF's "optim": "adamw_torch",
    Hydra's "optimizer": {"_target_": "torch.optim.AdamW"}) names a scale-free one."""
    if depth > 4:
        return False
    if isinstance(config, str):
        return under_optim and scale_free(config)
    if isinstance(config, dict):
        return any(_config_names_scale_free(v, under_optim or "optim" in str(k).lower(), depth + 1)
                   for k, v in list(config.items())[:200])
    if isinstance(config, (list, tuple)):
        return any(_config_names_scale_free(v, under_optim, depth + 1) for v in list(config)[:200])
    return False


def bias_of(sig, module: str) -> str | None:
    """The name of ``module``'s bias (its 1-D parameter), None without one."""
    return next((p.name for p in sig.params if p.module == module and len(p.shape) == 1), None)


def output_bias_grad(sig, module: str) -> float | None:
    """The largest gradient norm of the output layer's bias over the first records. A softmax
    cross-entropy averaged over the batch gives that bias the gradient mean(p) - mean(y), two
    probability vectors apart: never above sqrt(2). Summed over B samples it is B times that
    (sqrt(B (1 - 1/C)) at the start: 4.9 for 32 samples). A regression's MSE has no such bound
    (a 4-output regression whose first loss was 30x ln 4 with batches of 32 had ~1)."""
    grads = sig.layer.get("grad_norm")
    bias = bias_of(sig, module)
    if grads is None or bias is None or bias not in grads.layers or not len(grads):
        return None
    first = grads.read(0, min(FIRST_RECORDS, len(grads)))[:, list(grads.layers).index(bias)].astype(np.float64)
    first = first[np.isfinite(first)]
    return float(first.max()) if first.size else None


def bias_grad_balance(sig, module: str) -> float | None:
    """|sum| / sum of |values| of the output bias's gradient at the first histogram record: a
    softmax cross-entropy's gradient per sample, p - y, sums to 0 over the classes, so the bias's
    does too (~0 up to the histogram's binning); an MSE's is the outputs' mean error, of one sign
    when the targets' mean is off (a 4-output regression: ~1). None without that record."""
    bias = bias_of(sig, module)
    if bias is None or sig.path is None:
        return None
    from ..run import open_run   # one record of one layer, read only for a run that passed every other test
    try:
        with open_run(sig.path, keep_points=False) as run:
            h = run.histograms("grad", 0, 1)
    except Exception:   # noqa: BLE001 - the histograms are evidence, never a reason to fail a diagnosis
        return None
    if not len(h.steps) or bias not in h.layers or h.steps[0] > FIRST_RECORDS:
        return None
    j = list(h.layers).index(bias)
    counts, (lo, hi) = h.counts[0, j].astype(np.float64), h.ranges[0, j].astype(np.float64)
    if not (np.isfinite(lo) and np.isfinite(hi)) or counts.sum() == 0:
        return None
    centres = lo + (np.arange(len(counts)) + 0.5) * (hi - lo) / len(counts)
    spread = float((counts * np.abs(centres)).sum())
    return abs(float((counts * centres).sum())) / spread if spread > 0 else None
