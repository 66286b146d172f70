"""Find the real ``torch.optim.Optimizer`` inside the wrappers frameworks put around it.

accelerate's ``AcceleratedOptimizer`` subclasses ``torch.optim.Optimizer`` without calling its
``__init__`` (no ``_optimizer_step_pre_hooks``: registering a step hook on it raised
``AttributeError`` and killed the user's training); Lightning's ``LightningOptimizer`` and
DeepSpeed/FSDP wrappers keep the real optimizer in an attribute. Hooks go on the innermost
optimizer, which every wrapper's ``step()`` ends up calling.
"""
from __future__ import annotations

# Attribute names under which known wrappers keep the optimizer they wrap.
INNER_ATTRS = ("optimizer", "_optimizer", "optim", "base_optimizer")


def has_step_hooks(optimizer) -> bool:
    return hasattr(optimizer, "_optimizer_step_pre_hooks") and hasattr(optimizer, "register_step_pre_hook")


def unwrap(optimizer, max_depth: int = 8):
    """The innermost object with working step hooks, or None if there is none."""
    seen = set()
    current = optimizer
    for _ in range(max_depth):
        if current is None or id(current) in seen:
            return None
        seen.add(id(current))
        if has_step_hooks(current):
            return current
        current = next((getattr(current, a, None) for a in INNER_ATTRS
                        if getattr(current, a, None) is not None), None)
    return None


def looks_like_optimizer(obj) -> bool:
    """Duck typing for wrappers that are no torch Optimizer subclass (Lightning's)."""
    return hasattr(obj, "param_groups") and callable(getattr(obj, "step", None))
