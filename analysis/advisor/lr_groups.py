"""Optimizer param groups whose learning rate is exactly 0 at every recorded step.

The recorder logs each group's LR (``sys/lr`` for group 0, ``sys/lr/k`` for group k). A group
given ``lr: 0.0`` (nanoGPT's decay group, a config typo) never moves its parameters while the
other groups train: the frozen weights were read as "check the optimizer's parameter list"
(trial 17, F3). A warm-up starting at 0 is not one: the LR must be 0 at every point."""
from __future__ import annotations

import numpy as np

from trainspect.recorder import format as fmt

MIN_POINTS = 3


def zero_lr_groups(sig) -> list[tuple[int, int | None]]:
    """[(group, its parameter count from the run's optimizer metadata or None)] of the param
    groups whose recorded LR is exactly 0 at every (>= MIN_POINTS) point."""
    out = []
    for group, (_, values) in sorted((getattr(sig, "lr_groups", None) or {}).items()):
        v = np.asarray(values, dtype=np.float64)
        if v.size >= MIN_POINTS and np.all(v == 0):
            out.append((group, _group_params(sig.meta, group)))
    return out


def every_lr_zero(sig) -> bool:
    """Every recorded param group's LR is exactly 0 at every point: "raise the LR 10x" multiplies 0."""
    groups = getattr(sig, "lr_groups", None) or {}
    return bool(groups) and len(zero_lr_groups(sig)) == len(groups)


def _group_params(meta: dict, group: int) -> int | None:
    groups = ((meta or {}).get("optimizer") or {}).get("param_groups")
    if isinstance(groups, list) and group < len(groups) and isinstance(groups[group], dict):
        n = groups[group].get("n_params")
        return int(n) if isinstance(n, (int, float)) else None
    return None


def group_names(groups) -> str:
    """'param group 0 (10 parameters)', 'param group 0 and param group 2'."""
    return " and ".join(f"param group {g}" + (f" ({n} parameters)" if n else "") for g, n in groups)


def zero_lr_text(groups) -> str:
    """'param group 0 (10 parameters) has a learning rate of exactly 0 at every step (sys/lr)'."""
    verb = "has" if len(groups) == 1 else "have"
    return (f"{group_names(groups)} {verb} a learning rate of exactly 0 at every step "
            f"({', '.join(fmt.lr_tag(g) for g, _ in groups)})")
