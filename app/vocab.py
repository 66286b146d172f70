"""The vocabulary the app shares with the layers below, re-exported in one place.

Series names, stat specs and record groups come from the reader's format module via
``analysis`` (import direction app -> analysis -> recorder.format); severities, run states
and loss roles from ``analysis.vocab``. Colours and severity marks are the app's own and
are defined here once, for the terminal, the viewer and the reports alike.
"""
import numpy as np

from trainspect.analysis.run import fmt as _fmt
from trainspect.analysis.vocab import LR_MONITOR_PREFIX, LR_NAMES
from trainspect.analysis.vocab import RunState, Severity, loss_roles  # noqa: F401  (re-exported)

LAYER_STATS = dict(_fmt.LAYER_STATS)      # public stat name -> (record group, field)
LAYER_STAT_SPECS = _fmt.LAYER_STAT_SPECS  # public stat name -> StatSpec (label, unit, log, fraction)
HISTS = _fmt.HISTS
SNAPS = _fmt.SNAPS
HIST_BINS = _fmt.HIST_BINS
SNAP_SIZE = _fmt.SNAP_SIZE
ACTS = _fmt.ACTS                          # record group indexed by leaf modules

META_ROLES = _fmt.META_ROLES              # run metadata key: the loss roles the user declared
SYS_PREFIX = _fmt.SYS_PREFIX              # series the recorder writes itself
SYS_LR = _fmt.SYS_LR
SYS_GRAD_NORM = _fmt.SYS_GRAD_NORM
SYS_STEP_TIME = _fmt.SYS_STEP_TIME
SYS_DATA_WAIT = _fmt.SYS_DATA_WAIT
is_sys = _fmt.is_sys
numbered_path = _fmt.numbered             # exp1.h5 -> exp1-2.h5: where a new run on a used path goes
writer_holds = _fmt.is_locked             # a live writer holds this run file (its lock)
NO_WRITER = _fmt.NO_WRITER                # in a read error: the file is cut short and nobody writes it
lr_groups = _fmt.lr_groups
scalar_spec = _fmt.scalar_spec


# Learning-rate series: a schedule the optimizer was given, not a noisy measurement. An EMA of
# one only lags it (a warm-up drawn at 6.8e-4 where the LR was 7.6e-4), and the LR a script logs
# is often the recorder's ``sys/lr`` again: one curve plotted twice (the viewer, the report).
LR_WORDS = ("lr", "learning_rate", "learning-rate")   # the last part of a logged name ("optim/lr")
SAME_RTOL = 1e-6      # a float32 copy of a float64 LR still reads as the same curve


def is_lr(name: str) -> bool:
    """The recorder's ``sys/lr`` (any param group), a conventional logged LR name, or
    Lightning's ``lr-<optimizer>``."""
    return (bool(lr_groups([name])) or name in LR_NAMES or name.startswith(LR_MONITOR_PREFIX)
            or name.rsplit("/", 1)[-1] in LR_WORDS)


def same_series(a, b) -> bool:
    """Two series (``analysis.run.Series``) at the same steps with the same values: one curve."""
    return (np.array_equal(a.steps, b.steps)
            and np.allclose(a.values, b.values, rtol=SAME_RTOL, atol=0.0, equal_nan=True))


def stat_label(name: str) -> str:
    """Words for a layer statistic or a recorder series; a user metric keeps its own name."""
    spec = LAYER_STAT_SPECS.get(name) or scalar_spec(name)
    return spec.label if spec is not None else name


SEVERITY_COLORS = {Severity.ERROR: "#C62828", Severity.WARNING: "#E07B00", Severity.INFO: "#1565C0"}
SEVERITY_MARKS = {Severity.ERROR: "ERROR", Severity.WARNING: "WARN ", Severity.INFO: "info "}
STATE_COLORS = {RunState.LIVE: "#2E7D32", RunState.FINISHED: "#333", RunState.CRASHED: "#C62828",
                RunState.STALE: "#E07B00", RunState.RECORDING_STOPPED: "#8D6E00"}
NEUTRAL_COLOR = "#555"


def step_count(first: int, last: int) -> int:
    """Steps of a run whose points span ``first``..``last`` (-1: none): ``last + 1`` from step 0,
    ``last - first + 1`` for one counting from 1 (the HF Trainer, Lightning: 31 for 30 steps)."""
    return 0 if last < 0 else last + 1 if first <= 0 else last - first + 1


def steps_text(first: int, last: int) -> str:
    """``"120"``, or ``"30 (steps 1–30)"`` where the run's steps do not start at 0."""
    n = step_count(first, last)
    return f"{n} (steps {first}–{last})" if first > 0 and last >= 0 else str(n)


def name_list(names, most: int = 3) -> str:
    """``"a, b, c and 4 more"``: sorted names, the first ``most`` of them."""
    names = sorted(names)
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")
