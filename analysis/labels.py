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

    def __init__(self, modules=(), params=(), meta=None):
        """``meta``: the run's metadata, whose model lists every module (FORMAT.md): a parameter
        of a module that is no leaf (nn.MultiheadAttention's out_proj) gets its type from there."""
        self._module_type = {m.name: m.type for m in modules}
        self._param_module = {p.name: p.module for p in params}
        self._listed_type = _listed_types(meta)

    @classmethod
    def for_run(cls, run) -> "LayerLabels":
        return cls(run.modules or (), run.params or (), getattr(run, "meta", None))

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
        kind = None if module is None else self._module_type.get(module) or self._listed_type.get(module)
        return f"{name} ({kind})" if kind else name


def listed_modules(meta) -> list[dict]:
    """Every module the recorder listed at watch() (``meta["model"]["modules"]``, FORMAT.md): the
    well-formed entries (a dict with a str name), none for a file without them."""
    model = meta.get("model") if isinstance(meta, dict) else None
    listed = model.get("modules") if isinstance(model, dict) else None
    return [m for m in listed if isinstance(m, dict) and isinstance(m.get("name"), str)] \
        if isinstance(listed, list) else []


def _listed_types(meta) -> dict:
    return {m["name"]: m["type"] for m in listed_modules(meta)
            if isinstance(m.get("type"), str) and m["name"] != "(root)"}
