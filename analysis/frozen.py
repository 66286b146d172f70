"""Parameters frozen on purpose: ``requires_grad=False`` when ``watch()`` saw the model (a LoRA
base, a frozen backbone), from ``meta["model"]["frozen_params"]``; and those that require a
gradient but were not in the watched optimizer, ``meta["model"]["unoptimized_params"]``
(recorder/FORMAT.md); and the optimizer's tensors that belong to no module of the model."""
from __future__ import annotations


def _param_names_at(meta, params, key) -> set | None:
    """Names of the parameters at the indices ``meta["model"][key]``; None when the file does
    not say (written before the recorder noted them) or the run has no parameters."""
    model = meta.get("model") if isinstance(meta, dict) else None
    if not isinstance(model, dict) or not params:
        return None
    indices = model.get(key)
    if not isinstance(indices, list):
        return None
    names = [p.name for p in params]
    return {names[i] for i in indices if isinstance(i, int) and 0 <= i < len(names)}


def frozen_param_names(meta, params) -> set | None:
    """Names of the frozen parameters (None: not known). ``params``: the run's ParamInfo list."""
    return _param_names_at(meta, params, "frozen_params")


def unoptimized_param_names(meta, params) -> set | None:
    """Names of the trainable parameters the watched optimizer did not hold at watch() (None:
    not known: no optimizer, or an older file)."""
    return _param_names_at(meta, params, "unoptimized_params")


def frozen_numel(meta, params) -> int:
    """How many of the run's parameter elements were frozen at watch() (0 when none or unknown)."""
    names = frozen_param_names(meta, params)
    return sum(p.numel for p in params if p.name in names) if names else 0


def module_less_params(params) -> dict:
    """name -> shape of the tensors the watched optimizer held that no module of the model owns
    (recorded by position, ``optimizer.group0.param18``: a layer replaced after the optimizer was
    built keeps its old tensors there). A parameter of the model itself has no dot in its name."""
    return {p.name: tuple(p.shape) for p in params or ()
            if not p.module and p.name.startswith("optimizer.group") and "." in p.name}


def meta_device_params(meta) -> int:
    """How many parameters of the watched module were on the meta device (no data: a torch.func
    ensemble's base model for vmap(functional_call)); 0 when none or not recorded."""
    model = meta.get("model") if isinstance(meta, dict) else None
    n = model.get("meta_device_params") if isinstance(model, dict) else None
    return n if isinstance(n, int) and n > 0 else 0


def optimizer_holds_none(meta, params) -> bool:
    """The watched optimizer held none of the watched module's trainable parameters at watch():
    it trains other tensors (a copy of the model, a torch.func ensemble's stacked parameters)."""
    unoptimized = unoptimized_param_names(meta, params)
    if not unoptimized:
        return False
    apart = module_less_params(params)
    own = {p.name for p in params if p.name not in apart} - (frozen_param_names(meta, params) or set())
    return bool(own) and own <= unoptimized
