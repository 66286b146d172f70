"""What the advisor reports: findings with evidence, structured facts, ranked causes and fixes.

Symptom and cause ids are a contract (ADVISOR.md, JSON output): add new ones, never rename.
The symptom ids are those of the advisor's registry (``advisor/registry.py``: one module per
symptom), the cause ids those of its cause catalogue (``advisor/causes.py``); ``SYMPTOMS`` and
``CAUSES`` here are read from them on first use, so adding a symptom touches no list here.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .vocab import Severity

SEVERITIES = tuple(Severity)


def __getattr__(name):
    # Read from the registry on first use: the advisor imports this module, not the other way round.
    if name == "SYMPTOMS":
        from .advisor.registry import SYMPTOM_IDS
        return SYMPTOM_IDS
    if name == "CAUSES":
        from .advisor.causes import CAUSE_IDS
        return CAUSE_IDS
    raise AttributeError(name)


@dataclass
class Cause:
    id: str                 # one of CAUSES
    confidence: float       # 0..1, causes of a finding are sorted by it, highest first
    why: str                # one sentence: which evidence points here


@dataclass(frozen=True)
class Fix:
    id: str                 # stable id ("lower_lr"): one id is listed at most once per finding
    text: str               # what to do, in words

    def __str__(self) -> str:
        return self.text


@dataclass
class Evidence:
    series: str             # scalar name ("train/loss", "sys/grad_norm") or layer stat ("grad_norm")
    text: str               # human sentence: what was seen against which threshold
    steps: list = field(default_factory=list)    # steps the values belong to (may be empty)
    values: list = field(default_factory=list)   # the values that tripped the rule
    layer: str | None = None                     # for layer statistics: which layer
    threshold: float | None = None


@dataclass
class Precursor:
    """The finding that started a chain: e.g. exploding gradients before a NaN."""
    symptom: str            # the precursor finding's symptom id (it is reported as its own finding too)
    first_step: int | None
    last_step: int | None
    summary: str            # "the gradient norm grew 1e+15x over 20 steps from step 25"


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
    fixes: list = field(default_factory=list)      # list[Fix], in the order to try them
    confirm: str = ""       # what experiment would confirm or refute it
    facts: dict = field(default_factory=dict)      # structured facts the cause ranking reads (never the prose)
    precursor: Precursor | None = None             # the finding that led to this one, if any
    ranks: list = field(default_factory=list)      # a distributed run's rank(s) the finding names

    def __post_init__(self):
        from .advisor.causes import CAUSE_IDS
        from .advisor.registry import SYMPTOM_IDS
        if self.symptom not in SYMPTOM_IDS:
            raise ValueError(f"unknown symptom id {self.symptom!r}")
        try:
            self.severity = Severity(self.severity)
        except ValueError:
            raise ValueError(f"unknown severity {self.severity!r}") from None
        for c in self.causes:
            if c.id not in CAUSE_IDS:
                raise ValueError(f"unknown cause id {c.id!r}")

    @property
    def fix_texts(self) -> list[str]:
        return [f.text for f in self.fixes]

    def to_dict(self) -> dict:
        return asdict(self)


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Most severe first, then earliest."""
    return sorted(
        findings,
        key=lambda f: (-Severity(f.severity).rank, f.first_step if f.first_step is not None else 1 << 62),
    )
