"""The run-file vocabulary the app needs (layer statistics, record groups, sizes).

Taken from the reader's format module via ``analysis``: the app reaches files and their
layout only through ``analysis`` (import direction app -> analysis -> recorder.format).
"""
from trainspect.analysis.run import fmt as _fmt

LAYER_STATS = dict(_fmt.LAYER_STATS)      # public stat name -> (record group, field)
HISTS = _fmt.HISTS
SNAPS = _fmt.SNAPS
HIST_BINS = _fmt.HIST_BINS
SNAP_SIZE = _fmt.SNAP_SIZE
ACTS = _fmt.ACTS                          # record group indexed by leaf modules
