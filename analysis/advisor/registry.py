"""The advisor's symptoms, in the order they run: one line per symptom module of ``symptoms/``.

``nan_inf`` runs first (the others cut their tables at its first non-finite step); the loss
rules before the gradient and activation rules; every spec's cause adjuster may read the
findings of any other. Adding a symptom: a module in ``symptoms/`` with a ``SPEC``, and its
name here.
"""
from __future__ import annotations

from importlib import import_module

SYMPTOM_MODULES = (
    "nan_inf",
    "loss_unbounded",
    "divergence",
    "loss_oscillation",
    "loss_spikes",
    "no_progress",
    "loss_blowup",
    "early_plateau",
    "softmax_floor",
    "overfitting",
    "loss_term_dominates",
    "gan_losses_vanish",
    "return_not_improving",
    "vanishing_gradients",
    "exploding_gradients",
    "dead_units",
    "saturated_activations",
    "symmetric_weights",
    "unnormalized_inputs",
    "frozen_layers",
    "eval_mode_training",
    "validation_in_train_mode",
    "gradients_not_cleared",
    "lost_updates",
    "weight_growth",
    "slow_convergence",
    "step_time_growth",
    "warmup_unfinished",
    "small_updates",
    "loss_summed",
    "strong_dropout",
    "periodic_loss",
    "straggler_rank",
    "rank_nonfinite_first",
    "rank_loss_divergence",
    # last: they stand aside for any other warning, so they settle once every severity is final
    "stuck_at_chance",
    "loss_at_init_high",
)

REGISTRY = tuple(import_module(f"{__package__}.symptoms.{name}").SPEC for name in SYMPTOM_MODULES)
SPECS = {spec.id: spec for spec in REGISTRY}
SYMPTOM_IDS = tuple(SPECS)
