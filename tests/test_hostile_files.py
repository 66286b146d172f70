"""Hand-made hostile run files (tests/hostile_corpus.py) through every reading entry point.

Each file goes through ``info``, ``diagnose --json``, ``report``, ``export`` and ``open_run`` +
``diagnose`` in driver processes under a watchdog (tests/entry_driver.py). Pass: no hang, no
crash, no traceback; a refused file exits 2 with an error that names the problem (and the
object); a partly sound file is read, with a warning where something was left out.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from tests.entry_driver import ENTRIES, run_batches
from tests.fixtures_runs import make_run
from tests.hostile_corpus import base_run, build_corpus


@pytest.fixture(scope="module")
def corpus_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    cases = build_corpus(root / "files")
    batches = run_batches([c.path for c in cases.values()], root / "out")
    by_file = {}
    for r in batches.results:
        by_file.setdefault(r["file"], {})[r["entry"]] = r
    return cases, batches, by_file


def test_no_hang_crash_or_traceback_on_any_hostile_file(corpus_results):
    cases, batches, by_file = corpus_results
    assert batches.problems() == []
    assert len(batches.results) == len(cases) * len(ENTRIES)


def test_refused_files_exit_2_naming_the_problem(corpus_results):
    cases, _, by_file = corpus_results
    refused = {name: c for name, c in cases.items() if c.expect == "refuse"}
    assert len(refused) >= 20
    for name, case in refused.items():
        for entry, r in by_file[str(case.path)].items():
            assert r["rc"] == 2, (name, entry, r)
            assert case.path.name in r["stderr"] or entry == "info" and case.path.is_dir(), (name, entry, r)
            for word in case.words:
                assert word in r["stderr"], (name, entry, word, r["stderr"])


def test_partly_sound_files_are_read_with_a_warning(corpus_results):
    cases, _, by_file = corpus_results
    partial = {name: c for name, c in cases.items() if c.expect == "partial"}
    assert len(partial) >= 25
    for name, case in partial.items():
        results = by_file[str(case.path)]
        assert all(r["rc"] in (0, 1, 3) for r in results.values()), (name, results)
        for word in case.words:   # info shows what was left out
            assert "warning:" in results["info"]["stdout"] and word in results["info"]["stdout"], (name, results["info"])


def test_the_report_says_what_was_left_out(tmp_path):
    path = base_run(tmp_path / "one_d.h5", n_steps=30)
    with h5py.File(path, "r+") as f:   # 1-D gradient norms: the grads records are left out
        norm = f["grads/norm"]
        n = norm.shape[0]
        del f["grads/norm"]
        f.create_dataset("grads/norm", data=np.ones(n, np.float32), maxshape=(None,))
    proc = _cli(["report", "-q", str(path), "-o", str(tmp_path / "r.html")])
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "warning" in html and "grads/norm" in html


def _cli(args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "trainspect.app.cli", *args], capture_output=True,
                          env={**os.environ, **(env or {})}, timeout=120, **kw)


@pytest.mark.parametrize("encoding", ["utf-8:strict", "ascii:strict"])
def test_non_utf8_file_name_under_a_strict_stdout(tmp_path, encoding):
    path = os.fsdecode(bytes(tmp_path) + b"/run_\xff.h5")
    make_run(path, n_steps=30, n_layers=1)
    env = {"PYTHONIOENCODING": encoding}
    for args in (["info", path], ["diagnose", path], ["diagnose", "--json", path],
                 ["report", "-q", path, "-o", str(tmp_path / "r.html")], ["export", "-q", path, "--csv", str(tmp_path / "c")]):
        proc = _cli(args, env)
        assert proc.returncode in (0, 1), (args, proc.stderr[-2000:])
        assert b"Traceback" not in proc.stderr, (args, proc.stderr[-2000:])
    assert b"run_\\udcff.h5" in _cli(["info", path], env).stdout
    assert "run_\\udcff.h5" in (tmp_path / "r.html").read_text(encoding="utf-8")


def test_too_many_open_files_is_a_clear_error(tmp_path):
    pytest.importorskip("resource")
    for i in range(40):
        make_run(tmp_path / f"r{i}.h5", n_steps=5, n_layers=0)
    code = textwrap.dedent(f"""
        import resource, sys
        from trainspect.analysis import RunFileError, open_run
        resource.setrlimit(resource.RLIMIT_NOFILE, (30, 30))   # the limit, as `ulimit -n 30`
        runs = []
        try:
            for i in range(40):
                runs.append(open_run({str(tmp_path)!r} + f"/r{{i}}.h5"))
        except RunFileError as exc:
            print(len(runs), exc)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    opened, _, message = proc.stdout.partition(" ")
    assert 0 < int(opened) < 30 and "too many open files" in message and "ulimit -n" in message
    assert f"r{opened}.h5" in message


def test_csv_export_escapes_formula_like_text(tmp_path):
    import csv

    path = make_run(tmp_path / "f.h5", n_steps=20, n_layers=0,
                    metrics=("=HYPERLINK(\"http://evil\",\"x\")", "+cmd", "-neg", "@sum", "\tab", "plain"))
    proc = _cli(["export", "-q", str(path), "--csv", str(tmp_path / "csv")])
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "csv" / "index.csv", newline="", encoding="utf-8") as fh:
        index = list(csv.DictReader(fh))
    names = [row["name"] for row in index]
    assert names == ["'=HYPERLINK(\"http://evil\",\"x\")", "'+cmd", "'-neg", "'@sum", "'\tab", "plain"]
    assert all(row["file"][0].isalnum() or row["file"][0] == "_" for row in index)   # files are safe to name
    with open(tmp_path / "csv" / "neg.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["step", "value", "wall_time"] and float(rows[1][1]) > 0   # numbers stay numbers


def test_a_compressed_table_that_unpacks_to_gigabytes_is_refused_unread(tmp_path):
    """A whole-read table stored gzip'd (2 M names in a few hundred KB here; 20 M in 5.7 MB
    took `info` 3.7 GB and 26 s) was read because all its chunks were allocated. The recorder
    never compresses: a table that would unpack far beyond the file is refused, unread."""
    from trainspect.analysis import RunFileError, open_run
    path = make_run(tmp_path / "bomb.h5", n_steps=50, n_layers=2)
    with h5py.File(path, "r+") as f:
        old = f["tags/name"][:]
        del f["tags/name"]
        n = 2 << 20
        d = f.create_dataset("tags/name", shape=(n,), maxshape=(None,), dtype="S64", chunks=(1 << 18,),
                             compression="gzip", compression_opts=9)
        block = np.full(1 << 18, b"m", dtype="S64")
        for i in range(0, n, 1 << 18):
            d[i:i + (1 << 18)] = block
        d[: len(old)] = old
    assert os.path.getsize(path) < 8 << 20
    with pytest.raises(RunFileError, match="tags/name claims"):
        open_run(path)
