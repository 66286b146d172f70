"""The stream protocol without ssh: a served run rebuilt into a mirror equals the run, a
resumed stream appends only the new rows, a peer of another protocol version or a cut or
damaged batch is refused with the mirror left as it was, and one-row flushes share batches."""
from __future__ import annotations

import io
import struct

import h5py
import numpy as np
import pytest

from trainspect.analysis import stream
from trainspect.analysis.stream import Mirror, StreamError, read_varint, serve, varint
from trainspect.recorder.h5file import RunFileWriter

from fixtures_runs import assert_same_file, make_run


def _served(path, have=None) -> bytes:
    out = io.BytesIO()
    serve(path, have or {}, out, follow=False)
    return out.getvalue()


def _mirror(path, data: bytes) -> Mirror:
    m = Mirror(path)
    try:
        m.consume(io.BytesIO(data))
    finally:
        m.close()
    return m


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 2**14, 2**63 + 5])
def test_varint_round_trip(n):
    raw = varint(n)
    assert read_varint(raw + b"\xff", 0) == (n, len(raw))
    assert len(raw) == max(1, (n.bit_length() + 6) // 7)


@pytest.mark.parametrize("seed", [0, 1])
def test_served_run_rebuilds_into_an_equal_mirror(tmp_path, seed):
    src = make_run(tmp_path / "run.h5", n_steps=400, seed=seed)
    m = _mirror(tmp_path / "m" / "run.h5", _served(src))
    assert_same_file(src, m.path)
    assert not m.path.with_name("run.h5.part").exists()


def _held(path) -> dict:
    m = Mirror(path)
    try:
        return m.rows()
    finally:
        m.close()


def _writer(path):
    w = RunFileWriter(path)
    w.start({"name": "proto"}, flush_every=0.01)
    w.add_tags(["train/loss"])
    return w


def _append(w, start: int, rows: int) -> None:
    steps = list(range(start, start + rows))
    w.append_scalars(steps, [0] * rows, [1.0 / (1 + s) for s in steps], [float(s) for s in steps])
    w.flush(start + rows - 1)


def test_resume_sends_only_new_rows_and_state_deltas(tmp_path):
    src, dst = tmp_path / "live.h5", tmp_path / "m" / "live.h5"
    w = _writer(src)
    _append(w, 0, 100)
    first = _mirror(dst, _served(src))
    have = _held(dst)
    assert have["scalars/step"] == 100
    _append(w, 100, 3)
    w.close()
    again = _mirror(dst, _served(src, have))
    assert_same_file(src, dst)
    # the layout, 3 rows of 28 bytes, the fixed-size datasets (state, status, ...) once:
    # nothing of the first 100 rows
    assert again.bytes_in < first.bytes_in - 97 * 28
    assert 3 * 28 < again.bytes_in - _layout_bytes(src) < 3 * 28 + _fixed_bytes(src) + 40


def _fixed_bytes(src) -> int:
    with h5py.File(src, "r", locking=False) as f:
        sizes = []
        f.visititems(lambda n, o: sizes.append(o.nbytes) if isinstance(o, h5py.Dataset)
                     and o.maxshape[:1] != (None,) else None)
    return sum(sizes)


def _layout_bytes(src) -> int:
    (kind, start, _, end), *_ = _frames(_served(src))
    return end - start


def _frames(data: bytes) -> list:
    """(kind, frame start, payload start, frame end) of each frame after the preamble."""
    out, pos = [], stream.PREAMBLE.size
    while pos < len(data):
        n, body = read_varint(data, pos + 1)
        out.append((data[pos:pos + 1], pos, body, body + n))
        pos = body + n
    return out


def test_stream_that_does_not_continue_the_mirror_is_refused(tmp_path):
    src = make_run(tmp_path / "run.h5", n_steps=50)
    dst = tmp_path / "m" / "run.h5"
    _mirror(dst, _served(src))
    before = dst.read_bytes()
    with pytest.raises(StreamError, match="mirror holds"):
        _mirror(dst, _served(src, {"scalars/step": 10}))
    assert dst.read_bytes() == before


def test_peer_of_another_protocol_version_is_named(tmp_path):
    src = make_run(tmp_path / "run.h5", n_steps=20)
    data = bytearray(_served(src))
    struct.pack_into("<H", data, 8, 1)   # a version-1 remote
    with pytest.raises(StreamError, match="speaks stream protocol 1, this one 2.*same trainspect version"):
        _mirror(tmp_path / "m" / "run.h5", bytes(data))
    assert not (tmp_path / "m" / "run.h5").exists()


def test_cut_or_damaged_batch_leaves_the_mirror_as_it_was(tmp_path):
    src, dst = tmp_path / "live.h5", tmp_path / "m" / "live.h5"
    w = _writer(src)
    _append(w, 0, 20)
    _mirror(dst, _served(src))
    have = _held(dst)
    _append(w, 20, 30)
    w.close()
    data = _served(src, have)
    with h5py.File(dst, "r", locking=False) as f:
        before = {n: f[n][()] for n in ("scalars/step", "state/values", "state/status")}
    for cut in (len(data) - 1, len(data) - 40):
        with pytest.raises(EOFError):
            _mirror(dst, data[:cut])
    # the batch's length claims fewer bytes than its records hold
    (_, _, _, layout_end), (kind, start, body, end) = _frames(data)
    assert kind == b"B"
    damaged = data[:start + 1] + varint(end - body - 5) + data[body:end - 5]
    with pytest.raises(StreamError, match="damaged batch"):
        _mirror(dst, damaged)
    with h5py.File(dst, "r", locking=False) as f:
        for name, values in before.items():
            np.testing.assert_array_equal(f[name][()], values, err_msg=name)
    _mirror(dst, data)
    assert_same_file(src, dst)


class _Collect(io.BytesIO):
    def __init__(self):
        super().__init__()
        self.flushes = 0

    def flush(self):
        self.flushes += 1


def test_one_row_flushes_share_batches_and_a_long_catch_up_splits(tmp_path, monkeypatch):
    """Many one-row flushes already in the file: one batch (rows under the size limit);
    with a tiny limit the catch-up goes in several batches, and the mirror is still equal."""
    src = tmp_path / "live.h5"
    w = _writer(src)
    for s in range(40):
        _append(w, s, 1)
    w.close()
    whole = _served(src)
    monkeypatch.setattr(stream, "MAX_BATCH_BYTES", 100)
    split = _served(src)
    assert _batches(whole) == 1 and _batches(split) > 10
    for data in (whole, split):
        dst = tmp_path / f"m{len(data)}" / "live.h5"
        _mirror(dst, data)
        assert_same_file(src, dst)


def _batches(data: bytes) -> int:
    return sum(kind == b"B" for kind, *_ in _frames(data))


def test_another_run_at_the_same_path_is_refused_by_name(tmp_path):
    """The mirror holds a run without layers; the remote path now holds one with layers."""
    plain, layered = tmp_path / "plain.h5", make_run(tmp_path / "layered.h5", n_steps=30)
    w = _writer(plain)
    _append(w, 0, 10)
    w.close()
    dst = tmp_path / "m" / "run.h5"
    _mirror(dst, _served(plain))
    before = dst.read_bytes()
    with pytest.raises(StreamError, match="datasets the mirror lacks.*another run at the same path"):
        _mirror(dst, _served(layered, _held(dst)))
    assert dst.read_bytes() == before


def test_remote_run_shorter_than_the_mirror_is_refused_by_name(tmp_path):
    """The remote path now holds a new run with fewer rows than the mirror (overwritten)."""
    dst = tmp_path / "m" / "run.h5"
    for rows, name in ((30, "first.h5"), (10, "second.h5")):
        w = _writer(tmp_path / name)
        _append(w, 0, rows)
        w.close()
    _mirror(dst, _served(tmp_path / "first.h5"))
    before = dst.read_bytes()
    with pytest.raises(StreamError, match="has 10 rows here, the mirror 30.*another run at the same path"):
        _mirror(dst, _served(tmp_path / "second.h5", _held(dst)))
    assert dst.read_bytes() == before


# Takes the writer's lock before creating the file, as the Recorder does (tests/test_tail.py says why).
ONE_ROW_FLUSHES = r"""
import sys, time
from trainspect.recorder.claim import WriterLock
from trainspect.recorder.h5file import RunFileWriter
lock = WriterLock(sys.argv[1])
assert lock.acquire()
w = RunFileWriter(sys.argv[1])
w.start({"name": "proto"}, flush_every=0.01)
w.add_tags(["train/loss"])
w.flush()
for step in range(20):
    w.append_scalars([step], [0], [1.0 / (1 + step)], [float(step)])
    w.flush(step)
    time.sleep(0.01)
w.close()
lock.release()
"""


def _row_bytes_of_batches(data: bytes) -> list:
    """Bytes of rows each batch of a stream carries."""
    import json

    frames = _frames(data)
    kind, _, body, end = frames[0]
    assert kind == b"L"
    sets = json.loads(data[body:end])["datasets"]
    out = []
    for kind, _, pos, end in frames[1:]:
        rows = 0
        while pos < end:
            key, pos = read_varint(data, pos)
            d = sets[key // 2]
            item = np.dtype(d["dtype"]).itemsize
            n, pos = read_varint(data, pos)
            if key % 2 == 0:
                rows += n * item * int(np.prod(d["shape"][1:]))
                pos += n * item * int(np.prod(d["shape"][1:]))
            else:
                pos += bin(n).count("1") * item
        out.append(rows)
    return out


def test_small_live_flushes_wait_for_the_hold_and_the_end_sends_them(tmp_path):
    """A live run of one-row flushes served with a hold longer than the run: after the first
    batch none leaves with fewer row bytes than a batch is worth (WORTH_SENDING) but the last,
    sent when the run ends; the mirror is whole."""
    import subprocess
    import sys

    from fixtures_runs import assert_same_file as same

    src = tmp_path / "live.h5"
    writer = subprocess.Popen([sys.executable, "-c", ONE_ROW_FLUSHES, str(src)])
    out = io.BytesIO()
    try:
        serve(src, {}, out, wait_s=60, hold_s=600)
    finally:
        writer.wait(timeout=60)
    data = out.getvalue()
    sizes = _row_bytes_of_batches(data)
    assert all(n >= stream.WORTH_SENDING for n in sizes[1:-1]), sizes
    assert len(sizes) < 20    # 20 one-row flushes, fewer batches
    dst = tmp_path / "m" / "live.h5"
    _mirror(dst, data)
    same(src, dst)
