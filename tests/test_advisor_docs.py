"""The symptom tables of ADVISOR.md and README.md are generated from the advisor's registry: a new
symptom, a reworded threshold or a changed prior must reach the docs through
``python -m trainspect.analysis.advisor.docs``, and this test fails until it does."""
from __future__ import annotations

import pytest

from trainspect.analysis.advisor import docs
from trainspect.analysis.advisor.registry import REGISTRY


@pytest.mark.parametrize("path", docs.DOCS, ids=lambda p: p.name)
def test_symptom_table_matches_the_registry(path):
    text = path.read_text(encoding="utf-8")
    assert docs.with_table(text, path) == text, (
        f"{path.name} drifted from the registry: run `python -m trainspect.analysis.advisor.docs`")


def test_table_has_one_row_per_registered_symptom():
    rows = docs.symptom_table().splitlines()[2:]
    assert [r.split("|")[1].strip(" `") for r in rows] == [s.id for s in REGISTRY]


def test_a_drifted_table_is_caught(tmp_path):
    text = docs.DOCS[0].read_text(encoding="utf-8")
    stale = text.replace(f"| `{REGISTRY[0].id}` |", "| `renamed` |", 1)
    assert docs.with_table(stale) != stale
    with pytest.raises(ValueError, match="markers"):
        docs.with_table("a README without the markers")


def test_registry_is_consistent():
    from trainspect.analysis.advisor.causes import CAUSE_CATALOGUE
    from trainspect.analysis.advisor.coverage import INSTRUMENTS
    ids = [s.id for s in REGISTRY]
    assert len(ids) == len(set(ids))
    for spec in REGISTRY:
        assert spec.priors and set(spec.priors) <= set(CAUSE_CATALOGUE), spec.id
        assert spec.word and spec.looks_at and spec.fires_when, spec.id
        assert set(spec.needs) <= {i.id for i in INSTRUMENTS}, spec.id
