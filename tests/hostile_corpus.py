"""Hand-made hostile run files: every reading-side case of issue 11 (parts 1, 3 and 4).

``build_corpus(directory)`` writes them all and returns ``{name: Case}``. Each case says what a
reader must do with the file: ``refuse`` it (exit 2, an error naming ``words``) or read what is
sound (``partial``: any other exit, ``words`` in the output when a warning is due). No case may
hang, crash the process or end in a traceback (checked by tests/test_hostile_files.py).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from tests.fixtures_runs import make_run
from trainspect.recorder import format as fmt


@dataclass(frozen=True)
class Case:
    path: Path
    expect: str           # "refuse" or "partial"
    words: tuple = ()     # text the error (refuse) or the info output (partial) must hold


def base_run(path, **kw) -> Path:
    """A small but complete run: 3 metrics, 2 layers with every record group."""
    kw = {"n_steps": 60, "n_layers": 2, "stats_every": 10, "hist_every": 20, "snapshot_every": 20, **kw}
    return make_run(path, **kw)


def _edit(base: Path, path: Path, edit) -> Path:
    shutil.copyfile(base, path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


def _replace(f, name: str, data=None, **kw) -> None:
    del f[name]
    f.create_dataset(name, data=data, **kw)


def _resize_huge(name: str):
    def edit(f):
        ds = f[name]
        ds.resize(2**33, axis=0)
    return edit


def _flip(base: Path, path: Path, offsets) -> Path:
    data = bytearray(base.read_bytes())
    for off in offsets:
        data[off] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def _metadata_offsets(data: bytes, n: int, seed: int) -> list:
    """Offsets inside HDF5 object headers (what one damaged byte in metadata means)."""
    rng = np.random.default_rng(seed)
    heads = [i for i in range(len(data) - 4) if data[i:i + 4] == b"OHDR"]
    return [int(rng.choice(heads)) + int(rng.integers(6, 40)) for _ in range(n)]


def _external_storage(secret: Path):
    def edit(f):
        del f[fmt.TAG_NAMES]
        size = secret.stat().st_size
        f.create_dataset(fmt.TAG_NAMES, shape=(size // fmt.TAG_LEN,), dtype=f"S{fmt.TAG_LEN}",
                         external=[(str(secret), 0, size)])
    return edit


def _virtual(source: Path):
    def edit(f):
        n = f[fmt.SCALAR_WALL].shape[0]
        layout = h5py.VirtualLayout(shape=(n,), dtype="float64")
        layout[:] = h5py.VirtualSource(str(source), fmt.SCALAR_WALL, shape=(n,))
        del f[fmt.SCALAR_WALL]
        f.create_virtual_dataset(fmt.SCALAR_WALL, layout)
    return edit


def _user_filter(f):
    from h5py import h5p, h5z

    data = f[fmt.SCALAR_VALUE][()]
    del f[fmt.SCALAR_VALUE]
    dcpl = h5p.create(h5p.DATASET_CREATE)
    dcpl.set_chunk((max(1, len(data)),))
    dcpl.set_filter(32123, h5z.FLAG_OPTIONAL)   # registered nowhere: skipped when writing
    space = h5py.h5s.create_simple((len(data),), (h5py.h5s.UNLIMITED,))
    dsid = h5py.h5d.create(f.id, fmt.SCALAR_VALUE.encode(), h5py.h5t.IEEE_F64LE, space, dcpl=dcpl)
    dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, np.ascontiguousarray(data))


def _soft_loop(f):
    g = f.create_group("loop")
    g["a"] = h5py.SoftLink("/loop/b")
    g["b"] = h5py.SoftLink("/loop/a")


def _external_link(other: Path):
    def edit(f):
        del f[fmt.SCALAR_VALUE]
        f[fmt.SCALAR_VALUE] = h5py.ExternalLink(str(other), fmt.SCALAR_VALUE)
    return edit


def _state(values):
    def edit(f):
        f[fmt.STATE][...] = values
    return edit


def _meta(raw: bytes):
    def edit(f):
        _replace(f, fmt.META, np.frombuffer(raw, np.uint8))
    return edit


def _tag_column(values):
    def edit(f):
        tag = f[fmt.SCALAR_TAG]
        tag[: len(values)] = values
    return edit


def _scalar_values(fill):
    def edit(f):
        v = f[fmt.SCALAR_VALUE]
        v[...] = fill
    return edit


# Every series some advisor rule reads, so a non-finite fill reaches each of them.
ADVISOR_METRICS = ("train/loss", "val/loss", "train/acc", fmt.SYS_LR, fmt.SYS_GRAD_NORM, fmt.SYS_STEP_TIME,
                   fmt.SYS_LOSS_SCALE, fmt.SYS_AMP_SKIPPED, fmt.SYS_NONFINITE_GRADS, fmt.SYS_INPUT_STD,
                   fmt.SYS_INPUT_MEAN, fmt.SYS_GRAD_NORM_POST_CLIP, fmt.LR_RANGE_SMOOTHED)


def _gzip_bomb(rows: int):
    def edit(f):
        for name in (fmt.SCALAR_STEP, fmt.SCALAR_TAG, fmt.SCALAR_VALUE, fmt.SCALAR_WALL):
            old = f[name][()]
            del f[name]
            ds = f.create_dataset(name, shape=(rows,), dtype=old.dtype, chunks=(fmt.SCALAR_CHUNK,),
                                  compression="gzip", compression_opts=9, maxshape=(None,), fillvalue=0)
            ds[: len(old)] = old
            zeros = np.zeros(1 << 20, old.dtype)
            for a in range(len(old), rows, len(zeros)):
                ds[a: a + len(zeros)] = zeros[: rows - a]
    return edit


def _fill_everything(fill):
    """Every float the run holds (scalars and layer records) set to ``fill``."""
    def edit(f):
        f[fmt.SCALAR_VALUE][...] = fill
        for group in fmt.RECORD_GROUPS:
            for name, dtype in fmt.RECORD_GROUPS[group].items():
                if dtype.startswith("float") and f"{group}/{name}" in f:
                    with np.errstate(over="ignore"):
                        f[f"{group}/{name}"][...] = fill
    return edit


def build_corpus(directory) -> dict:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    base = base_run(d / "_base.h5")
    secret = d / "_secret.txt"
    secret.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n" * 16)
    cases: dict[str, Case] = {}

    def refuse(name, path, *words):
        cases[name] = Case(Path(path), "refuse", words)

    def partial(name, path, *words):
        cases[name] = Case(Path(path), "partial", words)

    def edited(name, edit):
        return _edit(base, d / f"{name}.h5", edit)

    # ---- part 1: what the operating system hands over
    if hasattr(os, "mkfifo"):
        os.mkfifo(d / "fifo.h5")
        refuse("fifo", d / "fifo.h5", "not a regular file")
    (d / "signature_only.h5").write_bytes(fmt.HDF5_SIGNATURE)
    refuse("signature_only", d / "signature_only.h5", "truncated")
    (d / "empty.h5").write_bytes(b"")
    refuse("empty", d / "empty.h5", "not an HDF5 file")
    (d / "cut.h5").write_bytes(base.read_bytes()[: base.stat().st_size // 3])
    refuse("truncated", d / "cut.h5", "truncated")
    (d / "folder.h5").mkdir()
    refuse("directory", d / "folder.h5")
    data = base.read_bytes()
    for i, off in enumerate(_metadata_offsets(data, 4, seed=11)):
        refuse(f"damaged_header_{i}", _flip(base, d / f"damaged_header_{i}.h5", [off]), "damaged")
    refuse("foreign_hdf5", edited("foreign_hdf5", lambda f: f.attrs.__delitem__(fmt.ATTR_MAGIC)), "not a trainspect run")
    refuse("newer_schema", edited("newer_schema", lambda f: f.attrs.__setitem__(fmt.ATTR_SCHEMA, np.int64(99))),
           "schema version")
    partial("killed_writer", make_run(d / "killed_writer.h5", n_steps=30, n_layers=1, status=fmt.STATUS_RUNNING))

    # ---- part 3: documented objects with the wrong content
    refuse("schema_as_string", edited("schema_as_string", lambda f: f.attrs.__setitem__(fmt.ATTR_SCHEMA, "1")),
           "schema_version")
    refuse("tags_as_integers", edited("tags_as_integers", lambda f: _replace(f, fmt.TAG_NAMES, np.arange(3))),
           fmt.TAG_NAMES)
    refuse("steps_2d", edited("steps_2d", lambda f: _replace(f, fmt.SCALAR_STEP, np.zeros((4, 4), np.int64))),
           fmt.SCALAR_STEP)
    refuse("state_missing", edited("state_missing", lambda f: f.__delitem__(fmt.STATE)), fmt.STATE)
    refuse("meta_missing", edited("meta_missing", lambda f: f.__delitem__(fmt.META)), "starting")
    refuse("tags_resized_huge", edited("tags_resized_huge", _resize_huge(fmt.TAG_NAMES)), fmt.TAG_NAMES)
    partial("param_names_resized_2_33", edited("param_names_resized_2_33", lambda f: [
        _replace(f, fmt.PARAM_NAME, f[fmt.PARAM_NAME][()], chunks=True, maxshape=(None,)),
        _resize_huge(fmt.PARAM_NAME)(f)]), fmt.PARAM_NAME, "claims")
    refuse("meta_resized_2_33", edited("meta_resized_2_33", lambda f: [
        _replace(f, fmt.META, f[fmt.META][()], chunks=True, maxshape=(None,)), _resize_huge(fmt.META)(f)]), fmt.META)
    partial("state_nan", edited("state_nan", _state(np.full(fmt.STATE_LEN, np.nan))))
    partial("state_inf", edited("state_inf", _state(np.array([np.inf, -np.inf, np.inf, -np.inf, np.inf, np.nan, 0, 0]))))
    partial("state_huge", edited("state_huge", _state(np.full(fmt.STATE_LEN, 1e300))))
    partial("state_short", edited("state_short", lambda f: _replace(f, fmt.STATE, np.ones(2))))
    partial("status_missing", edited("status_missing", lambda f: f.__delitem__(fmt.STATUS)), fmt.STATUS)
    partial("status_integer", edited("status_integer", lambda f: _replace(f, fmt.STATUS, np.arange(1))), fmt.STATUS)
    partial("status_unknown_word", edited("status_unknown_word",
                                          lambda f: f[fmt.STATUS].__setitem__(0, b"\xff\xfegarbage")))
    partial("grad_norms_1d", edited("grad_norms_1d", lambda f: _replace(
        f, "grads/norm", np.ones(f["grads/norm"].shape[0], np.float32), maxshape=(None,))), "grads/norm")
    partial("hist_bins_wrong", edited("hist_bins_wrong", lambda f: _replace(
        f, "hists/weight_counts", np.ones((3, 4, 7), np.int32))), "hists/weight_counts")
    partial("snap_index_out_of_range", edited("snap_index_out_of_range", lambda f: f[fmt.SNAP_PARAM].__setitem__(
        slice(None), 1000)), fmt.SNAP_PARAM)
    partial("param_tables_disagree", edited("param_tables_disagree", lambda f: _replace(
        f, fmt.PARAM_NUMEL, np.arange(99))), "params")
    partial("values_all_inf", edited("values_all_inf", _scalar_values(np.inf)))
    partial("values_all_minus_inf", edited("values_all_minus_inf", _scalar_values(-np.inf)))
    partial("values_all_nan", edited("values_all_nan", _scalar_values(np.nan)))
    partial("values_huge", edited("values_huge", _scalar_values(1.7e308)))
    for label, fill in (("inf", np.inf), ("minus_inf", -np.inf), ("huge", 1e308)):
        every = d / f"advisor_everything_{label}.h5"
        base_run(every, n_steps=120, metrics=ADVISOR_METRICS)
        with h5py.File(every, "r+") as f:
            _fill_everything(fill)(f)
        partial(f"advisor_everything_{label}", every)
    partial("layer_stats_inf", edited("layer_stats_inf", lambda f: [f[f"{g}/{k}"].__setitem__(Ellipsis, np.inf)
                                                                   for g in ("grads", "weights", "acts")
                                                                   for k, dt in fmt.RECORD_GROUPS[g].items()
                                                                   if dt.startswith("float")]))
    partial("steps_extreme", edited("steps_extreme", lambda f: f[fmt.SCALAR_STEP].__setitem__(
        slice(0, 3), [np.iinfo(np.int64).max, np.iinfo(np.int64).min, -1])), "3 scalar rows carry a step outside")
    partial("tag_ids_negative", edited("tag_ids_negative", _tag_column([-1, -5, -(2**31)])),
            "3 scalar rows name no metric")
    partial("tag_ids_beyond_table", edited("tag_ids_beyond_table", _tag_column([99, 2**31 - 1, 7])),
            "3 scalar rows name no metric")
    # every record group's step column reversed: an IndexError in the advisor, exit 1 (trial 18 A7)
    partial("record_steps_reversed", edited("record_steps_reversed", lambda f: [
        f[f"{g}/step"].__setitem__(Ellipsis, f[f"{g}/step"][()][::-1]) for g in fmt.RECORD_GROUPS if f"{g}/step" in f]))
    partial("columns_resized_2_33", edited("columns_resized_2_33", lambda f: [
        _resize_huge(c)(f) for c in (fmt.SCALAR_STEP, fmt.SCALAR_TAG, fmt.SCALAR_VALUE, fmt.SCALAR_WALL)]))
    partial("grads_resized_2_33", edited("grads_resized_2_33", lambda f: [
        _resize_huge(f"grads/{c}")(f) for c in ("step", "norm", "nonfinite")]))
    partial("meta_not_json", edited("meta_not_json", _meta(b"\xff{not json")), fmt.META)
    partial("meta_a_list", edited("meta_a_list", _meta(b"[1, 2, 3]")), fmt.META)
    partial("meta_wrong_types", edited("meta_wrong_types", _meta(
        b'{"name": 5, "config": [1], "model": "x", "optimizer": 3, "versions": [], "roles": 7}')))
    partial("meta_roles_odd", edited("meta_roles_odd", _meta(b'{"name": "r", "roles": {"train": 5, "val": null}}')))
    for label, dist in (("rank_text", b'{"rank": "x", "world_size": 2}'), ("world_huge", b'{"rank": 0, "world_size": 1000000000000}'),
                        ("rank_beyond_world", b'{"rank": 7, "world_size": 2, "run_id": 5}')):
        partial(f"meta_distributed_{label}", edited(f"meta_distributed_{label}", _meta(
            b'{"name": "d", "distributed": ' + dist + b'}')), "distributed")
    partial("long_run_name", edited("long_run_name", _meta(('{"name": "%s"}' % ("n" * 1000)).encode())))
    partial("tag_names_odd", edited("tag_names_odd", lambda f: f[fmt.TAG_NAMES].__setitem__(
        slice(0, 3), [b"", b"\xff\xfe\x80", b"=HYPERLINK(\"http://x\")"])))
    partial("tag_names_duplicate", edited("tag_names_duplicate", lambda f: f[fmt.TAG_NAMES].__setitem__(
        slice(0, 3), [b"loss", b"loss", b"loss"])))
    partial("non_utf8_name", _edit(base, Path(os.fsdecode(bytes(d) + b"/bad_\xff_name.h5")), lambda f: None))
    # 6 M rows of gzip'd zeros in each scalar column: 168 MB decoded from a 1.8 MB file (trial 18 A3: 200 M rows
    # in 9 MB took minutes of every command and 6 GB in export)
    refuse("scalars_gzip_bomb", edited("scalars_gzip_bomb", _gzip_bomb(6_000_000)), "hostile", fmt.SCALAR_STEP)

    # ---- part 4: a run file must not read other files
    refuse("external_storage", edited("external_storage", _external_storage(secret)), fmt.TAG_NAMES, "external storage")
    refuse("external_link", edited("external_link", _external_link(base)), fmt.SCALAR_VALUE, "external link")
    refuse("virtual_dataset", edited("virtual_dataset", _virtual(base)), fmt.SCALAR_WALL, "virtual dataset")
    refuse("user_defined_filter", edited("user_defined_filter", _user_filter), fmt.SCALAR_VALUE, "filter")
    refuse("soft_link_loop", edited("soft_link_loop", _soft_loop), "/loop/", "soft link")
    refuse("hard_link_cycle", edited("hard_link_cycle", lambda f: f["state"].__setitem__("root", f["/"])), "/state/root")
    refuse("named_datatype", edited("named_datatype", lambda f: f.__setitem__("t", np.dtype("f8"))), "/t")
    return cases
