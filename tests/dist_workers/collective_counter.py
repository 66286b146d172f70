"""Counts every torch.distributed function called from a recorder frame (training thread or
writer thread); imported by the dist workers before they build anything."""
import functools
import sys
import threading

import torch.distributed as dist

COUNTED = ("all_reduce", "all_gather", "all_gather_object", "broadcast", "broadcast_object_list",
           "barrier", "reduce", "gather", "gather_object", "scatter", "reduce_scatter",
           "all_to_all", "send", "recv", "isend", "irecv", "monitored_barrier", "new_group")
calls = []
_lock = threading.Lock()


def _from_recorder() -> bool:
    f = sys._getframe(2)
    while f is not None:
        if "/recorder/" in f.f_code.co_filename.replace("\\", "/"):
            return True
        f = f.f_back
    return False


def _count(name, fn):
    @functools.wraps(fn)
    def wrapper(*a, **k):
        if _from_recorder():
            with _lock:
                calls.append(name)
        return fn(*a, **k)
    return wrapper


for _name in COUNTED:
    if hasattr(dist, _name):
        setattr(dist, _name, _count(_name, getattr(dist, _name)))
