"""trainspect recorder: write a training run's metrics and tensor statistics to one HDF5 file.

``from trainspect import Recorder`` does not import torch; torch is imported when ``watch()``
or a tensor value first needs it.
"""
from .format import SCHEMA_VERSION

__all__ = ["Recorder", "SCHEMA_VERSION"]


def __getattr__(name):
    # Lazy so that `import recorder.format` (the viewer's path) stays light.
    if name == "Recorder":
        from .recorder import Recorder

        return Recorder
    raise AttributeError(name)


def __dir__():
    return sorted(set(globals()) | set(__all__))
