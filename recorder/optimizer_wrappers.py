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
    """The innermost object with working step hooks, or None if there is none.

    Innermost, not the first found: an optimizer that wraps another one and is a
    ``torch.optim.Optimizer`` itself (SAM, Lookahead, ZeroRedundancyOptimizer) steps the inner
    one once per iteration, but its own ``step()`` may never run: SAM's loop calls
    ``first_step()`` and ``second_step()``, and hooks on SAM recorded nothing at all."""
    seen = set()
    current, found = optimizer, None
    for _ in range(max_depth):
        if current is None or id(current) in seen:
            break
        seen.add(id(current))
        if has_step_hooks(current):
            found = current
        current = next((getattr(current, a, None) for a in INNER_ATTRS
                        if getattr(current, a, None) is not None), None)
    return found


def looks_like_optimizer(obj) -> bool:
    """Duck typing for wrappers that are no torch Optimizer subclass (Lightning's)."""
    return hasattr(obj, "param_groups") and callable(getattr(obj, "step", None))
