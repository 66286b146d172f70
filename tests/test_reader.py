"""The reader: round trip, incremental refresh, live/crashed state, clear errors on bad files."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

import trainspect.analysis.run as run_module
from trainspect.analysis import RunFileError, open_run
from trainspect.recorder import format as fmt
from trainspect.recorder.h5file import LayerLayout, RunFileWriter

LAYOUT = LayerLayout(
    params=[("fc1.weight", "fc1", (8, 4), 32), ("fc1.bias", "fc1", (8,), 8), ("fc2.weight", "fc2", (2, 8), 16)],
    modules=[("fc1", "Linear"), ("act", "ReLU"), ("fc2", "Linear")],
    snap_params=[0, 2],
    snap_shapes=[(8, 4), (2, 8)],
)


def write_run(path, n=100, close=True):
    w = RunFileWriter(path)
    w.start({"name": "unit", "config": {"lr": 0.1, "note": "<b>x</b>"}}, LAYOUT, flush_every=0.2)
    w.add_tags(["train/loss", "sys/lr"])
    steps = np.arange(n)
    w.append_scalars(np.repeat(steps, 2), np.tile([0, 1], n), np.ravel(np.c_[1.0 / (steps + 1), np.full(n, 0.1)]),
                     np.repeat(1000.0 + steps, 2))
    w.append_records("grads", steps, {"norm": np.outer(steps, [1, 2, 3]), "nonfinite": np.zeros((n, 3))})
    w.append_records("acts", steps[::10], {k: np.full((len(steps[::10]), 3), 0.5) for k in fmt.ACT_FIELDS})
    counts = np.zeros((1, 3, fmt.HIST_BINS)); counts[0, :, 3] = [32, 8, 16]
    w.append_records("hists", [50], {"weight_counts": counts, "weight_range": np.tile([-1, 1], (1, 3, 1)),
                                    "grad_counts": counts, "grad_range": np.tile([-1, 1], (1, 3, 1))})
    snap = np.full((1, 2, fmt.SNAP_SIZE, fmt.SNAP_SIZE), np.nan); snap[0, 0, :8, :4] = 1.0
    w.append_records("snaps", [50], {"weight": snap})
    w.flush(n - 1)
    if close:
        w.close()
    return w


def test_round_trip(tmp_path):
    write_run(tmp_path / "r.h5")
    with open_run(tmp_path / "r.h5") as run:
        assert run.name == "unit" and run.config["lr"] == 0.1
        assert [p.name for p in run.params] == ["fc1.weight", "fc1.bias", "fc2.weight"]
        assert run.params[0].shape == (8, 4) and run.params[0].numel == 32
        assert [m.type for m in run.modules] == ["Linear", "ReLU", "Linear"]
        assert run.scalar_names() == ["train/loss", "sys/lr"]
        loss = run.scalar("train/loss")
        np.testing.assert_array_equal(loss.steps, np.arange(100))
        np.testing.assert_allclose(loss.values, 1.0 / np.arange(1, 101))
        g = run.layer_stat("grad_norm")
        assert g.values.shape == (100, 3) and g.layers[2] == "fc2.weight"
        assert g.values[10, 2] == 30
        part = run.layer_stat("grad_norm", start=90)
        np.testing.assert_array_equal(part.steps, np.arange(90, 100))
        assert run.layer_stat("act_std").values.shape == (10, 3)
        assert set(run.layer_stat_names()) >= {"grad_norm", "act_mean"} and "weight_norm" not in run.layer_stat_names()
        h = run.histograms("weight")
        assert h.counts.shape == (1, 3, fmt.HIST_BINS) and h.counts[0].sum() == 56
        s = run.snapshots()
        assert s.layers == ["fc1.weight", "fc2.weight"] and s.data.shape == (1, 2, 32, 32)
        assert np.isnan(s.data[0, 0, 8:, :]).all() and (s.data[0, 0, :8, :4] == 1).all()
        assert run.status().state == "finished" and run.status().last_step == 99
        assert run.max_step == 99
        with pytest.raises(KeyError, match="val/loss"):
            run.scalar("val/loss")
        with pytest.raises(KeyError, match="unknown layer statistic"):
            run.layer_stat("nope")


def test_refresh_reads_only_new_rows_and_new_metrics(tmp_path):
    w = write_run(tmp_path / "r.h5", n=10, close=False)
    run = open_run(tmp_path / "r.h5")
    assert len(run.scalar("train/loss")) == 10
    assert run.refresh() == 0
    w.add_tags(["val/loss"])  # first seen mid-run
    w.append_scalars([10, 10], [0, 2], [0.05, 0.5], [2000.0, 2000.0])
    w.flush(10)
    assert run.refresh() >= 2
    assert "val/loss" in run.scalar_names()
    assert run.scalar("val/loss").steps.tolist() == [10]
    assert run.scalar("train/loss").steps[-1] == 10
    assert run.status().state == "live"
    w.close(fmt.STATUS_CRASHED)
    assert run.status().state == "crashed"
    run.close()


def test_many_tags_split_by_sorting(tmp_path):
    w = RunFileWriter(tmp_path / "m.h5")
    w.start({"name": "many"})
    names = [f"m/{i}" for i in range(50)]
    w.add_tags(names)
    n = 20
    w.append_scalars(np.repeat(np.arange(n), 50), np.tile(np.arange(50), n), np.tile(np.arange(50.0), n), np.zeros(n * 50))
    w.close()
    run = open_run(tmp_path / "m.h5")
    for i in (0, 17, 49):
        s = run.scalar(f"m/{i}")
        assert s.steps.tolist() == list(range(n)) and (s.values == i).all()


def test_nonfinite_values_kept(tmp_path):
    w = RunFileWriter(tmp_path / "n.h5")
    w.start({"name": "nan"})
    w.add_tags(["loss"])
    w.append_scalars([0, 1, 2], [0, 0, 0], [np.nan, np.inf, -np.inf], [0, 0, 0])
    w.close()
    v = open_run(tmp_path / "n.h5").scalar("loss").values
    assert np.isnan(v[0]) and v[1] == np.inf and v[2] == -np.inf


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    (b"not hdf5 at all" * 10, "not an HDF5 file"),
])
def test_bad_files_name_the_file(tmp_path, content, message):
    p = tmp_path / "bad.h5"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(RunFileError, match=message) as e:
        open_run(p)
    assert "bad.h5" in str(e.value)


def test_plain_hdf5_and_newer_schema(tmp_path):
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f["x"] = [1, 2]
    with pytest.raises(RunFileError, match="not a trainspect run"):
        open_run(tmp_path / "plain.h5")
    write_run(tmp_path / "new.h5")
    with h5py.File(tmp_path / "new.h5", "r+") as f:
        f.attrs[fmt.ATTR_SCHEMA] = np.int64(fmt.SCHEMA_VERSION + 1)
    with pytest.raises(RunFileError, match="schema version"):
        open_run(tmp_path / "new.h5")


def test_truncated_file(tmp_path):
    write_run(tmp_path / "t.h5")
    data = (tmp_path / "t.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 3])
    with pytest.raises(RunFileError, match="cut.h5"):
        r = open_run(tmp_path / "cut.h5")
        r.scalar("train/loss"), r.layer_stat("grad_norm")


WRITER = textwrap.dedent("""
    import sys, time, numpy as np
    from trainspect.recorder.h5file import RunFileWriter
    w = RunFileWriter(sys.argv[1]); w.start({"name": "live"}, flush_every=0.05); w.add_tags(["loss"])
    print("started", flush=True)
    for i in range(100000):
        w.append_scalars([i], [0], [1.0 / (i + 1)], [time.time()])
        w.flush(i)
        print("flushed", i, flush=True)
        time.sleep(0.02)
""")


def test_live_reader_in_other_process_and_stale_writer(tmp_path, monkeypatch):
    path = tmp_path / "live.h5"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(__file__)))
    try:
        assert proc.stdout.readline().strip() == "started"
        proc.stdout.readline()
        run = open_run(path)
        seen = [len(run.scalar("loss"))]
        for _ in range(5):
            time.sleep(0.15)
            run.refresh()
            seen.append(len(run.scalar("loss")))
        assert seen[-1] > seen[0], seen
        assert run.status().state == "live"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    last = len(run.scalar("loss"))
    run.refresh()
    assert len(run.scalar("loss")) >= last
    monkeypatch.setattr(run_module, "STALE_MIN_SECONDS", 0.3)
    time.sleep(0.5)
    st = run.status()
    assert st.state == "stale" and "stopped responding" in st.describe()
    assert st.last_step >= len(run.scalar("loss")) - 1
    run.close()
    # A crashed SWMR file opens again from scratch, with every flushed row.
    again = open_run(path)
    assert len(again.scalar("loss")) >= last
    again.close()


def test_info_cli(tmp_path, capsys):
    from trainspect.app.cli import main

    write_run(tmp_path / "r.h5")
    assert main(["info", str(tmp_path / "r.h5")]) == 0
    out = capsys.readouterr().out
    assert "finished at step 99" in out and "train/loss" in out and "grads (100 records)" in out
    assert "NaN/Inf" not in out
    w = RunFileWriter(tmp_path / "nan.h5")
    w.start({"name": "nan"})
    w.add_tags(["train/loss", "val/loss"])
    w.append_scalars([0, 1, 2, 3, 3], [0, 0, 0, 0, 1], [1.0, 0.5, float("nan"), float("inf"), 2.0], np.zeros(5))
    w.close()
    assert main(["info", str(tmp_path / "nan.h5")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert next(x for x in lines if "train/loss" in x).endswith("last inf  (NaN/Inf from step 2)")
    assert next(x for x in lines if "val/loss" in x).endswith("last 2")
    (tmp_path / "bad.h5").write_bytes(b"junk" * 100)
    assert main(["info", str(tmp_path / "bad.h5")]) == 2
    assert "bad.h5" in capsys.readouterr().err


def test_long_scalar_tables_load_only_the_metrics_asked_for(tmp_path, monkeypatch):
    """Above EAGER_SCALAR_ROWS the reader keeps only requested metrics, with identical results."""
    path = tmp_path / "lazy.h5"
    w = RunFileWriter(path)
    w.start({"name": "lazy"})
    w.add_tags(["a", "b", "c"])
    steps = np.arange(3000)
    w.append_scalars(np.repeat(steps, 3), np.tile([0, 1, 2], 3000), np.ravel(np.c_[steps, -steps, steps * 0.5]),
                     np.repeat(steps * 0.1, 3))
    w.flush(2999)
    eager = open_run(path)
    monkeypatch.setattr(run_module, "EAGER_SCALAR_ROWS", 100)
    monkeypatch.setattr(run_module, "SCALAR_READ_BLOCK", 1000)     # several blocks
    lazy = open_run(path)
    assert lazy.scalar_names() == ["a", "b", "c"]
    assert lazy._points == {}                                        # names only: nothing loaded yet
    for name in ("b", "a"):
        got, want = lazy.scalar(name), eager.scalar(name)
        np.testing.assert_array_equal(got.steps, want.steps)
        np.testing.assert_array_equal(got.values, want.values)
        np.testing.assert_array_equal(got.wall, want.wall)
    assert set(lazy._points) == {0, 1}                               # "c" never asked for, never held
    w.add_tags(["d"])
    w.append_scalars([3000, 3000, 3000], [0, 2, 3], [7.0, 8.0, 9.0], [1.0, 1.0, 1.0])
    w.close()
    assert lazy.refresh() == 3
    assert lazy.scalar("a").values[-1] == 7.0 and len(lazy.scalar("a")) == 3001
    assert lazy.scalar("d").values.tolist() == [9.0]
    assert lazy.scalar("c").values[-1] == 8.0 and len(lazy.scalar("c")) == 3001
    eager.close()
    lazy.close()
