"""How layers are named to people: module name plus type, so "3" reads as "layer 3 (ReLU)".

The one labeller for findings, heatmap rows and report axes.

nn.Sequential names its children by index ("0", "3"); a bare index in a sentence
("100 % of the units of 3 never fire") reads like a count. Modules are named
"layer 3 (ReLU)" (or "encoder.fc1 (Linear)" when the name is not an index) and
parameters "0.weight (Linear)", with the type from the run's module table. The raw names
stay in ``Finding.layers`` and ``Evidence.layer``: the app jumps to them.
"""
from __future__ import annotations


def _is_index_path(name: str) -> bool:
    return bool(name) and all(part.isdigit() for part in name.split("."))


class LayerLabels:
    """Callable: layer or parameter name -> the words used in titles and evidence text."""

    def __init__(self, modules=(), params=()):
        self._module_type = {m.name: m.type for m in modules}
        self._param_module = {p.name: p.module for p in params}

    @classmethod
    def for_run(cls, run) -> "LayerLabels":
        return cls(run.modules or (), run.params or ())

    @classmethod
    def from_types(cls, names, types) -> "LayerLabels":
        """For callers that hold module names and type names as two lists."""
        labels = cls()
        labels._module_type = dict(zip(map(str, names), map(str, types)))
        return labels

    def __call__(self, name: str) -> str:
        name = str(name)
        if name in self._module_type:
            kind = self._module_type[name]
            base = f"layer {name}" if _is_index_path(name) else name
            return f"{base} ({kind})" if kind else base
        module = self._param_module.get(name)
        kind = self._module_type.get(module) if module is not None else None
        return f"{name} ({kind})" if kind else name
