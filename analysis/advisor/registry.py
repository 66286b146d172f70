"""The advisor's symptoms, in the order they run: one line per symptom module.

``nan_inf`` runs first (the others cut their tables at its first non-finite step); the loss
rules before the gradient and activation rules; later specs' cause adjusters may read the
findings of any spec. Adding a symptom: a module in ``symptoms/`` with a ``SPEC``, and a line here.
"""
from __future__ import annotations

from .symptoms import (dead_units, divergence, early_plateau, exploding_gradients, frozen_layers, loss_oscillation,
                       loss_spikes, nan_inf, no_progress, overfitting, saturated_activations, symmetric_weights,
                       unnormalized_inputs, vanishing_gradients)

REGISTRY = (
    nan_inf.SPEC,
    divergence.SPEC,
    loss_oscillation.SPEC,
    loss_spikes.SPEC,
    no_progress.SPEC,
    early_plateau.SPEC,
    overfitting.SPEC,
    vanishing_gradients.SPEC,
    exploding_gradients.SPEC,
    dead_units.SPEC,
    saturated_activations.SPEC,
    symmetric_weights.SPEC,
    unnormalized_inputs.SPEC,
    frozen_layers.SPEC,
)

SPECS = {spec.id: spec for spec in REGISTRY}
SYMPTOM_IDS = tuple(SPECS)
