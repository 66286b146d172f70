"""Layer names short enough for an axis or a title, still telling the layers apart.

A plot axis does not draw a label wider than itself, and a plot is no narrower than its title:
PEFT's and HF's names (60 characters) left rows unlabelled and pushed plots out of their panel.
"""
from __future__ import annotations

import os


def elide_name(name: str, fit: int) -> str:
    """``name`` cut to ``fit`` characters: the end (the layer and its type) with the innermost
    block number in front ("h.0.…c_attn.base_layer (Conv1D)"): cut from the left alone, the
    rows of different blocks read the same."""
    if len(name) <= fit:
        return name
    tail = fit - 1
    parts = name.split(".")
    numbers = [i for i, part in enumerate(parts[:-1]) if part.isdigit()]
    if numbers:
        k = numbers[-1]
        starts_at = len(".".join(parts[:k])) + (1 if k else 0)
        if starts_at < len(name) - tail:          # the tail alone would lose the block number
            head = ".".join(parts[max(0, k - 1):k + 1]) + "."
            head = head if len(head) <= fit // 3 else parts[k] + "."
            return head + "…" + name[len(name) - (fit - len(head) - 1):]
    return "…" + name[len(name) - tail:]


def short_labels(labels, fit: int) -> list[str]:
    """Axis labels that fit the axis: a label wider than it is not drawn at all (PEFT's run to
    60 characters). Labels that fit are kept; else first the dotted prefix all share goes
    ("transformer.h."), then the dotted parts every label has in the same place ("attn",
    "default"), keeping those that tell them apart ("0", "lora_A"), last the middle of what
    is still too long (``elide_name``). The hover shows the whole name."""
    labels = list(labels)
    if len(labels) > 1 and any(len(label) > fit for label in labels):
        cut = os.path.commonprefix(labels).rfind(".") + 1
        labels = [label[cut:] for label in labels]
    if any(len(label) > fit for label in labels):
        parts = [label.split(".") for label in labels]
        if len(parts) > 1 and len({len(p) for p in parts}) == 1:
            same = [len({p[k] for p in parts}) == 1 for k in range(len(parts[0]) - 1)] + [False]
            labels = [".".join(c for c, drop in zip(p, same) if not drop) for p in parts]
    return _apart([elide_name(label, fit) for label in labels], labels, fit)


def _apart(elided: list, labels: list, fit: int) -> list:
    """Labels that ``elide_name`` made equal although the names differ ("encoder.layers.0.linear1"
    and "decoder.layers.0.linear1" both "…der.layers.0.linear1") keep, in front, the dotted parts
    where their names differ ("encoder.…", "decoder.…"; cut alike when there are several)."""
    groups: dict = {}
    for i, short in enumerate(elided):
        groups.setdefault(short, []).append(i)
    out = list(elided)
    for members in groups.values():
        names = [labels[i].split(".") for i in members]
        if len({labels[i] for i in members}) < 2:
            continue
        differ = [k for k in range(min(map(len, names))) if len({n[k] for n in names}) > 1]
        if not differ:
            continue
        room = max(1, (fit // 2) // len(differ) - 1)      # each differing part, cut alike
        for i, parts in zip(members, names):
            kept = elided[i].split("…", 1)[0] if "…" in elided[i] else ""   # elide_name's block number
            head = kept + ".".join(parts[k][:room] for k in differ) + ".…"
            keep = fit - len(head)
            out[i] = head + labels[i][len(labels[i]) - keep:] if keep > 0 else elided[i]
    return out
