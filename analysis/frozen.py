"""Parameters frozen on purpose: ``requires_grad=False`` when ``watch()`` saw the model (a LoRA
base, a frozen backbone), from ``meta["model"]["frozen_params"]`` (recorder/FORMAT.md)."""
from __future__ import annotations


def frozen_param_names(meta, params) -> set | None:
    """Names of the frozen parameters; None when the file does not say (written before the
    recorder noted them) or the run has no parameters. ``params``: the run's ParamInfo list."""
    model = meta.get("model") if isinstance(meta, dict) else None
    if not isinstance(model, dict) or not params:
        return None
    indices = model.get("frozen_params")
    if not isinstance(indices, list):
        return None
    names = [p.name for p in params]
    return {names[i] for i in indices if isinstance(i, int) and 0 <= i < len(names)}


def frozen_numel(meta, params) -> int:
    """How many of the run's parameter elements were frozen at watch() (0 when none or unknown)."""
    names = frozen_param_names(meta, params)
    return sum(p.numel for p in params if p.name in names) if names else 0
