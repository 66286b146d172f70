"""What the advisor reports: findings with evidence, ranked causes and ordered fixes.

Symptom and cause ids are a contract (ADVISOR.md, JSON output): add new ones, never rename.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .vocab import Severity

SEVERITIES = tuple(Severity)

SYMPTOMS = (
    "nan_inf", "divergence", "loss_oscillation", "loss_spikes", "no_progress", "early_plateau",
    "overfitting", "vanishing_gradients", "exploding_gradients", "dead_units",
    "saturated_activations", "symmetric_weights", "unnormalized_inputs", "frozen_layers",
)
CAUSES = (
    "lr_too_high", "lr_too_low", "bad_init", "input_scaling", "missing_normalization",
    "activation_choice", "insufficient_regularization", "insufficient_capacity", "optimizer_setup",
    "label_noise", "numerical_instability", "depth_without_skip_connections",
)


@dataclass
class Cause:
    id: str                 # one of CAUSES
    confidence: float       # 0..1, causes of a finding are sorted by it, highest first
    why: str                # one sentence: which evidence points here


@dataclass
class Evidence:
    series: str             # scalar name ("train/loss", "sys/grad_norm") or layer stat ("grad_norm")
    text: str               # human sentence: what was seen against which threshold
    steps: list = field(default_factory=list)    # steps the values belong to (may be empty)
    values: list = field(default_factory=list)   # the values that tripped the rule
    layer: str | None = None                     # for layer statistics: which layer
    threshold: float | None = None


@dataclass
class Finding:
    symptom: str            # one of SYMPTOMS
    severity: Severity      # a plain "warning" is accepted and converted
    title: str              # one line for humans
    first_step: int | None
    last_step: int | None
    layers: list = field(default_factory=list)
    evidence: list = field(default_factory=list)   # list[Evidence]
    causes: list = field(default_factory=list)     # list[Cause], most likely first
    fixes: list = field(default_factory=list)      # list[str], in the order to try them
    confirm: str = ""       # what experiment would confirm or refute it

    def __post_init__(self):
        if self.symptom not in SYMPTOMS:
            raise ValueError(f"unknown symptom id {self.symptom!r}")
        try:
            self.severity = Severity(self.severity)
        except ValueError:
            raise ValueError(f"unknown severity {self.severity!r}") from None
        for c in self.causes:
            if c.id not in CAUSES:
                raise ValueError(f"unknown cause id {c.id!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Most severe first, then earliest."""
    return sorted(
        findings,
        key=lambda f: (-Severity(f.severity).rank, f.first_step if f.first_step is not None else 1 << 62),
    )
