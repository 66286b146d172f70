"""Counts the collectives a dist worker issues, and those called from a recorder frame
(training thread or writer thread); imported by the dist workers before they build anything.

Two kinds are wrapped:
- every ``torch.distributed`` collective function (DDP, ``dist.all_reduce`` ...);
- every functional collective op (``torch.ops._c10d_functional.*``: DTensor redistributes
  through ``torch.distributed._functional_collectives``, which calls these ops, so a recorder
  reading a sharded DTensor as a whole would show up here). Python callers only: a C++ call or
  an explicit overload (``.default``) is not seen.

``calls`` holds the names called from a recorder frame; ``totals()`` the number of each kind
called by anyone ({"c10d": ..., "functional": ...}: FSDP2 and DTensor issue their own).
"""
import functools
import inspect
import re
import sys
import warnings
import threading

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives  # noqa: F401  (registers its ops and imports first)
import torch.distributed.tensor  # noqa: F401  (DTensor's op tables hold the real ops, not ours)

# every collective function of torch.distributed (FSDP2 calls all_gather_single and
# reduce_scatter_single, names that come and go between versions), and new_group
COLLECTIVE_NAME = re.compile(r"all_|reduce|gather|scatter|broadcast|barrier|send|recv|to_all|^new_group$")
FUNCTIONAL_NAMESPACES = ("_c10d_functional", "_c10d_functional_autograd", "c10d_functional")
NOT_COLLECTIVES = ("wait_tensor",)   # waits for one already issued
calls = []
_totals = {"c10d": 0, "functional": 0}
_lock = threading.Lock()


def _from_recorder() -> bool:
    f = sys._getframe(2)
    while f is not None:
        if "/recorder/" in f.f_code.co_filename.replace("\\", "/"):
            return True
        f = f.f_back
    return False


def _note(name: str, kind: str) -> None:
    mine = _from_recorder()
    with _lock:
        _totals[kind] += 1
        if mine:
            calls.append(name)


def totals() -> dict:
    with _lock:
        return dict(_totals)


def _count(name, fn):
    @functools.wraps(fn)
    def wrapper(*a, **k):
        _note(name, "c10d")
        return fn(*a, **k)
    return wrapper


class _CountedOp:
    """Stands for an op packet in its ``torch.ops`` namespace: a call is counted, anything
    else (``.default``, the schema) is the real packet's."""

    def __init__(self, name, packet):
        self._name, self._packet = name, packet

    def __call__(self, *a, **k):
        _note(self._name, "functional")
        return self._packet(*a, **k)

    def __getattr__(self, attr):
        return getattr(self._packet, attr)


with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)   # dist.reduce_op, deprecated, is looked at
    for _name in dir(dist):
        if COLLECTIVE_NAME.search(_name) and inspect.isfunction(getattr(dist, _name)):
            setattr(dist, _name, _count(_name, getattr(dist, _name)))

for _op in torch._C._dispatch_get_all_op_names():
    _ns, _, _name = _op.partition("::")
    if _ns in FUNCTIONAL_NAMESPACES and _name not in NOT_COLLECTIVES:
        _space = getattr(torch.ops, _ns)
        setattr(_space, _name, _CountedOp(f"{_ns}.{_name}", getattr(_space, _name)))
