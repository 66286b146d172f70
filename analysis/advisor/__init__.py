"""The advisor: symptoms found in a recorded run, with evidence, ranked causes and fixes.

``diagnose(run)`` is the entry point. The rules are small pure-numpy functions, one module
per family (loss, gradients, activations, weights, inputs, non-finite values), each with
its thresholds as documented keyword defaults; ``causes`` ranks causes using all the
evidence together. ``coverage(run)`` says which instruments the run lacks and which symptoms
the advisor therefore could not check.
"""
from .coverage import coverage
from .diagnose import diagnose, diagnose_signals

__all__ = ["diagnose", "diagnose_signals", "coverage"]
