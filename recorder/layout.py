"""The watched model's layout: parameters, leaf modules and snapshot slots in a fixed order.

Frozen at ``watch()``; the run file's layer tables (``params/``, ``modules/``, ``snaps/``) are
written from it, and every record spec indexes its per-layer values by it.
"""
from __future__ import annotations

from . import format as fmt
from .format import fit_name  # noqa: F401 - imported from here by the records and tests
from .device_stats import snapshot_shape
from .h5file import LayerLayout

MAX_SNAPSHOTS = 256
# Calls of one shared parameter-free leaf that get rows of their own (records/activations.py)
MAX_CALLS = 8

# (wrapper class, attribute holding the wrapped model): the attribute is left out of layer names,
# so one model reads the same compiled or not, under DDP or not (runs compare layer by layer).
WRAPPERS = {("DistributedDataParallel", "module"), ("DataParallel", "module"),
            ("OptimizedModule", "_orig_mod"), ("FullyShardedDataParallel", "_fsdp_wrapped_module"),
            ("ActivationWrapper", "_checkpoint_wrapped_module"),
            ("PeftModel", "base_model"), ("BaseTuner", "model")}   # PEFT: LoRA's base_model.model.


def module_names(model, shortened: list | None = None) -> dict:
    """id(module) -> its name with wrapper attributes (``module.``, ``_orig_mod.``...) left
    out; the plain ``named_modules()`` names if leaving them out would make two names equal."""
    names, merged = {id(model): ""}, set()
    for mod_name, mod in model.named_modules():
        wraps = {attr for cls in type(mod).__mro__ for w, attr in WRAPPERS if w == cls.__name__}
        parent = names.get(id(mod), mod_name)
        for child_name, child in mod.named_children():
            if id(child) not in names:
                if child_name in wraps:
                    names[id(child)] = parent
                    merged.add(id(child))
                else:
                    names[id(child)] = f"{parent}.{child_name}" if parent else child_name
    plain = {id(m): n for n, m in model.named_modules()}
    clean = {i: names.get(i, n) for i, n in plain.items()}
    distinct = [n for i, n in clean.items() if i not in merged]
    chosen = clean if len(set(distinct)) == len(distinct) else plain
    # room for the longest parameter attribute after the module's name (".weight_orig", ".lora_A")
    fitted = {i: fit_name(n, fmt.NAME_LEN - 24) for i, n in chosen.items()}
    if shortened is not None:
        shortened += [n for i, n in chosen.items() if fitted[i] != n]
    return fitted


def per_call_rows(modules, rows) -> dict | None:
    """Where a run file's module rows (``rows``: [(name, type)]) put the calls of ``modules`` (a
    model's leaves, as watch() lists them): {(leaf, call): row}, call 1 the leaf's own row and
    ``name#k`` rows the later calls of a shared leaf (records/activations.py); None when the
    rows are not those leaves, in their order, with such rows added. A resumed run uses it."""
    later = {(fit_name(f"{name}#{k}"), kind): (i, k)
             for i, (name, kind) in enumerate(modules) for k in range(2, MAX_CALLS + 1)}
    where, j = {}, 0
    for n, row in enumerate(rows):
        row = tuple(row)
        if j < len(modules) and row == tuple(modules[j]):
            where[(j, 1)] = n
            j += 1
        elif row in later and later[row] not in where:
            where[later[row]] = n
        else:
            return None
    return where if j == len(modules) else None


def output_bounds(module):
    """(low, high) output range of bounded activations (format.BOUNDED_ACTIVATIONS), None for others."""
    for cls in type(module).__mro__:       # a subclass of nn.Tanh is bounded like a Tanh
        if cls.__name__ in fmt.BOUNDED_ACTIVATIONS:
            bounds = fmt.BOUNDED_ACTIVATIONS[cls.__name__]
            return bounds if bounds is not None else (float(module.min_val), float(module.max_val))
    return None


def leaf_modules(model) -> list:
    """Modules without children, in model order. A parametrized layer (weight_norm and
    spectral_norm of torch.nn.utils.parametrizations: GAN discriminators, HiFi-GAN) is a leaf:
    its ``parametrizations`` compute its weight, and their outputs are weights, not the
    layer's activations (they were recorded as activation statistics, the layer itself not).
    TorchScript modules take no forward hooks ("not supported on ScriptModules" switched every
    instrument off): they and their insides are left out; their parameters are recorded.
    Containers (ModuleDict, ParameterDict...) have no forward: an empty one is no leaf.
    ``nn.MultiheadAttention`` is a leaf: its forward reads ``out_proj``'s weight and never
    calls it, so ``out_proj`` as a leaf had an all-NaN activation column in every transformer
    built from torch's layers, and the attention's own output was not recorded."""
    from torch import nn
    from torch.jit import ScriptModule
    from torch.nn.utils import parametrize

    containers = (nn.ModuleDict, nn.ModuleList, nn.ParameterDict, nn.ParameterList)
    leaves, inside = [], set()
    for mod in model.modules():
        if id(mod) in inside:
            continue
        if isinstance(mod, ScriptModule):
            inside.update(id(m) for m in mod.modules())
            continue
        if mod is not model and isinstance(mod, containers):
            continue            # an empty ModuleDict (PEFT puts several in every LoRA layer) never runs
        own = mod.parametrizations if parametrize.is_parametrized(mod) else None
        if own is not None:
            inside.update(id(m) for m in own.modules())
        if isinstance(mod, nn.MultiheadAttention):
            inside.update(id(m) for m in mod.modules() if m is not mod)
            leaves.append(mod)
        elif all(child is own for child in mod.children()):
            leaves.append(mod)
    return leaves


def _settings(module) -> dict:
    """The settings of a module the advisor reads: a Dropout's ``p``, and the attention dropout of
    an ``nn.MultiheadAttention`` (a leaf: its dropout is no module). Read back from activation
    statistics a Dropout's p was only found when it came right after the module feeding it in
    registration order (pytorch/examples' mnist registers conv1, conv2, dropout1, dropout2, ...)."""
    from torch import nn

    try:
        if isinstance(module, nn.modules.dropout._DropoutNd):
            p = getattr(module, "p", None)
        elif isinstance(module, nn.MultiheadAttention):
            p = getattr(module, "dropout", None)
        else:
            return {}
        p = float(p) if isinstance(p, (int, float)) and not isinstance(p, bool) else None
    except Exception:  # noqa: BLE001 - a subclass whose p is a property that raises: not watch()'s problem
        return {}
    return {"p": p} if p is not None and 0 <= p <= 1 else {}


def type_name(module) -> str:
    """The module's class name; the layer's own under a class torch makes on the fly: a
    parametrized layer is a ``ParametrizedLinear`` and FSDP2's ``fully_shard`` makes an
    ``FSDPLinear``, both subclasses of ``Linear`` (the advisor reads Linear/Conv outputs by type)."""
    cls = type(module)
    name = cls.__name__
    if name == "NonDynamicallyQuantizableLinear":   # nn.MultiheadAttention's out_proj: a Linear to its user
        return "Linear"
    for prefix in ("Parametrized", "FSDP"):
        own = name[len(prefix):]
        if name.startswith(prefix) and any(base.__name__ == own for base in cls.__mro__[1:]):
            return own
    return name


class ModelLayout:
    """Parameters, leaf modules and snapshot slots of a watched model, in a fixed order."""

    def __init__(self, model, optimizer=None):
        self.param_tensors, params = [], []
        seen = set()
        self.shortened = []      # names stored shortened (fit_name): the recorder warns
        self.names = names = module_names(model, self.shortened)
        # Parameters on the meta device hold no data (torch.func's ensemble tutorial moves its
        # base model there for vmap(functional_call)): left out, any copy of one raises
        self.meta_params = 0
        for mod in model.modules():    # first owner, in named_parameters() order (tied weights)
            for p_name, p in mod.named_parameters(recurse=False):
                if p.is_meta:
                    self.meta_params += id(p) not in seen
                    seen.add(id(p))
                elif id(p) not in seen:
                    seen.add(id(p))
                    self.param_tensors.append(p)
                    owner = names[id(mod)]
                    full = f"{owner}.{p_name}" if owner else p_name
                    if fit_name(full) != full:
                        self.shortened.append(full)
                    params.append((fit_name(full), owner, tuple(p.shape), p.numel()))
        self.optimized = None      # ids of the watched optimizer's parameters (None: no optimizer)
        self.trains_none = False   # the optimizer holds none of the model's trainable parameters
        if optimizer is not None:   # parameters the optimizer updates that are not in the model
            self.optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
            trainable = [p for p in self.param_tensors if p.requires_grad]
            self.trains_none = bool(trainable) and not any(id(p) in self.optimized for p in trainable)
            for g, group in enumerate(optimizer.param_groups):
                for i, p in enumerate(group["params"]):
                    if id(p) not in seen and not p.is_meta:
                        seen.add(id(p))
                        self.param_tensors.append(p)
                        params.append((f"optimizer.group{g}.param{i}", "", tuple(p.shape), p.numel()))
        self.leaves = []
        modules = []
        for mod in leaf_modules(model):
            self.leaves.append(mod)
            modules.append((names[id(mod)] or "(root)", type_name(mod)))
        # Leaves without parameters of their own (activations, dropout, pooling): one may be
        # called several times per forward, each call its own layer (records/activations.py)
        self.shareable = {i for i, m in enumerate(self.leaves)
                          if m is not model and next(m.parameters(recurse=False), None) is None}
        # Empty matrices (a 0-row weight) have nothing to pool: adaptive_avg_pool2d raised and
        # switched every instrument off, so they get no snapshot slot.
        self.snap_params = [i for i, p in enumerate(self.param_tensors)
                            if p.dim() >= 2 and p.numel() > 0][:MAX_SNAPSHOTS]
        self.layout = LayerLayout(
            params=params, modules=modules, snap_params=self.snap_params,
            snap_shapes=[snapshot_shape(self.param_tensors[i]) for i in self.snap_params])
        self.n_snap_candidates = sum(p.dim() >= 2 and p.numel() > 0 for p in self.param_tensors)

    def structure(self, model) -> dict:
        mods = [{"name": self.names[id(m)] or "(root)", "type": type_name(m),
                 "params": sum(p.numel() for p in m.parameters(recurse=False)), **_settings(m)}
                for m in model.modules()]
        out = {"modules": mods, "n_params": sum(p.numel() for p in self.param_tensors)}
        sharded = [i for i, p in enumerate(self.param_tensors)
                   if any(pl.is_shard() for pl in getattr(p, "placements", ()))]
        if sharded:   # FSDP2 / DTensor: each rank's file holds its shard's norms (FORMAT.md)
            out["sharded_params"] = sharded
        # requires_grad=False at watch(): frozen on purpose (a LoRA base, a backbone); written
        # even when empty, so a reader tells "none" from a file that predates it
        out["frozen_params"] = [i for i, p in enumerate(self.param_tensors) if not p.requires_grad]
        if self.optimized is not None:
            # trainable but not the watched optimizer's (a backbone run under torch.no_grad(), or
            # another optimizer's share): a missing gradient there can be on purpose
            out["unoptimized_params"] = [i for i, p in enumerate(self.param_tensors)
                                         if p.requires_grad and id(p) not in self.optimized]
        # dtype -> parameter indices: weights stored in bfloat16/float16 and stepped in place lose
        # every update below half their precision (the advisor's lost_updates)
        dtypes: dict = {}
        for i, p in enumerate(self.param_tensors):
            dtypes.setdefault(str(p.dtype).removeprefix("torch."), []).append(i)
        out["param_dtypes"] = dtypes
        if self.meta_params:
            out["meta_device_params"] = self.meta_params   # the watched module held no data (FORMAT.md)
        if any(type(m).__name__ == "OptimizedModule" for m in model.modules()):
            out["compiled"] = True    # torch.compile'd: no activation statistics (FORMAT.md)
        return out
