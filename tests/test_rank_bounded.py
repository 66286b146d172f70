"""The rank rules, ``trainspect info``'s rank lines and ``tail``'s advisor read every rank of a
distributed run through bounded views (issue 11 part 5): memory does not grow with the run, and
the findings are those of the full series. Up to 131,072 points per series a view holds every
point: findings identical field for field. Beyond, the ranks are compared on their common plain
sample: the same rules fire on the same ranks, the first non-finite step of each rank is exact."""
from __future__ import annotations

import math
from dataclasses import astuple

import numpy as np
import pytest
from rank_runs import KINDS, full_rank_signals, full_summaries, rank_series, write_rank_files

from trainspect.analysis import open_run
from trainspect.analysis.advisor.diagnose import diagnose_signals
from trainspect.analysis.advisor.signals import extract
from trainspect.analysis.ranks import open_ranks, summaries
from trainspect.analysis.run import VIEW_POINTS
from trainspect.app.commands.tail import FindingTracker
from trainspect.recorder.h5file import RunFileWriter

RANK_SYMPTOMS = {"straggler_rank", "rank_nonfinite_first", "rank_loss_divergence"}
SEEDS = (0, 1, 2)
EXPECTED = {"healthy": set(), "spike": set(), "nan": {"rank_nonfinite_first"}, "straggler": {"straggler_rank"},
            "diverging": {"rank_loss_divergence"}}


def rank_findings(path, with_signals: bool = False) -> tuple:
    """({symptom: Finding} of the rank rules read through bounded views, the same from the full
    series) (, the bounded RankSignals)."""
    with open_run(path) as run:
        sig = extract(run)
        bounded_ranks = sig.ranks
        bounded = {f.symptom: f for f in diagnose_signals(sig) if f.symptom in RANK_SYMPTOMS}
        sig.ranks = full_rank_signals(run)   # the rest of the signals as they were
        full = {f.symptom: f for f in diagnose_signals(sig) if f.symptom in RANK_SYMPTOMS}
    return (bounded, full, bounded_ranks) if with_signals else (bounded, full)


def assert_close_findings(bounded: dict, full: dict, exact_steps: bool = True) -> None:
    """Decimated series: the same finding (rule, ranks, title, facts, causes, evidence of the same
    series) with the figures of a sample (medians within a few %)."""
    assert set(bounded) == set(full)
    for symptom, f in full.items():
        b = bounded[symptom]
        assert (b.severity, b.ranks, b.title, b.facts) == (f.severity, f.ranks, f.title, f.facts), symptom
        assert [c.id for c in b.causes] == [c.id for c in f.causes]
        if exact_steps or symptom != "rank_loss_divergence":
            assert (b.first_step, b.last_step) == (f.first_step, f.last_step)
        else:   # the tail third of the steps every rank has: its ends within a stride or two
            assert abs(b.first_step - f.first_step) <= 64 and abs(b.last_step - f.last_step) <= 64
        assert [e.series for e in b.evidence] == [e.series for e in f.evidence]
        for eb, ef in zip(b.evidence, f.evidence):
            assert len(eb.values) == len(ef.values)
            if ef.text.startswith("spread between the ranks' levels"):
                # [head, tail]: the head spread of ranks that start together is the noise of
                # medians (of a sample: larger); both say the ranks started together
                assert math.isclose(eb.values[1], ef.values[1], rel_tol=0.05)
                assert max(eb.values[0], ef.values[0]) < 0.25 * ef.values[1]
                continue
            for vb, vf in zip(eb.values, ef.values):
                if isinstance(vb, str) or isinstance(vf, str):   # "nan", "inf": as JSON writes them
                    assert vb == vf
                    continue
                assert math.isclose(vb, vf, rel_tol=0.05, abs_tol=1e-3), (symptom, eb.text, ef.text)


def _run(tmp_path, kind: str, seed: int, n: int, live: bool = False):
    rng = np.random.default_rng(seed)
    world = 2 + seed % 3
    lengths = [n] * world
    if live:   # ranks flushed to different steps (a live run), so their views differ in stride
        lengths[-1] = n - int(rng.integers(15_000, 40_000))
    target = int(rng.integers(world))
    write_rank_files(tmp_path / "exp.h5", rank_series(kind, lengths, rng, target))
    return tmp_path / "exp.h5", target


def _nan_safe(summary) -> tuple:
    return tuple("nan" if isinstance(v, float) and math.isnan(v) else v for v in astuple(summary))


# ---------------------------------------------------------------- short runs: identical
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", KINDS)
def test_short_runs_give_the_full_series_findings_field_for_field(tmp_path, kind, seed):
    path, target = _run(tmp_path, kind, seed, 3_000)
    bounded, full = rank_findings(path)
    assert {s: f.to_dict() for s, f in bounded.items()} == {s: f.to_dict() for s, f in full.items()}
    assert set(full) == EXPECTED[kind]
    assert all(target in f.ranks for f in full.values())   # two ranks apart: both are named
    with open_ranks(path, keep_points=False) as ranked, open_ranks(path) as whole:
        assert [_nan_safe(s) for s in summaries(ranked)] == [_nan_safe(s) for s in full_summaries(whole)]


# ---------------------------------------------------------------- long runs: the same findings
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", KINDS)
def test_long_runs_give_the_full_series_findings(tmp_path, kind, seed):
    n = 200_000   # > VIEW_POINTS: every rank's views are decimated (strides 2 and 4)
    path, target = _run(tmp_path, kind, seed, n, live=seed == 1)
    bounded, full, sig = rank_findings(path, with_signals=True)
    assert set(full) == EXPECTED[kind]
    assert all(target in f.ranks for f in full.values())   # two ranks apart: both are named
    assert_close_findings(bounded, full, exact_steps=False)
    if kind == "nan":   # every rank's first bad step and value: exact
        assert bounded["rank_nonfinite_first"].to_dict() == full["rank_nonfinite_first"].to_dict()
    for name, m in sig.timing.items():   # what the rules compare: a plain sample of the steps
        complete = m.steps[np.all(np.isfinite(m.values), axis=0)]
        assert len(complete) <= VIEW_POINTS and len(complete) >= (n - 40_000) // 4 - 1, name
        assert np.all(complete[1:-1] % 4 == 0), name   # the coarsest stride's grid, no bucket extremes
    with open_ranks(path, keep_points=False) as ranked, open_ranks(path) as whole:
        for b, f in zip(summaries(ranked), full_summaries(whole)):
            assert (b.rank, b.status, b.last_step, b.loss, b.first_nonfinite) == \
                   (f.rank, f.status, f.last_step, f.loss, f.first_nonfinite)
            assert b.last_loss == f.last_loss or (math.isnan(b.last_loss) and math.isnan(f.last_loss))
            assert math.isclose(b.median_step_time, f.median_step_time, rel_tol=0.01)


def test_ranks_logging_on_different_steps_are_still_compared(tmp_path):
    """A rank whose sample falls on other steps (it has no point at step 0, so its every-j-th
    positions are other steps): each rank's sample is compared at the nearest of rank 0's
    sample steps, and the straggler is still named."""
    rng = np.random.default_rng(5)
    per_rank = rank_series("straggler", [200_000, 199_999], rng, 1)
    write_rank_files(tmp_path / "exp.h5", per_rank, starts=[0, 1])
    bounded, full, sig = rank_findings(tmp_path / "exp.h5", with_signals=True)
    assert set(bounded) == set(full) == {"straggler_rank"}
    assert bounded["straggler_rank"].ranks == full["straggler_rank"].ranks == [1]
    assert_close_findings(bounded, full)
    m = sig.timing["sys/data_wait"]
    complete = m.steps[np.all(np.isfinite(m.values), axis=0)]
    assert len(complete) >= 200_000 // 4 - 1 and np.all(complete[:-1] % 4 == 0)   # rank 0's sample steps


# ---------------------------------------------------------------- memory: nothing kept
def _held_points(run) -> int:
    return sum(g.n for g in run._points.values())


def test_the_advisor_and_info_hold_no_rank_series(tmp_path):
    """diagnose / info on a distributed run: the rank files are read through bounded views; no
    Run keeps a metric's points (the full-series reading kept rank 0's, the file the user opened)."""
    path, _ = _run(tmp_path, "straggler", 0, 20_000)
    from trainspect.analysis import diagnose
    from trainspect.app.commands.info import rank_lines

    with open_run(path) as run:
        assert "straggler_rank" in {f.symptom for f in diagnose(run)}
        assert len(rank_lines(run)) == 1 + 2
        assert _held_points(run) == 0


def test_tail_keeps_the_rank_files_open_and_reads_only_new_rows(tmp_path):
    """tail's advisor passes on a growing 2-rank run: each pass reuses the sibling rank file it
    opened (no points held, views fed only the rows added since) and finds what a fresh diagnose
    of the grown run finds."""
    from trainspect.analysis import diagnose

    rng = np.random.default_rng(3)
    per_rank = rank_series("straggler", [60_000, 60_000], rng, 1)
    path = tmp_path / "exp.h5"
    writers = []
    for rank, series in enumerate(per_rank):
        w = RunFileWriter(path if rank == 0 else path.with_name(f"exp.rank{rank}.h5"))
        w.start({"name": "exp", "distributed": {"rank": rank, "world_size": 2, "run_id": "x", "rank0_file": "exp.h5"}})
        w.add_tags(list(series))
        writers.append(w)

    def grow(lo, hi):
        for w, series in zip(writers, per_rank):
            cols = np.stack([v[lo:hi] for v in series.values()], axis=1)
            steps = np.repeat(np.arange(lo, hi, dtype=np.int64), cols.shape[1])
            w.append_scalars(steps, np.tile(np.arange(cols.shape[1], dtype=np.int32), hi - lo), cols.ravel(), steps * 0.1)
            w.flush(hi - 1)

    tracker = FindingTracker()
    try:
        grow(0, 20_000)
        with open_run(path) as run:
            tracker.update(run)
            sibling = tracker.siblings[str(path.with_name("exp.rank1.h5"))][1]
            assert sibling._views.rows == 20_000 * 5
            grow(20_000, 60_000)
            tracker.update(run)
            assert tracker.siblings[str(path.with_name("exp.rank1.h5"))][1] is sibling   # the same open file
            assert sibling._views.rows == 60_000 * 5 and _held_points(sibling) == 0
            live = [f.to_dict() for f in tracker.findings]
            assert "straggler_rank" in {f["symptom"] for f in live}
        for w in writers:
            w.close(last_step=59_999)
        fresh = [f.to_dict() for f in diagnose(path)]
        assert [f for f in live if f["symptom"] in RANK_SYMPTOMS] == \
               [f for f in fresh if f["symptom"] in RANK_SYMPTOMS]
    finally:
        tracker.close()
        for w in writers:
            w.close()
