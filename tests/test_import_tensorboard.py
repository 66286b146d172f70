"""TensorBoard event files -> run files with trainspect's own reader (CRC-checked), written by
the real torch.utils.tensorboard SummaryWriter (needs the `tensorboard` package)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("tensorboard")
SummaryWriter = pytest.importorskip("torch.utils.tensorboard").SummaryWriter

from trainspect.analysis import open_run  # noqa: E402
from trainspect.analysis.advisor import diagnose  # noqa: E402
from trainspect.app.cli import main  # noqa: E402
from trainspect.recorder.importers.tfevents import EventFileError, event_files, read_event_file  # noqa: E402


def _write_run(logdir, seed, n=200, diverge=False):
    rng = np.random.default_rng(seed)
    train = np.linspace(2.0, 0.5, n) * (1 + 0.02 * rng.standard_normal(n))
    if diverge:
        train[n // 2:] = np.geomspace(0.5, 1e4, n - n // 2)
    w = SummaryWriter(str(logdir))
    for s in range(n):
        w.add_scalar("Loss/train", float(train[s]), s)
        w.add_scalar("lr-Adam", 1e-3, s)
        if s % 20 == 0:
            w.add_scalar("val_loss", float(train[s] * 1.1), s)
            w.add_histogram("fc.weight", rng.standard_normal(500) * (1 + s / n), s)
    w.close()
    return train


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reader_returns_every_scalar_and_histogram(tmp_path, seed):
    train = _write_run(tmp_path / "tb", seed)
    (f,) = event_files(tmp_path / "tb")
    data = read_event_file(f)
    steps, values, wall = data.scalars["Loss/train"]
    np.testing.assert_array_equal(steps, np.arange(200))
    np.testing.assert_allclose(values, train.astype(np.float32))
    assert np.all(wall > 1e9)
    assert list(data.scalars["val_loss"][0]) == list(range(0, 200, 20))
    hists = data.histograms["fc.weight"]
    assert [h.step for h in hists] == list(range(0, 200, 20))
    assert all(h.num == 500 and h.bucket.sum() == 500 for h in hists)


def test_import_command_and_advisor_on_imported_run(tmp_path, capsys):
    _write_run(tmp_path / "tb", 3, diverge=True)
    out = tmp_path / "run.h5"
    assert main(["import", str(tmp_path / "tb"), "-o", str(out), "-q"]) == 0
    assert "TensorBoard" in capsys.readouterr().out
    with open_run(out) as r:
        names = set(r.scalar_names())
        assert {"Loss/train", "val_loss", "lr-Adam", "fc.weight/hist_std"} <= names
        std = r.scalar("fc.weight/hist_std").values
        assert std[-1] > std[0]            # the planted growth of the weights survives the import
        assert "divergence" in {f.symptom for f in diagnose(r)}


def test_a_corrupt_record_is_named_and_skipped_the_sound_ones_read(tmp_path):
    """One flipped byte in the middle of a log refused all of it; TensorBoard shows the rest."""
    _write_run(tmp_path / "tb", 0)
    (f,) = event_files(tmp_path / "tb")
    whole = read_event_file(f)
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    f.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match=r"1 damaged record\(s\) skipped \(the first at byte \d+: data CRC mismatch\)"):
        data = read_event_file(f)
    points = sum(len(v[0]) for v in data.scalars.values()) + sum(len(h) for h in data.histograms.values())
    wanted = sum(len(v[0]) for v in whole.scalars.values()) + sum(len(h) for h in whole.histograms.values())
    assert points == wanted - 1


def test_a_file_with_no_sound_record_is_refused(tmp_path):
    _write_run(tmp_path / "tb", 0, n=5)
    (f,) = event_files(tmp_path / "tb")
    raw = bytearray(f.read_bytes())
    pos = 0
    while pos + 12 <= len(raw):                   # flip the last data byte of every record
        length = int.from_bytes(raw[pos:pos + 8], "little")
        raw[pos + 12 + length - 1] ^= 0xFF
        pos += 16 + length
    f.write_bytes(bytes(raw))
    with pytest.raises(EventFileError, match="data CRC mismatch; the file is damaged"):
        read_event_file(f)


def test_truncated_tail_reads_every_complete_record(tmp_path):
    _write_run(tmp_path / "tb", 0)
    (f,) = event_files(tmp_path / "tb")
    whole = read_event_file(f)
    f.write_bytes(f.read_bytes()[:-7])
    cut = read_event_file(f)
    assert cut.corrupt_tail and cut.records == whole.records - 1


def test_not_an_event_file_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "events.out.tfevents.123.host"
    bad.write_bytes(b"hello, this is not a tfrecord file at all" * 3)
    assert main(["import", str(bad), "-o", str(tmp_path / "x.h5")]) == 2
    assert "not a TensorBoard event file" in capsys.readouterr().err
    with pytest.raises(EventFileError):
        read_event_file(bad)


def _write_regular(logdir, seed, n=400):
    """Three tags every step (long equally spaced runs: read through strided views) and a fourth
    every 50 steps that breaks the runs (those records are gathered)."""
    rng = np.random.default_rng(seed)
    w = SummaryWriter(str(logdir))
    for s in range(n):
        w.add_scalar("train/loss", float(rng.standard_normal()), s)
        w.add_scalar("lr", 1e-3 * 0.99 ** s, s)
        w.add_scalar("grad_norm", float(rng.random()), s)
        if s % 50 == 7:
            w.add_scalar("eval/loss", float(rng.random()), s)
    w.close()


@pytest.mark.parametrize("seed", [0, 1])
def test_own_reader_agrees_with_tensorboards_event_accumulator(tmp_path, seed):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _write_regular(tmp_path / "tb", seed)
    (f,) = event_files(tmp_path / "tb")
    data = read_event_file(f)
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    assert set(data.scalars) == set(acc.Tags()["scalars"])
    for tag in acc.Tags()["scalars"]:
        ref = acc.Scalars(tag)
        steps, values, wall = data.scalars[tag]
        assert steps.tolist() == [e.step for e in ref]
        np.testing.assert_array_equal(values, np.asarray([e.value for e in ref], np.float32))
        np.testing.assert_array_equal(wall, [e.wall_time for e in ref])


@pytest.mark.parametrize("seed", [0, 1])
def test_a_flipped_bit_anywhere_in_a_regular_log_is_caught(tmp_path, seed):
    _write_regular(tmp_path / "tb", 3)
    (f,) = event_files(tmp_path / "tb")
    good = f.read_bytes()
    rng = np.random.default_rng(seed)
    for where in rng.integers(0, len(good) - 4, 40):     # length fields, CRCs and data alike
        raw = bytearray(good)
        raw[where] ^= 1 << int(rng.integers(0, 8))
        f.write_bytes(bytes(raw))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                read_event_file(f)          # a damaged record: skipped, named
            except EventFileError as exc:   # damaged framing: refused, named
                assert "CRC" in str(exc) or "not a TensorBoard" in str(exc) or "claims" in str(exc)
                continue
        assert any("damaged record(s) skipped" in str(w.message) for w in caught), where


def test_import_shows_progress_through_a_big_file_on_a_terminal_only(tmp_path, capsys, monkeypatch):
    _write_regular(tmp_path / "tb", 4, n=300)
    assert main(["import", str(tmp_path / "tb"), "-o", str(tmp_path / "x.h5")]) == 0
    assert "[" not in capsys.readouterr().err        # a log file: no bar redrawn with \r 25 times
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert main(["import", str(tmp_path / "tb"), "-o", str(tmp_path / "y.h5")]) == 0
    frames = capsys.readouterr().err.replace("\n", "\r").split("\r")
    percents = [int(f.split("]")[1].strip().rstrip("%")) for f in frames if f.startswith("[")]
    assert percents == sorted(set(percents)) and percents[-1] == 100 and len(percents) >= 2


@pytest.mark.parametrize("side", [40, 300])
def test_a_log_with_an_image_is_read_and_its_long_record_still_checked(tmp_path, side):
    """A record's CRC took a (length, 256) table: 1 KB of memory a byte, built in a Python loop.
    One 512x512 add_image (a 793 KB log) took 64 s and 1.9 GB to import, a 10 MB text summary
    never finished. Long records are now checked in blocks: the tables stay at BLOCK bytes."""
    from trainspect.recorder.importers import tfevents

    rng = np.random.default_rng(side)
    w = SummaryWriter(str(tmp_path / "tb"))
    for s in range(20):
        w.add_scalar("Loss/train", 2.0 - 0.05 * s, s)
    w.add_image("noise", rng.integers(0, 256, (3, side, side), dtype=np.uint8), 5)
    w.add_text("notes", "x" * 50_000, 5)
    w.close()
    (f,) = event_files(tmp_path / "tb")
    lengths = []
    tables = tfevents._position_tables

    def counted(length):
        lengths.append(length)
        return tables(length)

    tfevents._position_tables = counted
    try:
        data = read_event_file(f)
    finally:
        tfevents._position_tables = tables
    assert list(data.scalars["Loss/train"][1]) == pytest.approx([2.0 - 0.05 * s for s in range(20)])
    assert max(lengths) <= tfevents.BLOCK
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 4                      # inside the image's (or the text's) long record
    f.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="1 damaged record"):
        assert len(read_event_file(f).scalars["Loss/train"][1]) == 20


@pytest.mark.parametrize("length", [1 << 32, (1 << 63) - 1])
def test_a_record_claiming_an_impossible_length_is_damage_not_a_cut_tail(tmp_path, length):
    """Read as a record cut short by a writer that stopped, it dropped the 40 sound records
    after it without a word."""
    import struct

    from trainspect.recorder.importers.tfevents import masked_crc

    _write_regular(tmp_path / "tb", 0, n=40)
    (f,) = event_files(tmp_path / "tb")
    good = f.read_bytes()
    header = struct.pack("<Q", length)
    f.write_bytes(good + header + struct.pack("<I", masked_crc(header)) + good[:200])
    with pytest.raises(EventFileError, match=f"claims {length:,} bytes"):
        read_event_file(f)


def test_an_event_the_parser_cannot_read_is_skipped_with_a_warning_not_the_whole_log(tmp_path, capsys):
    """Another tool's malformed summary (its CRCs sound) refused every record of the log, with
    a message naming neither the file nor the place."""
    import struct

    from trainspect.recorder.importers.tfevents import masked_crc

    _write_regular(tmp_path / "tb", 0, n=40)
    (f,) = event_files(tmp_path / "tb")
    garbage = b"\x0f\xff\xff"                      # wire type 7: no protobuf has it
    header = struct.pack("<Q", len(garbage))
    f.write_bytes(f.read_bytes() + header + struct.pack("<I", masked_crc(header)) + garbage
                  + struct.pack("<I", masked_crc(garbage)))
    out = tmp_path / "run.h5"
    assert main(["import", str(tmp_path / "tb"), "-o", str(out), "-q"]) == 0
    err = capsys.readouterr().err
    assert f"trainspect import: warning: {f}: 1 event(s) could not be decoded" in err and "wire type 7" in err
    with open_run(out) as run:
        assert len(run.scalar(run.scalar_names()[0])) == 40


def test_summaries_not_imported_are_named_in_the_summary(tmp_path, capsys):
    """Images and plain text notes vanished without a word (the CSV importer counts what it drops)."""
    w = SummaryWriter(str(tmp_path / "tb"))
    for s in range(20):
        w.add_scalar("Loss/train", 1.0 / (s + 1), s)
        if s % 5 == 0:
            w.add_image("samples", np.zeros((3, 8, 8), np.uint8), s)
    w.add_text("notes", "lr 3e-4, cosine", 0)
    w.add_text("config", '{"lr": 0.0003}', 0)          # JSON text: the run's config, not skipped
    w.close()
    assert main(["import", str(tmp_path / "tb"), "-o", str(tmp_path / "x.h5"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "20 values of 1 metric" in out and "not imported: 4 images (samples), 1 text note (notes)" in out
    with open_run(tmp_path / "x.h5") as run:
        assert run.config["config"] == {"lr": 0.0003}
