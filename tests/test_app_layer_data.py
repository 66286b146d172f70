"""Level-of-detail reads of per-layer statistics: exact max-pooling, bounded memory."""
import numpy as np
import pytest

from trainspect.analysis import open_run
from trainspect.app import layer_data
from trainspect.app.layer_data import LayerStatSource, histogram_series, snapshot_series
from tests.fixtures_runs import make_run

N = 30_000
SPIKE = (12_345, 3, 1e4)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = make_run(tmp_path_factory.mktemp("ld") / "layers.h5", n_steps=N, n_layers=4, grad_spike=SPIKE,
                    stats_every=100, hist_every=1000, snapshot_every=1000)
    with open_run(path) as r:
        yield r


def brute_force(values, steps, lo, hi, first, last):
    """Max of every displayed bucket computed from the full table."""
    out = np.empty((values.shape[1], len(first)))
    for i, (a, b) in enumerate(zip(first, last)):
        sel = (steps >= a) & (steps <= b)
        out[:, i] = values[sel].max(axis=0)
    return out


@pytest.mark.parametrize("lo,hi,px", [(None, None, 500), (0, N, 300), (10_000, 15_000, 400), (12_300, 12_400, 800)])
def test_image_is_the_exact_max_of_each_bucket(run, monkeypatch, lo, hi, px):
    monkeypatch.setattr(layer_data, "CHUNK_BYTES", 64 * 1024)   # many chunks: exercise chunk borders
    src = LayerStatSource(run, "grad_norm")
    full = run.layer_stat("grad_norm")
    img, first, last = src.image(lo, hi, px)
    assert img.shape == (8, len(first)) and len(first) <= px
    np.testing.assert_allclose(img, brute_force(full.values, full.steps, lo, hi, first, last), rtol=1e-6)
    if lo is None or lo <= SPIKE[0] <= hi:
        assert img[SPIKE[1]].max() == pytest.approx(SPIKE[2])   # the one-step spike is on screen


def test_fast_answer_comes_from_memory_and_keeps_the_spike(run, monkeypatch):
    src = LayerStatSource(run, "grad_norm")
    reads = []
    real = run.layer_stat
    monkeypatch.setattr(run, "layer_stat", lambda *a, **k: reads.append(a) or real(*a, **k))
    img, first, last = src.image(5_000, 25_000, 400, exact=False)
    assert reads == []                       # no file access while panning
    assert img[SPIKE[1]].max() == pytest.approx(SPIKE[2])
    assert not src.is_exact(5_000, 25_000, 4000) and src.is_exact(None, None, 400)


def test_memory_follows_the_screen_not_the_table(run, monkeypatch):
    monkeypatch.setattr(layer_data, "CHUNK_BYTES", 256 * 1024)
    src = LayerStatSource(run, "grad_norm")
    table_bytes = N * 8 * 4
    held = src.steps.nbytes + src.overview.nbytes
    assert src.overview.shape == (8, layer_data.OVERVIEW_COLUMNS)
    assert src.chunk_rows * 8 * 4 <= 256 * 1024
    assert held < table_bytes  # steps + pooled overview; never the [rows x layers] table
    steps, column = src.column(SPIKE[1])
    assert len(column) == N and column[SPIKE[0]] == pytest.approx(SPIKE[2])


def test_histogram_and_snapshot_series_of_one_layer(run):
    steps, counts, ranges = histogram_series(run, "weight", 2)
    assert steps.tolist() == list(range(0, N, 1000)) and counts.shape == (30, 64) and ranges.shape == (30, 2)
    steps, data = snapshot_series(run, 1)
    assert data.shape == (30, 32, 32) and np.isfinite(data).all()


def _resumed_run(path, seed):
    """Session 1 records steps 0..299; session 2 resumes from the checkpoint at step 200."""
    import torch

    from trainspect.recorder import Recorder

    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for start, stop, resume in ((0, 300, False), (200, 400, True)):
        with Recorder(path, resume=resume) as rec:
            rec.watch(model, opt)
            rec.set_step(start)
            for _ in range(start, stop):
                opt.zero_grad()
                (model(torch.randn(16, 8)) ** 2).mean().backward()
                opt.step()
    return path


@pytest.mark.parametrize("seed", [0, 1])
def test_heatmap_of_a_resumed_run_reads_the_rows_it_shows(tmp_path, seed):
    """The source numbered the rows shown (400) but read the file's rows (500) with those numbers:
    a zoom into the re-done span was empty and the full view stopped at step 299."""
    with open_run(_resumed_run(tmp_path / "resumed.h5", seed)) as r:
        truth = r.layer_stat("grad_norm")
        assert truth.steps.tolist() == list(range(400))
        src = LayerStatSource(r, "grad_norm")
        assert src.n_rows == 400
        img, first, last = src.image(203, 213, 100)
        np.testing.assert_array_equal(img, brute_force(truth.values, truth.steps, 203, 213, first, last))
        img, first, last = src.image(None, None, 1000)
        assert last[-1] == 399 and np.isfinite(img).all()
        steps, values = src.column(1)
        np.testing.assert_array_equal(values, truth.values[:, 1])


def _recorded(path, *layers):
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    from trainspect.recorder import Recorder

    with Recorder(path, stats_every=1) as rec:
        rec.watch(model, opt)
        for _ in range(20):
            loss = model(torch.randn(32, 8)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"loss": loss.item()})
    return path


def test_dead_units_and_saturation_rows_are_the_modules_where_they_mean_something(tmp_path):
    """A healthy LayerNorm, Linear or logit output has many units <= 0 for a whole batch: its
    bright dead-units row read as an alarm (the advisor judges ReLU-family outputs only)."""
    import torch.nn as nn

    path = _recorded(tmp_path / "r.h5", nn.Linear(8, 16), nn.LayerNorm(16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(),
                     nn.Linear(16, 4))
    with open_run(path) as run:
        dead, sat = LayerStatSource(run, "act_dead_frac"), LayerStatSource(run, "act_frac_saturated")
        every = LayerStatSource(run, "act_mean")
    assert dead.layers == ["2"] and dead.only == "ReLU-family outputs" and dead.overview.shape[0] == 1
    assert sat.layers == ["4"] and sat.only == "sigmoid/tanh-family outputs"
    assert len(every.layers) == 6 and every.only == ""


def test_a_model_without_a_relu_has_no_dead_units_rows(tmp_path):
    import torch.nn as nn

    path = _recorded(tmp_path / "r.h5", nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4))
    with open_run(path) as run:
        assert LayerStatSource(run, "act_dead_frac").layers == []
