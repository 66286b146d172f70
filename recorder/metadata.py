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


# Values one copy takes: a YAML "billion laughs" (lists of 9 lists, 10 deep, ~900 bytes of
# aliases the loader shares) is 3.5e9 values walked as a tree: `import` of its hparams.yaml ran
# for minutes in 2 GB; a config of lists sharing sub-lists stalled Recorder(...) for 57 s.
MAX_VALUES = 500_000
CUT_NOTE = f"<cut: the config holds more than {MAX_VALUES:,} values>"


def json_safe(value, depth: int = 0, budget: list | None = None):
    """A JSON-serialisable copy of ``value``: numbers, strings, lists and dicts kept, numpy and
    0-d tensors turned into numbers, anything else into its ``repr``; past MAX_VALUES values,
    ``CUT_NOTE`` in their place."""
    if budget is None:
        budget = [MAX_VALUES]
    budget[0] -= 1
    if budget[0] < 0:
        return CUT_NOTE
    if depth > 20:
        return safe_repr(value)
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        try:   # np.timedelta64 registers as Integral and int() refuses it
            n = int(value)
        except (TypeError, ValueError, OverflowError):
            return safe_repr(value)
        # JSON readers refuse ints of more than 4300 digits (Python's int/str limit): the writer
        # thread died on 10**5000 and the run was lost
        return n if n.bit_length() <= MAX_INT_BITS else f"<int of {n.bit_length()} bits>"
    if isinstance(value, numbers.Real):
        try:
            return float(value)
        except (OverflowError, ValueError, TypeError):   # Fraction(10**400, 3): its exact text
            return safe_repr(value)
    if isinstance(value, dict):
        # plain values first: what the budget cuts is the deep part, not the "lr" beside it
        items = list(value.items())
        done = {i: json_safe(v, depth + 1, budget) for i, (_, v) in enumerate(items) if not _container(v)}
        done.update((i, json_safe(v, depth + 1, budget)) for i, (_, v) in enumerate(items) if i not in done)
        return {safe_str(k): done[i] for i, (k, _) in enumerate(items)}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v, depth + 1, budget) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 64 else safe_repr(value)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        if value.numel() == 1 and value.device.type == "cpu":
            return value.item()
        return f"tensor(shape={tuple(value.shape)}, dtype={value.dtype}, device={value.device})"
    return safe_repr(value)


def _container(value) -> bool:
    return isinstance(value, (dict, list, tuple, set, frozenset))


MAX_INT_BITS = 4096          # ~1233 digits, well inside Python's 4300-digit int/str limit
# A config larger than this (a vocabulary, a dataset in the config) is cut to what fits: the
# readers refuse run metadata over 64 MB as damage, and the whole file with it.
MAX_CONFIG_BYTES = 8 << 20
_CUT_VALUE_BYTES = 64 << 10


def bounded_config(config) -> tuple[object, list[str]]:
    """``json_safe(config)`` no larger than MAX_CONFIG_BYTES as JSON, and the top-level keys whose
    values were replaced by a note (largest first) to get there."""
    import json

    safe = json_safe(config)
    if not isinstance(safe, dict) or len(json.dumps(safe, default=str)) <= MAX_CONFIG_BYTES:
        return safe, []
    sizes = sorted(((len(json.dumps(v, default=str)), k) for k, v in safe.items()), reverse=True)
    total, cut = sum(n for n, _ in sizes), []
    for n, key in sizes:
        if total <= MAX_CONFIG_BYTES or n <= _CUT_VALUE_BYTES:
            break
        safe[key] = f"<{n:,} bytes of JSON: too large for the run file>"
        total -= n
        cut.append(key)
    return safe, cut


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


def base_meta(name: str, config, start_time: float, schedule: dict) -> dict:
    """``config`` is made JSON-safe already (``bounded_config``)."""
    return {
        "name": name,
        "config": config,
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

