"""trainspect analysis: read run files and diagnose them. Pure numpy; no torch, no Qt."""
from trainspect.recorder.format import RunFileError

from .findings import Cause, Evidence, Finding, sort_findings
from .run import Histograms, LayerStat, ModuleInfo, ParamInfo, Run, RunStatus, Series, Snapshots, open_run

__all__ = [
    "open_run", "Run", "RunFileError", "RunStatus", "Series", "LayerStat", "Histograms", "Snapshots",
    "ParamInfo", "ModuleInfo", "Finding", "Cause", "Evidence", "sort_findings", "diagnose",
]


def __getattr__(name):
    # The advisor is imported on first use (it is the heaviest part of analysis).
    if name == "diagnose":
        from .advisor import diagnose

        return diagnose
    raise AttributeError(name)
