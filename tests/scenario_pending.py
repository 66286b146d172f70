"""Scenarios of tests/scenarios.py that wait for an advisor rule, each with the reason.

They are recorded and tabled (``python -m tests.scenario_runs``) but not asserted by
tests/test_advisor_scenarios.py until their rule lands. Kept out of scenarios.py so that editing
this list does not change the scenario source digest (and re-record every run).
"""

# Empty it as the rules land; never weaken an expectation instead.
PENDING: dict[str, str] = {}
