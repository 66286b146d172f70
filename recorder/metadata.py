"""Run metadata (meta/json): JSON-safe config, versions, host, model and optimizer description.

No torch import here: torch objects are recognised through ``sys.modules``.
"""
from __future__ import annotations

import numbers
import platform
import socket
import sys

import numpy as np

from . import format as fmt

STEP_CONVENTION = (
    "Records of an optimizer step carry the 0-based index of that step. log(step=None) uses the "
    "index of the optimizer step of the latest training-mode forward pass of the watched model "
    "(so a loss logged before or after optimizer.step() lines up with that step's gradient records); "
    "before any forward, the number of optimizer steps completed so far; without a watched optimizer, "
    "the step after the previous log() call's step (first call: 0)."
)


def json_safe(value, depth: int = 0):
    """A JSON-serialisable copy of ``value``: numbers, strings, lists and dicts kept, numpy and
    0-d tensors turned into numbers, anything else into its ``repr``."""
    if depth > 20:
        return safe_repr(value)
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        try:
            return float(value)
        except (OverflowError, ValueError, TypeError):   # Fraction(10**400, 3): its exact text
            return safe_repr(value)
    if isinstance(value, dict):
        return {safe_str(k): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v, depth + 1) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 64 else safe_repr(value)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        if value.numel() == 1 and value.device.type == "cpu":
            return value.item()
        return f"tensor(shape={tuple(value.shape)}, dtype={value.dtype}, device={value.device})"
    return safe_repr(value)


def safe_repr(value) -> str:
    """``repr(value)``, or a stand-in naming its type when that raises: a config object whose
    ``__repr__`` reads state not set up yet must not stop the training script."""
    try:
        return repr(value)
    except Exception as exc:  # noqa: BLE001 - any user __repr__ may raise anything
        return f"<{type(value).__name__} object: repr() raised {type(exc).__name__}>"


def safe_str(value) -> str:
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - as safe_repr
        return safe_repr(value)


def versions() -> dict:
    import h5py

    try:
        from importlib.metadata import version

        trainspect = version("trainspect")
    except Exception:  # noqa: BLE001 - not installed as a distribution (run from a checkout)
        trainspect = "0.1.0+checkout"
    torch = sys.modules.get("torch")
    return {
        "python": platform.python_version(),
        "torch": getattr(torch, "__version__", None),
        "trainspect": trainspect,
        "h5py": h5py.__version__,
        "numpy": np.__version__,
    }


def base_meta(name: str, config: dict, start_time: float, schedule: dict) -> dict:
    return {
        "name": name,
        "config": json_safe(config),
        "start_time": start_time,
        "host": socket.gethostname(),
        "versions": versions(),
        "model": None,
        "optimizer": None,
        "schedule": schedule,
        "step_convention": STEP_CONVENTION,
        "schema_version": fmt.SCHEMA_VERSION,
    }


def optimizer_meta(optimizer) -> dict | None:
    if optimizer is None:
        return None
    groups = []
    for g in optimizer.param_groups:
        hp = {k: json_safe(v) for k, v in g.items() if k != "params"}
        hp["n_params"] = len(g["params"])
        groups.append(hp)
    return {
        "type": type(optimizer).__name__,
        "hyperparameters": {k: json_safe(v) for k, v in (getattr(optimizer, "defaults", None) or {}).items()
                            if k != "params"},
        "param_groups": groups,
    }

