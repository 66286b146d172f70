"""Bounded reads: Run's block iterators give exactly the whole-table reads, and the report, the
CSV export, the advisor and the app read long tables through them, a block at a time."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from fixtures_runs import make_run
from trainspect.analysis import diagnose, open_run
from trainspect.analysis import run as run_module
from trainspect.analysis.advisor import tables
from trainspect.analysis.run import Run
from trainspect.app import layer_data
from trainspect.app.report import csv_export, svgplot
from trainspect.app.report.content import build_report, layer_heatmap, pooled_layer_stat

STATS = ["grad_norm", "weight_norm", "update_ratio", "act_dead_frac"]


@pytest.fixture(scope="module")
def long_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("bounded") / "long.h5", n_steps=3000, n_layers=3, stats_every=7,
                    hist_every=90, snapshot_every=110, seed=3)


@pytest.mark.parametrize("rows", [1, 7, 500, None])
def test_block_iterators_equal_the_whole_table_reads(long_run, rows):
    with open_run(long_run) as run:
        for stat in STATS:
            whole = run.layer_stat(stat)
            blocks = list(run.layer_stat_chunks(stat, rows=rows))
            assert all(len(b.steps) <= (rows or len(whole.steps)) for b in blocks)
            np.testing.assert_array_equal(np.concatenate([b.steps for b in blocks]), whole.steps)
            np.testing.assert_array_equal(np.concatenate([b.values for b in blocks]), whole.values)
            assert all(b.layers == whole.layers for b in blocks)
        for kind in ("weight", "grad"):
            whole = run.histograms(kind)
            blocks = list(run.histogram_chunks(kind, rows=rows))
            np.testing.assert_array_equal(np.concatenate([b.counts for b in blocks]), whole.counts)
            np.testing.assert_array_equal(np.concatenate([b.ranges for b in blocks]), whole.ranges)
        whole = run.snapshots()
        blocks = list(run.snapshot_chunks(rows=rows))
        np.testing.assert_array_equal(np.concatenate([b.data for b in blocks]), whole.data)
        np.testing.assert_array_equal(np.concatenate([b.steps for b in blocks]), whole.steps)


def test_block_iterators_take_a_range_and_bound_blocks_by_bytes(long_run, monkeypatch):
    monkeypatch.setattr(run_module, "CHUNK_BYTES", 4 * 6 * 10)      # 10 records of 6 layers
    with open_run(long_run) as run:
        blocks = list(run.layer_stat_chunks("grad_norm", 100, 155))
        assert [len(b.steps) for b in blocks] == [10, 10, 10, 10, 10, 5]
        np.testing.assert_array_equal(np.concatenate([b.values for b in blocks]),
                                      run.layer_stat("grad_norm", 100, 155).values)
        cols = run.layer_columns("grad_norm", [4, 1])
        np.testing.assert_array_equal(cols.values, run.layer_stat("grad_norm").values[:, [4, 1]])
        assert cols.layers == [run.params[4].name, run.params[1].name]
        with pytest.raises(KeyError, match="unknown layer statistic"):
            list(run.layer_stat_chunks("no_such_stat"))


class ReadLog:
    """Counts the records each whole-table read method returned (to prove reads are bounded)."""

    def __init__(self, monkeypatch):
        self.largest = {}
        for name in ("layer_stat", "histograms", "snapshots"):
            original = getattr(Run, name)

            def wrapped(run, *args, _original=original, _name=name, **kwargs):
                out = _original(run, *args, **kwargs)
                self.largest[_name] = max(self.largest.get(_name, 0), len(out.steps))
                return out
            monkeypatch.setattr(Run, name, wrapped)


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(run_module, "CHUNK_BYTES", 4 * 6 * 64)       # 64 records of 6 layers per block
    monkeypatch.setattr(csv_export, "ROWS_PER_WRITE", 64 * 7)
    monkeypatch.setattr(tables, "CHUNK_VALUES", 64 * 6)              # the advisor's blocks
    monkeypatch.setattr(layer_data, "CHUNK_BYTES", 4 * 6 * 64)       # the app's heatmap blocks
    return ReadLog(monkeypatch)


def test_report_export_advisor_and_app_read_a_block_at_a_time(long_run, tmp_path, small_blocks):
    with open_run(long_run) as run:
        build_report([run], diagnose_fn=diagnose)
        csv_export.export_run_csv(run, tmp_path / "csv")
        diagnose(run)
        layer_data.LayerStatSource(run, "grad_norm")
        layer_data.histogram_series(run, "weight", 2)
        layer_data.snapshot_series(run, 1)
        assert run.record_count("grads") == 3000
    # the largest single read: one block of records (grads has 3000), never the whole table;
    # 256 = the smallest block of the app's heatmap source (layer_data.LayerStatSource)
    assert max(small_blocks.largest.values()) <= 256, small_blocks.largest


def test_exported_layer_table_reads_back_exactly_across_blocks(long_run, tmp_path, monkeypatch):
    monkeypatch.setattr(csv_export, "ROWS_PER_WRITE", 50)
    with open_run(long_run) as run:
        csv_export.export_run_csv(run, tmp_path)
        whole = run.layer_stat("grad_norm")
        scalar = run.scalar("train/loss")
    with open(tmp_path / "layers_grad_norm.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["step", *whole.layers]
    table = np.array(rows[1:], dtype=np.float64)
    np.testing.assert_array_equal(table[:, 0], whole.steps)
    np.testing.assert_array_equal(table[:, 1:].astype(np.float32), whole.values)   # shortest float32 text
    with open(tmp_path / "train_loss.csv", newline="") as fh:
        back = np.array(list(csv.reader(fh))[1:], dtype=np.float64)
    np.testing.assert_array_equal(back[:, 1], scalar.values)
    np.testing.assert_array_equal(back[:, 2], scalar.wall)
    with open(tmp_path / "index.csv", newline="") as fh:
        index = {r["name"]: int(r["rows"]) for r in csv.DictReader(fh)}
    assert index["grad_norm"] == len(whole.steps) == 3000


def test_pooled_heatmap_equals_pooling_the_whole_table(long_run, monkeypatch):
    monkeypatch.setattr(run_module, "CHUNK_BYTES", 4 * 6 * 37)       # blocks that cut across buckets
    with open_run(long_run) as run:
        whole = run.layer_stat("grad_norm")
        pooled, first, last, layers, lo, hi = pooled_layer_stat(run, "grad_norm", svgplot.MAX_HEATMAP_COLUMNS)
        expect, edges = svgplot.pool_max(whole.values.astype(float), svgplot.MAX_HEATMAP_COLUMNS, axis=0)
        np.testing.assert_array_equal(pooled, expect)
        np.testing.assert_array_equal(first, whole.steps[edges[:-1]])
        assert last == whole.steps[-1] and layers == whole.layers
        assert (lo, hi) == (float(whole.values.min()), float(whole.values.max()))
        assert "<svg" in layer_heatmap(run, "grad_norm").svg
