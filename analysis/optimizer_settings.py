"""An optimizer's settings as the run used them, for info, the report and the app's details.

The optimizer's ``defaults`` are what its constructor was given, not what trains: nanoGPT and
the HF Trainer put weight decay in per-group settings (0.1 for matrices, 0.0 for biases and
norms), and AdamW's default 0.01 was shown instead. Here each setting is read from the param
groups: one value when they agree, every group's otherwise. ``lr`` is the scheduler's base LR
(``initial_lr``) where a scheduler set one: at watch() a warm-up has the groups at 0.
"""
from __future__ import annotations

_SKIPPED = {"params", "n_params", "initial_lr"}


def _text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def optimizer_settings(opt_meta: dict | None) -> list[tuple[str, str]]:
    """``[(name, text)]`` of the settings in ``meta["optimizer"]``, in the optimizer's order."""
    if not isinstance(opt_meta, dict):
        return []
    defaults = opt_meta.get("hyperparameters") if isinstance(opt_meta.get("hyperparameters"), dict) else {}
    groups = param_groups(opt_meta)
    if not groups:
        return [(k, _text(v)) for k, v in defaults.items() if k not in _SKIPPED]
    names = list(dict.fromkeys([*defaults, *(k for g in groups for k in g)]))
    out = []
    for name in names:
        if name in _SKIPPED:
            continue
        values = [g.get("initial_lr", g.get("lr")) if name == "lr" else g.get(name, defaults.get(name))
                  for g in groups]
        texts = [_text(v) for v in values]
        out.append((name, texts[0] if len(set(texts)) == 1 else " | ".join(texts) + " (per group)"))
    return out


def param_groups(opt_meta) -> list[dict]:
    """The param groups of ``meta["optimizer"]`` that are dicts ([] for files that hold a count
    or nothing there)."""
    listed = opt_meta.get("param_groups") if isinstance(opt_meta, dict) else None
    return [g for g in listed if isinstance(g, dict)] if isinstance(listed, list) else []


def weight_decays(opt_meta) -> list[float]:
    """The positive weight decays of the run's param groups, sorted and distinct."""
    return sorted({float(g["weight_decay"]) for g in param_groups(opt_meta)
                   if isinstance(g.get("weight_decay"), (int, float)) and not isinstance(g["weight_decay"], bool)
                   and g["weight_decay"] > 0})
