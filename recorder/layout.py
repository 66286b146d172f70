"""The watched model's layout: parameters, leaf modules and snapshot slots in a fixed order.

Frozen at ``watch()``; the run file's layer tables (``params/``, ``modules/``, ``snaps/``) are
written from it, and every record spec indexes its per-layer values by it.
"""
from __future__ import annotations

from . import format as fmt
from .device_stats import snapshot_shape
from .h5file import LayerLayout

MAX_SNAPSHOTS = 256


def output_bounds(module):
    """(low, high) output range of bounded activations (format.BOUNDED_ACTIVATIONS), None for others."""
    for cls in type(module).__mro__:       # a subclass of nn.Tanh is bounded like a Tanh
        if cls.__name__ in fmt.BOUNDED_ACTIVATIONS:
            bounds = fmt.BOUNDED_ACTIVATIONS[cls.__name__]
            return bounds if bounds is not None else (float(module.min_val), float(module.max_val))
    return None


class ModelLayout:
    """Parameters, leaf modules and snapshot slots of a watched model, in a fixed order."""

    def __init__(self, model, optimizer=None):
        self.param_tensors, params = [], []
        seen = set()
        module_of = {}
        for mod_name, mod in model.named_modules():
            for p_name, p in mod.named_parameters(recurse=False):
                module_of.setdefault(id(p), mod_name)
        for name, p in model.named_parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            self.param_tensors.append(p)
            params.append((name, module_of.get(id(p), ""), tuple(p.shape), p.numel()))
        if optimizer is not None:   # parameters the optimizer updates that are not in the model
            for g, group in enumerate(optimizer.param_groups):
                for i, p in enumerate(group["params"]):
                    if id(p) not in seen:
                        seen.add(id(p))
                        self.param_tensors.append(p)
                        params.append((f"optimizer.group{g}.param{i}", "", tuple(p.shape), p.numel()))
        self.leaves = []
        modules = []
        for name, mod in model.named_modules():
            if next(mod.children(), None) is None:
                self.leaves.append(mod)
                modules.append((name or "(root)", type(mod).__name__))
        # Empty matrices (a 0-row weight) have nothing to pool: adaptive_avg_pool2d raised and
        # switched every instrument off, so they get no snapshot slot.
        self.snap_params = [i for i, p in enumerate(self.param_tensors)
                            if p.dim() >= 2 and p.numel() > 0][:MAX_SNAPSHOTS]
        self.layout = LayerLayout(
            params=params, modules=modules, snap_params=self.snap_params,
            snap_shapes=[snapshot_shape(self.param_tensors[i]) for i in self.snap_params])
        self.n_snap_candidates = sum(p.dim() >= 2 and p.numel() > 0 for p in self.param_tensors)

    def structure(self, model) -> dict:
        mods = [{"name": n or "(root)", "type": type(m).__name__,
                 "params": sum(p.numel() for p in m.parameters(recurse=False))}
                for n, m in model.named_modules()]
        out = {"modules": mods, "n_params": sum(p.numel() for p in self.param_tensors)}
        sharded = [i for i, p in enumerate(self.param_tensors)
                   if any(pl.is_shard() for pl in getattr(p, "placements", ()))]
        if sharded:   # FSDP2 / DTensor: each rank's file holds its shard's norms (FORMAT.md)
            out["sharded_params"] = sharded
        return out
