"""A GAN run with one side recorded looks at the run files beside it for the other side
(gan_losses_vanish). A hostile or just untidy folder must not crash diagnose, make it wait, or
hide the partner: symlink loops, dangling links, FIFOs, sockets, junk named *.h5, a file that
claims a live writer, a same-launch file with thousands of GAN-looking metric names.
"""
from __future__ import annotations

import os
import shutil
import socket

import h5py
import numpy as np
import pytest
from trainspect.analysis import diagnose, open_run
from trainspect.recorder import Recorder
from trainspect.recorder import format as fmt


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """gan-D.h5 and gan-G.h5 of one launch, both losses -> 0 (the generator helps D)."""
    d = tmp_path_factory.mktemp("pair")
    with Recorder(d / "gan-G.h5") as rec_g, Recorder(d / "gan-D.h5") as rec_d:
        for i in range(300):
            t = i / 300
            rec_d.log({"Loss_D": 1.39 * np.exp(-8 * t) + 0.002}, step=i)
            rec_g.log({"Loss_G": 0.69 * np.exp(-8 * t) + 0.001}, step=i)
    return d


def _folder(pair, tmp_path):
    """The pair copied into tmp_path, the partner (G) modified a second before the run (D)."""
    for name in ("gan-D.h5", "gan-G.h5"):
        shutil.copy2(pair / name, tmp_path / name)
    when = os.stat(tmp_path / "gan-D.h5").st_mtime_ns
    os.utime(tmp_path / "gan-G.h5", ns=(when - 10**9, when - 10**9))
    return tmp_path / "gan-D.h5"


def _same_mtime_as(run, *paths):
    when = os.stat(run).st_mtime_ns
    for p in paths:
        os.utime(p, ns=(when, when))


def _gan_finding(run):
    with open_run(run) as r:
        return {f.symptom: f for f in diagnose(r)}.get("gan_losses_vanish")


def test_links_pipes_sockets_and_folders_named_h5_neither_crash_nor_hide_the_partner(pair, tmp_path):
    run = _folder(pair, tmp_path)
    os.symlink("loop-b.h5", tmp_path / "loop-a.h5")        # a symlink loop: resolve() raised RuntimeError
    os.symlink("loop-a.h5", tmp_path / "loop-b.h5")
    os.symlink("self.h5", tmp_path / "self.h5")
    os.symlink(tmp_path / "gone", tmp_path / "dangling.h5")  # stat() raised: the whole search gave up
    os.symlink("/dev/zero", tmp_path / "zero.h5")
    os.symlink("gan-D.h5", tmp_path / "also-me.h5")          # the run itself under another name
    os.mkdir(tmp_path / "folder.h5")
    os.mkfifo(tmp_path / "pipe.h5")                         # opening it would block
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "sock.h5"))
        f = _gan_finding(run)
    finally:
        sock.close()
    assert f is not None, "the partner beside the hostile entries was not found"
    assert "gan-G.h5" in " ".join(e.text for e in f.evidence)


def test_junk_files_with_the_runs_own_time_do_not_push_the_partner_out(pair, tmp_path):
    """Only files that start like a complete HDF5 file count towards the 16 opened."""
    run = _folder(pair, tmp_path)
    junk = []
    for i in range(40):
        p = tmp_path / f"junk{i:02d}.h5"
        p.write_bytes(b"not an hdf5 file" * (i + 1))
        junk.append(p)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes((pair / "gan-G.h5").read_bytes()[:3000])
    _same_mtime_as(run, truncated, *junk)      # closer in time than the partner
    assert _gan_finding(run) is not None


def test_a_file_claiming_a_live_writer_is_not_opened(pair, tmp_path, monkeypatch):
    """Opening it would retry for seconds while it changes (16 such files: over a minute)."""
    run = _folder(pair, tmp_path)
    head = bytearray((pair / "gan-G.h5").read_bytes())
    head[11] |= 0x05                            # superblock flags: a SWMR writer holds it
    live = tmp_path / "live.h5"
    live.write_bytes(bytes(head))
    _same_mtime_as(run, live)
    import trainspect.analysis.run as run_module
    opened = []
    real_open = run_module.open_run

    def spy(path, *a, **k):
        opened.append(os.path.basename(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(run_module, "open_run", spy)
    f = _gan_finding(run)
    assert "live.h5" not in opened, opened
    assert f is not None and "gan-G.h5" in " ".join(e.text for e in f.evidence)


def test_a_same_launch_file_of_thousands_of_gan_names_is_read_once_and_passed_over(pair, tmp_path, monkeypatch):
    """Its names were each checked against the whole list again (4,000 names: 67 s); and a
    generator loss of one point is no partner: the real one is looked for beyond it."""
    run = _folder(pair, tmp_path)
    with open_run(run) as r:
        start = r.meta["start_time"]
    many = tmp_path / "many.h5"
    with Recorder(many) as rec:
        rec.log({f"g_loss_{i}": 0.5 for i in range(600)}, step=0)
    with h5py.File(many, "r+") as h:                 # the same launch: its start time is the run's
        meta = fmt.decode_meta(h[fmt.META][()])
        meta["start_time"] = start + 1.0
        del h[fmt.META]
        h[fmt.META] = fmt.encode_meta(meta)
    _same_mtime_as(run, many)
    with open_run(many) as r:
        assert r.meta["start_time"] == start + 1.0 and len(r.metric_names()) >= 600
    from trainspect.analysis import vocab
    calls = []
    real = vocab.adversarial_losses

    def counting(names):
        calls.append(1)
        return real(names)

    monkeypatch.setattr(vocab, "adversarial_losses", counting)
    f = _gan_finding(run)
    assert f is not None and "gan-G.h5" in " ".join(e.text for e in f.evidence)
    assert len(calls) <= 40, f"the neighbour's GAN names were listed {len(calls)} times"


def test_the_partner_listed_after_fifty_thousand_other_entries_is_found(pair, tmp_path, monkeypatch):
    """The folder's listing stops at MAX_LISTED entries (bounded time in a folder of millions);
    a folder of 50,000 files is still read to its end (directory order is not creation order)."""
    run = _folder(pair, tmp_path)
    import trainspect.analysis.advisor.symptoms.gan_losses_vanish as gan

    class Gone:
        def __init__(self, name):
            self.name = name

        def stat(self):
            raise FileNotFoundError(self.name)      # removed since listed: passed over

    class Listing:
        def __init__(self, real):
            self.real = real

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.real.close()

        def __iter__(self):
            yield from (Gone(f"junk{i}.h5") for i in range(50_000))
            yield from self.real

    real_scandir = os.scandir
    monkeypatch.setattr(gan.os, "scandir", lambda path: Listing(real_scandir(path)))
    f = _gan_finding(run)
    assert f is not None and "gan-G.h5" in " ".join(e.text for e in f.evidence)


def test_a_neighbour_with_a_nan_start_time_is_not_of_the_same_launch(pair, tmp_path):
    """abs(NaN - t) > 120 is False: a file whose start time is NaN passed for every run's partner
    (here a healthy generator loss, which hid the real partner's vanished one)."""
    run = _folder(pair, tmp_path)
    with open_run(run) as r:
        host = r.meta["host"]
    other = tmp_path / "nan.h5"
    with Recorder(other) as rec:
        for i in range(300):
            rec.log({"Loss_G": 1.0 + 0.001 * i}, step=i)
    with h5py.File(other, "r+") as h:
        meta = fmt.decode_meta(h[fmt.META][()])
        meta.update(start_time=float("nan"), host=host)
        del h[fmt.META]
        h[fmt.META] = fmt.encode_meta(meta)
    _same_mtime_as(run, other)
    f = _gan_finding(run)
    assert f is not None and "gan-G.h5" in " ".join(e.text for e in f.evidence)


def test_a_fifo_in_place_of_a_neighbours_lock_sidecar_does_not_block(pair, tmp_path):
    """A neighbour that claims a writer (superblock flags) with a FIFO as its lock sidecar: asking
    whether its writer died opened the FIFO and waited for ever (diagnose of the run beside it
    too, not only of the file itself). Run in a child process: a hang fails, it does not stall."""
    import subprocess
    import sys

    run = _folder(pair, tmp_path)
    for flags, name in ((0x05, "swmr.h5"), (0x01, "starting.h5")):
        head = bytearray((pair / "gan-G.h5").read_bytes())
        head[11] |= flags
        (tmp_path / name).write_bytes(bytes(head))
        os.mkfifo(tmp_path / f".{name}.lock")
        _same_mtime_as(run, tmp_path / name)
    code = ("import sys; from trainspect.analysis import diagnose, open_run; "
            "from trainspect.recorder import format as fmt; "
            "assert fmt.writer_note(sys.argv[2]) == '' and not fmt.writer_died(sys.argv[2]); "
            "r = open_run(sys.argv[1]); print(sorted(f.symptom for f in diagnose(r)))")
    done = subprocess.run([sys.executable, "-c", code, str(run), str(tmp_path / "starting.h5")],
                          capture_output=True, text=True, timeout=120, env={**os.environ})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "gan_losses_vanish" in done.stdout


def test_files_a_writer_closed_are_opened_before_crashed_looking_ones(pair, tmp_path, monkeypatch):
    """A file whose writer seems killed (flags set, lock sidecar unheld) is opened in SWMR mode,
    retried for seconds while it changes: 16 such files beside the run, rewritten by another
    process, used the whole budget and the partner a second further in time was never read."""
    run = _folder(pair, tmp_path)
    head = bytearray((pair / "gan-G.h5").read_bytes()[:4096])
    head[11] |= 0x05
    crashed = []
    for i in range(3):
        p = tmp_path / f"crashed{i}.h5"
        p.write_bytes(bytes(head) + bytes(len((pair / "gan-G.h5").read_bytes())))
        (tmp_path / f".crashed{i}.h5.lock").write_text("12345\n")
        crashed.append(p)
    _same_mtime_as(run, *crashed)
    assert fmt.writer_died(crashed[0])
    import trainspect.analysis.run as run_module
    opened = []
    real_open = run_module.open_run

    def spy(path, *a, **k):
        opened.append(os.path.basename(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(run_module, "open_run", spy)
    f = _gan_finding(run)
    assert f is not None and "gan-G.h5" in " ".join(e.text for e in f.evidence)
    assert opened == ["gan-G.h5"], opened
