"""Scenarios of tests/scenarios.py that wait for an advisor rule, each with the reason.

They are recorded and tabled (``python -m tests.scenario_runs``) but not asserted by
tests/test_advisor_scenarios.py until their rule lands. Kept out of scenarios.py so that editing
this list does not change the scenario source digest (and re-record every run).
"""

# Empty it as the rules land; never weaken an expectation instead.
PENDING: dict[str, str] = {
    "ddp_tutorial_one_output": "no cause loss_setup yet: a loss exactly 0 with zero gradients is read as lr_too_low",
    "softmax_over_one_unit": "exactly-zero gradients from step 0 are read as lr_too_low / bad_init, not the "
                             "output activation or loss (loss_setup, activation_choice)",
    "first_forward_nan_stacked_exp": "a NaN/Inf at step 0, before any update, is blamed on lr_too_high",
    "missing_zero_grad": "accumulating gradients (norm growing linearly with the step) are not detected",
    "iris_raw_features": "mildly unscaled inputs (mean 3.5, std 2) pass detect_unnormalized",
    "lstm_lr_too_high": "a loss that jumps 50x within the first steps and stays there is not divergence: the "
                        "progress is measured from a head level that already includes the jump",
    "cnn_lr_too_high": "in 1 of 6 cells (seed 1, 2 threads) lr_too_high is damped by a low update/weight ratio "
                       "measured over the whole run, most of it after the ReLUs died (updates ~0)",
    "regression_lr_too_low": "a flat but noisy MSE loss fires divergence / loss_oscillation in some seeds",
    "healthy_label_noise_step_schedule": "early_plateau fires on a loss that reached its irreducible floor",
    "healthy_regression": "early_plateau fires on a regression that converged to its noise floor",
    "healthy_xor_batch1": "dead_units fires on batch-1 training: a unit silent on the one sample of a batch "
                          "counts as dead (62 % of layer 1), though the net learns XOR",
}
