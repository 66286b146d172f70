"""Scenarios of tests/scenarios.py that wait for an advisor rule, each with the reason.

They are recorded and tabled (``python -m tests.scenario_runs``) but not asserted by
tests/test_advisor_scenarios.py until their rule lands. Kept out of scenarios.py so that editing
this list does not change the scenario source digest (and re-record every run).
"""

# Empty it as the rules land; never weaken an expectation instead.
PENDING: dict[str, str] = {
    "mnist_adadelta_lr40": "with the recorder's dense start (every step for the first 100), seed 1 ranks "
                           "activation_choice over lr_too_high: the ReLUs die at step 1, in the first update, "
                           "which the rule reads as units dying in training with normal updates",
    "healthy_label_noise_step_schedule": "with the dense start, early_plateau fires in every cell on a loss that "
                                         "reached its irreducible floor (20 % random labels) by step ~40",
}
