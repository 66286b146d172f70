"""`trainspect open/diagnose/report/info` take TensorBoard logs directly: converted once into a
cached run file (re-converted when the logs grew), each log folder one run, clear errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorboard")
SummaryWriter = pytest.importorskip("torch.utils.tensorboard").SummaryWriter

from trainspect.app.cli import main  # noqa: E402


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINSPECT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def write_logs(logdir, seed, n=120, diverge=False, start=0):
    rng = np.random.default_rng(seed)
    loss = np.linspace(2.0, 0.5, n) * (1 + 0.02 * rng.standard_normal(n))
    if diverge:
        loss[n // 2:] = np.geomspace(0.5, 1e4, n - n // 2)
    w = SummaryWriter(str(logdir))
    for s in range(n):
        w.add_scalar("train_loss", float(loss[s]), start + s)
        w.add_scalar("lr-Adam", 1e-3, start + s)
    w.close()


@pytest.mark.parametrize("seed", [0, 1])
def test_diagnose_reads_a_log_dir_and_converts_it_once(tmp_path, capsys, _cache, seed):
    write_logs(tmp_path / "tb", seed, diverge=True)
    assert main(["diagnose", str(tmp_path / "tb"), "--json"]) == 1
    out = capsys.readouterr()
    assert "reading TensorBoard logs" in out.err
    assert "divergence" in {f["symptom"] for f in json.loads(out.out)["findings"]}
    cached = sorted(_cache.glob("*.h5"))
    assert len(cached) == 1
    assert main(["diagnose", str(tmp_path / "tb")]) == 1      # the second time from the cache
    assert "reading TensorBoard logs" not in capsys.readouterr().err
    assert sorted(_cache.glob("*.h5")) == cached


def test_logs_that_grew_are_converted_again(tmp_path, capsys, _cache):
    write_logs(tmp_path / "tb", 2, n=40)
    assert main(["info", str(tmp_path / "tb")]) == 0
    assert "40 points" in capsys.readouterr().out
    write_logs(tmp_path / "tb", 2, n=30, start=40)          # a restarted run adds an event file
    assert main(["info", str(tmp_path / "tb")]) == 0
    out = capsys.readouterr()
    assert "70 points" in out.out and "reading TensorBoard logs" in out.err
    assert len(list(_cache.glob("*.h5"))) == 1              # the outdated conversion is gone


def test_each_log_folder_is_one_run(tmp_path, capsys):
    for version in range(2):
        write_logs(tmp_path / "lightning_logs" / f"version_{version}", version, n=25 + version)
    assert main(["info", str(tmp_path / "lightning_logs")]) == 0
    out = capsys.readouterr().out
    assert "run:        version_0" in out and "run:        version_1" in out
    assert "25 points" in out and "26 points" in out
    assert main(["diagnose", str(tmp_path / "lightning_logs")]) in (0, 1)   # each run diagnosed (trial 18, U10)
    out = capsys.readouterr().out
    assert "version_0" in out and "version_1" in out and out.count("== ") == 2, out


def test_report_of_an_event_file(tmp_path, capsys):
    write_logs(tmp_path / "tb", 3, diverge=True)
    (event_file,) = (tmp_path / "tb").glob("*tfevents*")
    out = tmp_path / "r.html"
    assert main(["report", str(event_file), "-o", str(out), "-q"]) == 0
    html = out.read_text()
    assert "train_loss" in html and "divergence" in html.lower()


def test_damaged_logs_are_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "tb" / "events.out.tfevents.1.host"
    bad.parent.mkdir()
    bad.write_bytes(b"not a tfrecord file at all" * 4)
    for command in (["diagnose", str(bad)], ["info", str(tmp_path / "tb")],
                    ["report", str(bad), "-o", str(tmp_path / "r.html")]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "cannot read these TensorBoard logs" in err and "not a TensorBoard event file" in err


def test_open_shows_tensorboard_logs(tmp_path, capsys):
    pytest.importorskip("PySide6")
    write_logs(tmp_path / "tb", 4)
    shot = tmp_path / "shot.png"
    assert main(["open", str(tmp_path / "tb"), "--screenshot", str(shot), "--size", "900x600"]) == 0
    assert shot.stat().st_size > 10_000


def test_a_sub_folder_with_its_own_events_is_a_run_of_its_own(tmp_path, capsys):
    write_logs(tmp_path / "exp", 5, n=30)
    write_logs(tmp_path / "exp" / "Loss_val", 6, n=12)       # as SummaryWriter.add_scalars makes
    assert main(["info", str(tmp_path / "exp")]) == 0
    out = capsys.readouterr().out
    assert "run:        exp" in out and "run:        Loss_val" in out
    assert "30 points" in out and "12 points" in out and "42 points" not in out
    assert main(["diagnose", str(tmp_path / "exp")]) in (0, 1)     # the folder's own run
