"""Scenarios of tests/scenarios.py that wait for an advisor rule, each with the reason.

They are recorded and tabled (``python -m tests.scenario_runs``) but not asserted by
tests/test_advisor_scenarios.py until their rule lands. Kept out of scenarios.py so that editing
this list does not change the scenario source digest (and re-record every run).
"""

# Empty it as the rules land; never weaken an expectation instead.
PENDING: dict[str, str] = {
    "softmax_over_one_unit": "in 4 of 6 cells no no_progress at all: the loss of a constant output (1.0) moves "
                             "with each batch's label mix, and only frozen_layers <- bad_init fires",
    "missing_zero_grad": "seed 2 (both thread counts): nothing fires, though the gradient norm grows with the step",
    "lstm_lr_too_high": "a loss that jumps 50x within the first steps and stays there is not divergence: the "
                        "progress is measured from a head level that already includes the jump",
    "cnn_lr_too_high": "in 1 of 6 cells (seed 1, 2 threads) lr_too_high is damped by a low update/weight ratio "
                       "measured over the whole run, most of it after the ReLUs died (updates ~0)",
    "regression_lr_too_low": "a flat but noisy MSE loss fires divergence / loss_oscillation in some seeds",
    "healthy_label_noise_step_schedule": "early_plateau fires on a loss that reached its irreducible floor",
    "healthy_regression": "early_plateau fires on a regression that converged to its noise floor",
    "healthy_xor_batch1": "seed 2: dead_units fires on batch-1 training: a unit silent on the one sample of a batch "
                          "counts as dead (50 % of layer 1), though the net learns XOR",
}
