"""A blow-up with inputs far off unit scale names the inputs first, not the LR.

pytorch/examples' time_sequence_prediction with its sine x100 under LBFGS (lr 0.8, the example's
own): the divergence read "lr too high (90%)" from the update/weight ratio, input scaling second,
beside a warning that named the inputs (trial 15, F5).
"""
from __future__ import annotations

import numpy as np
import pytest
from trainspect.analysis.advisor.diagnose import diagnose_signals

from tests.test_advisor_causes import by_symptom, healthy_loss, make


def _diverging(n, seed):
    loss = healthy_loss(n, seed)
    loss[n // 3:] *= np.geomspace(1, 1e6, n - n // 3)    # rises far above its start and stays
    return loss


def _run(seed, *, optimizer, inputs, n=60):
    sig = make(_diverging(n, seed), ratio=0.7, inputs=inputs)       # updates of 70 % of the weights a step
    sig.meta["optimizer"] = {"type": optimizer, "hyperparameters": {"lr": 0.8}}
    return by_symptom(diagnose_signals(sig))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lbfgs_with_badly_scaled_inputs_names_the_inputs_first(seed):
    found = _run(seed, optimizer="LBFGS", inputs=(0.0, 70.0))
    assert "unnormalized_inputs" in found
    f = found["divergence"]
    assert f.causes[0].id == "input_scaling", [(c.id, c.confidence) for c in f.causes]
    assert "LBFGS" in f.causes[0].why
    assert f.fixes[0].id == "standardise_inputs" or "standardise" in f.fixes[0].text


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_inputs_hundreds_off_come_first_under_any_optimizer_but_mildly_off_ones_do_not(seed):
    far = _run(seed, optimizer="SGD", inputs=(0.0, 300.0))["divergence"]
    assert far.causes[0].id == "input_scaling" and "300x unit scale" in far.causes[0].why
    mild = _run(seed, optimizer="SGD", inputs=(0.0, 8.0))["divergence"]
    assert mild.causes[0].id == "lr_too_high"      # the update/weight ratio of 0.7 speaks for the LR


@pytest.mark.parametrize("seed", [0, 1])
def test_the_reason_names_the_input_scale_after_the_symptoms_own_input_boost(seed):
    """nan_inf's own adjustment boosts input scaling with the generic reason: the scale stays named."""
    from tests.test_advisor_causes import blow_up
    loss, grad = blow_up(100, start=25, nan_at=46, seed=seed)
    found = by_symptom(diagnose_signals(make(loss, grad=grad, lr=np.full(100, 0.3), ratio=0.7,
                                             inputs=(200.0, 50.0))))
    top = found["nan_inf"].causes[0]
    assert top.id == "input_scaling" and "unit scale" in top.why, (top.id, top.why)
