"""``diagnose(run)``: every symptom spec of the registry on a run's signals, then causes from all the evidence."""
from __future__ import annotations

from ..findings import Finding, sort_findings
from . import chains
from .causes import attach
from .context import Context, build_context
from .registry import REGISTRY, SPECS
from .signals import Signals, extract
from .symptoms._cut import rows_before, shapes_of
from .weight_rules import update_ratio_level, update_ratio_peak


def diagnose(run, lr_sweep=None, reuse=None) -> list[Finding]:
    """Findings for ``run`` (an ``analysis.Run`` or a path), most severe first.

    Pure numpy over what the recorder wrote; works on live, crashed and loss-only runs.
    Each finding carries evidence, structured facts, ranked causes, fixes in the order to
    try them, what experiment would confirm it, and the finding that led to it (``precursor``).
    ``lr_sweep``: an LR range test of the same model (``analysis.lr_range.LRSweep``, a sweep run
    or its path): the LR fixes then quote its suggested LR instead of saying how to run one.
    ``reuse(path)``: an open run of a sibling rank file the caller already has (``open_ranks``).
    """
    if not hasattr(run, "scalar_names"):
        from ..run import open_run
        with open_run(run) as opened:
            return diagnose(opened, lr_sweep, reuse)
    from ..lr_range import is_sweep
    if is_sweep(run):   # an LR range test's loss is meant to blow up at its end: not a failed training
        return []
    return diagnose_signals(extract(run, reuse), lr_sweep=_sweep(lr_sweep))


def _sweep(lr_sweep):
    if lr_sweep is None or hasattr(lr_sweep, "suggested"):
        return lr_sweep
    from ..lr_range import open_sweep, read_sweep
    return read_sweep(lr_sweep) if hasattr(lr_sweep, "scalar_names") else open_sweep(lr_sweep)


def diagnose_signals(sig: Signals, lr_sweep=None) -> list[Finding]:
    ctx = build_context(sig)
    ctx.lr_sweep = lr_sweep
    for spec in REGISTRY:
        found = spec.detect(sig, ctx)
        for f in found if isinstance(found, list) else [found] if found is not None else []:
            if f.symptom != spec.id:
                raise ValueError(f"the {spec.id} detector returned a {f.symptom} finding")
            ctx.found[spec.id] = f
    _update_ratio(sig, ctx)
    chains.link(ctx)
    for symptom, f in list(ctx.found.items()):
        if not SPECS[symptom].settle(f, ctx):
            del ctx.found[symptom]
    return sort_findings([attach(f, ctx, SPECS[f.symptom]) for f in ctx.found.values()])


def _update_ratio(sig: Signals, ctx: Context) -> None:
    ur = sig.layer.get("update_ratio")
    if ur is None:
        return
    shapes, _ = shapes_of(sig, ur.layers)
    cut = rows_before(ur.steps, ctx.nan_step)
    ctx.update_ratio, per_layer = update_ratio_level(ur.steps[:cut], ur.head(cut), ur.layers, shapes)
    ctx.update_ratio_peak = update_ratio_peak(ur.steps[:cut], ur.head(cut), ur.layers, shapes)
    ctx.update_ratio_max = max(per_layer.values()) if per_layer else None
