"""trainspect: record a training run into one crash-safe HDF5 file and find out why it does not converge.

The repository root is the ``trainspect`` package; its folders install as ``trainspect.recorder``
(torch-side, writes run files), ``trainspect.analysis`` (numpy only: read and diagnose) and
``trainspect.app`` (the CLI, reports and the Qt viewer). Nothing here imports torch or Qt::

    from trainspect import Recorder, open_run, diagnose
"""
from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("trainspect")
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

# name -> (module, attribute): resolved on first use so that `import trainspect` stays light.
_LAZY = {
    "Recorder": ("trainspect.recorder.recorder", "Recorder"),
    "open_run": ("trainspect.analysis.run", "open_run"),
    "Run": ("trainspect.analysis.run", "Run"),
    "diagnose": ("trainspect.analysis.advisor", "diagnose"),
    "lr_range_test": ("trainspect.recorder.lr_range", "lr_range_test"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'trainspect' has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
