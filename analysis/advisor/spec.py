"""What one symptom is to the advisor: a ``SymptomSpec`` in its own module under ``symptoms/``.

A spec holds everything about its symptom in one place: the id, the signals it needs and when
it fires (the two columns of the generated docs table), the detector, the causes that usually
produce it (priors), a function that moves those with the run's facts, the word used in the
"confirm" sentence, and fixes of its own (``Fix(id, text)``) listed before the causes' fixes.
Adding a symptom = one module with a ``SPEC`` + one line in ``registry.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..findings import Finding, Fix


@dataclass
class Scores:
    """Cause confidences of one finding while they are adjusted, with the reason for each change."""
    score: dict
    why: dict = field(default_factory=dict)

    def boost(self, cause: str, value: float, reason: str) -> None:
        """Raise ``cause`` to at least ``value`` and say why."""
        self.score[cause] = max(self.score.get(cause, 0.0), value)
        self.why[cause] = reason

    def damp(self, cause: str, factor: float) -> None:
        if cause in self.score:
            self.score[cause] *= factor

    def get(self, cause: str) -> float:
        return self.score.get(cause, 0.0)


def no_adjustment(scores: Scores, finding: Finding, ctx) -> None:
    """Priors as they are."""


def no_fixes(finding: Finding, ctx) -> list[Fix]:
    return []


def as_found(finding: Finding, ctx) -> bool:
    """The finding as its detector made it."""
    return True


@dataclass(frozen=True)
class SymptomSpec:
    id: str
    looks_at: str                 # the signals it needs (docs column "looks at")
    fires_when: str               # the rule in words, with its keyword defaults and sources (docs)
    detect: Callable              # detect(sig: Signals, ctx: Context) -> Finding | list[Finding] | None
    priors: dict                  # cause id -> prior confidence
    word: str                     # short name in sentences: "re-run with LR/10: the {word} should shrink"
    adjust: Callable = no_adjustment    # adjust(scores, finding, ctx): move the priors with the run's facts
    fixes: Callable = no_fixes          # fixes(finding, ctx) -> [Fix]: the symptom's own, listed first
    needs: tuple = ()             # instruments it cannot work without (ids of coverage.INSTRUMENTS)
    scope: str = "run"            # "run": one run file's signals; "ranks": across a distributed run's ranks
    settle: Callable = as_found         # settle(finding, ctx) -> keep?: a last look once every finding is known
