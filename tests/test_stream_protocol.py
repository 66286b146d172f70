"""The stream protocol without ssh: a served run rebuilt into a mirror equals the run, a
resumed stream appends only the new rows, a peer of another protocol version or a cut or
damaged batch is refused with the mirror left as it was, and one-row flushes share batches.
Big and hostile files: a fixed-size dataset's mask costs one bit an element, root attributes
other than the format's stay home, and only stored rows and tables readers read travel."""
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
    struct.pack_into("<H", data, 8, 2)   # a version-2 remote (its masks were varints)
    with pytest.raises(StreamError, match="speaks stream protocol 2, this one 3.*same trainspect version"):
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
    sets = _layout(data)["datasets"]
    out = []
    for kind, _, pos, end in _frames(data)[1:]:
        rows = 0
        while pos < end:
            key, pos = read_varint(data, pos)
            d = sets[key // 2]
            item = np.dtype(d["dtype"]).itemsize
            if key % 2 == 0:
                n, pos = read_varint(data, pos)
                rows += n * item * int(np.prod(d["shape"][1:]))
                pos += n * item * int(np.prod(d["shape"][1:]))
            else:
                size = int(np.prod(d["shape"]))
                mask = np.unpackbits(np.frombuffer(data, np.uint8, (size + 7) // 8, pos), bitorder="little")
                pos += (size + 7) // 8 + int(mask.sum()) * item
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


# ------------------------------------------------------------------ big and hostile files
def _layout(data: bytes) -> dict:
    import json

    (kind, _, body, end), *_ = _frames(data)
    assert kind == b"L"
    return json.loads(data[body:end])


def _index(data: bytes, name: str) -> int:
    return [d["path"] for d in _layout(data)["datasets"]].index(name)


def _config_run(path, keys: int):
    """A finished run whose meta/json holds ``keys`` config keys of about 100 bytes each."""
    return make_run(path, n_steps=20, n_layers=0, config={f"k{i}": "v" * 90 for i in range(keys)})


def test_a_fixed_dataset_goes_with_one_mask_bit_an_element(tmp_path):
    """meta/json whole in the first batch: its index, ceil(n/8) bytes of mask, its n bytes
    (protocol 2 sent the mask as one varint, built in time quadratic in n: a 20 MB config
    never left the remote)."""
    src = _config_run(tmp_path / "run.h5", 1000)
    data = _served(src)
    with h5py.File(src, "r", locking=False) as f:
        meta = f["meta/json"][()]
    assert len(meta) > 90_000
    record = (varint(2 * _index(data, "meta/json") + 1)
              + np.packbits(np.ones(len(meta), bool), bitorder="little").tobytes() + meta.tobytes())
    *_, (kind, _, body, end) = _frames(data)
    assert kind == b"B" and record in data[body:end]


def test_a_big_config_round_trips(tmp_path):
    src = _config_run(tmp_path / "run.h5", 30_000)   # 3 MB of meta/json
    _mirror(tmp_path / "m" / "run.h5", _served(src))
    assert_same_file(src, tmp_path / "m" / "run.h5")


def test_changed_elements_of_a_big_fixed_dataset_travel_alone(tmp_path):
    """Later in a connection only what changed goes: the mask and the changed elements'
    bytes; the mirror patches exactly those."""
    import json

    src, dst = _config_run(tmp_path / "run.h5", 3000), tmp_path / "m" / "run.h5"
    out = io.BytesIO()
    with h5py.File(src, "r+", locking=False) as f:
        layout = stream.layout_of(f, 1)
        batcher = stream._Batcher(f, layout, {})
        layout["from"] = {name: 0 for name in batcher.growing.values()}
        out.write(stream.PREAMBLE.pack(stream.STREAM_MAGIC, stream.PROTOCOL_VERSION, 1))
        stream._frame(out, b"L", json.dumps(layout).encode())
        batcher.look()
        stream._frame(out, b"B", batcher.batch())
        meta = f["meta/json"]
        meta[[3, 1000, meta.size - 1]] = np.frombuffer(b"xyz", np.uint8)
        f.flush()
        batcher.look()
        second, size = batcher.batch(), meta.size
        stream._frame(out, b"B", second)
    assert len(second) == len(varint(2 * _index(out.getvalue(), "meta/json") + 1)) + (size + 7) // 8 + 3
    _mirror(dst, out.getvalue())
    assert_same_file(src, dst)


def test_a_mask_or_number_past_its_bounds_is_a_damaged_batch(tmp_path):
    src, dst = make_run(tmp_path / "run.h5", n_steps=20), tmp_path / "m" / "run.h5"
    data = _served(src)
    head = data[:_frames(data)[0][3]]   # preamble and layout
    status = varint(2 * _index(data, "state/status") + 1)   # one element: mask bits 1..7 clear
    for batch, words in ((status + b"\x03" + b"finished".ljust(16, b"\0"), "has 1 elements, the batch changes more"),
                         (b"\xff" * 11, "a number runs past 10 bytes")):
        with pytest.raises(StreamError, match=words):
            _mirror(dst, head + b"B" + varint(len(batch)) + batch)
        assert not dst.exists()


def test_a_mirror_holding_another_shape_is_refused_by_name(tmp_path):
    """The remote path now holds a run with a longer config: its meta/json has another size."""
    dst = tmp_path / "m" / "run.h5"
    _mirror(dst, _served(_config_run(tmp_path / "short.h5", 1)))
    before = dst.read_bytes()
    longer = _config_run(tmp_path / "long.h5", 10)
    with pytest.raises(StreamError, match="in another shape \\(meta/json\\).*another run at the same path"):
        _mirror(dst, _served(longer, _held(dst)))
    assert dst.read_bytes() == before


def test_only_the_format_s_root_attributes_travel(tmp_path):
    """A 1 MB array, a long string, the format mark as an array (check_header reads its bytes):
    no traceback, nothing of them sent; the mirror has the attributes the recorder writes."""
    import shutil

    plain = make_run(tmp_path / "plain.h5", n_steps=20)
    src = shutil.copy(plain, tmp_path / "run.h5")
    with h5py.File(src, "r+", libver="latest", locking=False) as f:
        f.attrs["huge"] = np.zeros(1_000_000, np.uint8)
        f.attrs["text"] = "x" * 100_000
        f.attrs["trainspect_format"] = np.frombuffer(b"trainspect-run", np.uint8)
    data = _served(src)
    assert set(_layout(data)["attrs"]) == {"trainspect_format", "schema_version"}
    assert len(data) < len(_served(plain)) + 100
    _mirror(tmp_path / "m" / "run.h5", data)
    assert_same_file(plain, tmp_path / "m" / "run.h5")


def test_rows_no_chunk_holds_are_not_sent(tmp_path):
    """Columns resized to 10^6 rows in a 0.5 MB file (28 MB of fill): the stream sends the rows
    their chunks hold (layout_check.stored_rows), and the mirror reads as the file does."""
    import os

    from trainspect.analysis import open_run
    from trainspect.analysis.layout_check import stored_rows

    src, dst = tmp_path / "live.h5", tmp_path / "m" / "live.h5"
    w = _writer(src)
    _append(w, 0, 50)
    w.close()
    columns = ("scalars/step", "scalars/tag", "scalars/value", "scalars/wall")
    with h5py.File(src, "r+", libver="latest", locking=False) as f:
        for name in columns:
            f[name].resize((10**6,))
    data = _served(src)
    assert len(data) < 10**6
    _mirror(dst, data)
    with h5py.File(src, "r", locking=False) as f, h5py.File(dst, "r", locking=False) as g:
        for name in columns:
            rows = stored_rows(f[name], os.path.getsize(src))
            assert 50 <= g[name].shape[0] == rows < 10**6
            np.testing.assert_array_equal(g[name][()], f[name][:rows], err_msg=name)
    here, there = open_run(src).scalar("train/loss"), open_run(dst).scalar("train/loss")
    np.testing.assert_array_equal(here.steps, there.steps)
    np.testing.assert_array_equal(here.values, there.values)


def test_a_fixed_table_larger_than_readers_read_is_left_out(tmp_path):
    """params/name claiming 10^6 names (128 MB of fill in a small file): readers leave the
    layer tables out, the stream leaves the table out, and the mirror reads as the file does."""
    import shutil

    from trainspect.analysis import open_run

    src = shutil.copy(make_run(tmp_path / "plain.h5", n_steps=20), tmp_path / "run.h5")
    with h5py.File(src, "r+", libver="latest", locking=False) as f:
        del f["params/name"]
        f.create_dataset("params/name", shape=(10**6,), dtype="S128", chunks=(1024,))
    data = _served(src)
    assert "params/name" not in [d["path"] for d in _layout(data)["datasets"]]
    assert len(data) < 10**6
    dst = tmp_path / "m" / "run.h5"
    _mirror(dst, data)
    here, there = open_run(src), open_run(dst)
    assert here.params == there.params == []
    assert here.layer_stat_names() == there.layer_stat_names()
    np.testing.assert_array_equal(here.scalar("train/loss").values, there.scalar("train/loss").values)


@pytest.mark.parametrize("state", ['{"scalars/step": 1e400}', '{"scalars/step": "x"}', '{"scalars/step": -5}',
                                   '{"scalars/step": true}', "[1, 2]"])
def test_a_from_state_that_is_no_row_counts_is_one_message(tmp_path, capsys, state):
    from trainspect.app.cli import main

    run = make_run(tmp_path / "run.h5", n_steps=20)
    assert main(["stream", "--once", "--from", state, str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("trainspect stream: --from must be a JSON object of row counts") and "Traceback" not in err
