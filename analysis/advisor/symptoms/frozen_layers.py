"""``frozen_layers``: parameters that never change (no update, or exactly zero gradient, or none)."""
from __future__ import annotations

from trainspect.recorder import format as fmt

from ...findings import Evidence
from ...frozen import module_less_params, optimizer_holds_none
from .. import gradient_rules
from ..lr_groups import zero_lr_groups, zero_lr_text
from ..causes import weights_symmetric
from ..spec import SymptomSpec
from ._cut import rows_before


def detect(sig, ctx):
    g, u = sig.layer.get("grad_norm"), sig.layer.get("update_norm")
    if g is None and u is None:
        return None
    layers = (g if g is not None else u).layers
    if ctx.nan_step is not None:      # after the first NaN/Inf a zero or missing gradient says nothing
        g = g.head(rows_before(g.steps, ctx.nan_step)) if g is not None else None
        u = u.head(rows_before(u.steps, ctx.nan_step)) if u is not None else None
    f = gradient_rules.detect_frozen(g.steps if g is not None else None, g, u.steps if u is not None else None, u,
                                     layers, label=ctx.label, frozen=ctx.frozen_params,
                                     unoptimized=ctx.unoptimized_params, numel=ctx.param_numel,
                                     orphans=module_less_params(sig.params))
    if f is not None and not (f.facts["no_update"] or f.facts["zero_grad"] or f.facts["cut"]) \
            and optimizer_holds_none(sig.meta, sig.params):
        # The optimizer holds none of the watched module's parameters and none got a gradient:
        # the training never used that module (a torch.func ensemble's base model on real
        # weights, beside the stacked ones it trains). "Frozen by torch.no_grad()?" would
        # mislead; coverage says what the module is (not checked, activations).
        return None
    if f is not None and f.facts.get("no_update") and (groups := zero_lr_groups(sig)):
        # the optimizer holds them and steps them with an LR of 0: name the group, not its parameter list
        f.facts["zero_lr_groups"] = groups
        f.title = f"{zero_lr_text(groups)}: {f.title}"
        f.evidence.insert(0, Evidence(series=fmt.lr_tag(groups[0][0]), threshold=0.0,
                                      text=f"{zero_lr_text(groups)}; the other groups' LRs are not 0"
                                      if len(groups) < len(sig.lr_groups) else zero_lr_text(groups)))
    return f


def adjust(s, f, ctx):
    weights_symmetric(s, ctx)
    if f.facts.get("zero_lr_groups"):
        s.boost("optimizer_setup", 0.95, zero_lr_text(f.facts["zero_lr_groups"]) + ": its parameters are never "
                                                                                 "updated")
        s.damp("bad_init", 0.5)    # a zero-init matrix (a LoRA B) that never moves passes no gradient on
        return
    zero, no_update = f.facts.get("zero_grad"), f.facts.get("no_update")
    if f.facts.get("cut") and not zero and not no_update:
        s.damp("bad_init", 0.2)            # weights, however set, give some gradient: None means no path
        s.damp("activation_choice", 0.2)
        s.damp("optimizer_setup", 0.4)     # the optimizer holds them: its parameter list is not the fault
        s.boost("graph_detached", 0.9 if f.facts.get("cut_prefix") else 0.6,
                "the model's first trainable layers get no gradient while later ones do: the graph is cut "
                "between them" if f.facts.get("cut_prefix") else
                "trainable parameters in the optimizer never get a gradient: cut off from the loss, or unused")
        return
    if zero and not no_update:
        s.damp("optimizer_setup", 0.2)     # the optimizer cannot make a gradient exactly zero
    if zero and f.facts.get("zero_prefix") and not no_update and not any(
            k in ctx.found for k in ("symmetric_weights", "dead_units", "saturated_activations", "vanishing_gradients")):
        # exactly 0 at every step for the first layers while later ones get gradients, with no identical
        # or dead units to stop it: an init gives no exact 0 step after step; something in the forward
        # multiplies the gradient by 0 (trial 18 U6: a custom autograd.Function's backward returning zeros)
        s.damp("bad_init", 0.2)
        s.damp("activation_choice", 0.3)
        s.boost("graph_detached", 0.9, f"the first trainable layers get exactly zero gradient at every step while "
                                       f"{ctx.label(f.facts['first_with_grad'])} and later layers get gradients: "
                                       "the backward between them returns zeros")
        return
    if no_update and not zero and "vanishing_gradients" not in ctx.found:
        s.damp("bad_init", 0.3)            # gradients arrive, the optimizer does not use them
        s.damp("activation_choice", 0.3)
    if "vanishing_gradients" in ctx.found:
        s.damp("optimizer_setup", 0.2)     # the updates exist but are too small to change float32 weights
        s.boost("activation_choice" if ctx.has_bounded_acts else "depth_without_skip_connections", 0.95,
                "gradients vanish: updates too small to change the float32 weights")
    elif no_update:
        s.boost("optimizer_setup", 0.9, "the parameters have gradients but the optimizer never changes them")
    elif zero and "symmetric_weights" in ctx.found:
        s.boost("bad_init", 0.9, "no gradient flows through identical (constant/zero) weights")
    elif zero and "dead_units" in ctx.found:
        start = ctx.facts("dead_units").get("dead_from_start")
        s.boost("bad_init" if start else "activation_choice", 0.7,
                "dead ReLUs pass no gradient" + (" (dead from the first record)" if start else ""))
    elif f.facts.get("all_zero_grad") and (ctx.zero_gradients or ctx.facts("no_progress").get("constant_loss")):
        s.boost("loss_setup", 0.9, "every gradient is exactly 0 and the loss never changes: the loss does not "
                                   "depend on the parameters (degenerate loss/output pairing)")


SPEC = SymptomSpec(
    id="frozen_layers",
    looks_at="`grad_norm`, `update_norm` per parameter",
    fires_when="gradient but `update_norm == 0` always, or gradient exactly 0 always (warning); no gradient at all "
               "for the model's first trainable parameters while later ones get gradients, all in the optimizer (warning once "
               "they hold 5 % of the trainable elements: the graph is cut); no gradient otherwise (info; parameters with "
               "requires_grad=False at watch(), frozen on purpose, are left out)",
    detect=detect,
    priors={"optimizer_setup": 0.6, "bad_init": 0.3, "activation_choice": 0.1},
    word="frozen layers",
    adjust=adjust,
    needs=("gradients",),
)
