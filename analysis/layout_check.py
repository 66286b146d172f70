"""Check a run file against the documented layout (recorder/FORMAT.md) before reading it.

A run file is shared like a document, so it must not speak for itself: links to other files,
external storage (e.g. ``tags/name`` pointing at /etc/passwd), virtual datasets and filters
HDF5 does not ship are refused, naming the object. A documented object of the wrong type or
shape is refused when the run cannot be read without it (scalars, tags, state, metadata) and
otherwise left out with a warning (a layer record group, the status text), so what is sound
still opens. Objects the layout does not name are never read.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from trainspect.recorder import format as fmt
from trainspect.recorder.format import RunFileError

# Filters HDF5 (and h5py, for LZF) ship: decoding them runs no third-party code.
KNOWN_FILTERS = {1: "deflate", 2: "shuffle", 3: "fletcher32", 4: "szip", 5: "nbit", 6: "scaleoffset", 32000: "lzf"}
COMPRESSING_FILTERS = {1, 4, 5, 6, 32000}   # deflate, szip, nbit, scaleoffset, lzf
MAX_DEPTH = 2                   # the layout is group/dataset: nothing nests deeper
MAX_LINKS_PER_GROUP = 10_000    # the layout has at most a dozen per group
MAX_META_BYTES = 64 << 20       # run metadata is a few KB of JSON
MAX_TABLE_ROWS = 1_000_000      # params/modules/snapshot slots: far above any model
MAX_TAGS = 50_000_000
WHOLE_READ_MIN_BYTES = 64 << 20
MAX_CHUNK_ROWS = fmt.SCALAR_CHUNK   # the most rows the recorder puts in a chunk (layer groups: <= 4096)
MAX_CHUNK_BYTES = 16 << 20          # ... and a chunk it writes is ~256 KB (one row at least)
WHOLE_READ_FACTOR = 8           # gzip of NUL-padded names reaches a few x, not more
# Growing columns (scalars/*, the layer record groups) stored compressed: the recorder never
# compresses them; a run repacked with gzip (+shuffle) unpacks to a few times its size (float
# values and wall times compress ~1.5-4x). A 9 MB file of gzip'd zeros claimed 200 M rows (6.4 GB,
# ~700x): minutes of CPU for every command (trial 18 A3).
COMPRESSED_COLUMNS_FACTOR = 64

CORE = {  # read for every run: refused when wrong
    fmt.STATE: ("fiu", 1), fmt.META: ("iu", 1),
    fmt.SCALAR_STEP: ("iu", 1), fmt.SCALAR_TAG: ("iu", 1), fmt.SCALAR_VALUE: ("fiu", 1),
    fmt.SCALAR_WALL: ("fiu", 1), fmt.TAG_NAMES: ("S", 1),
}
TEXTS = {fmt.STATUS: ("S", 1), fmt.ERROR: ("S", 1)}
TABLES = {
    fmt.PARAM_NAME: ("S", 1), fmt.PARAM_MODULE: ("S", 1), fmt.PARAM_SHAPE: ("S", 1), fmt.PARAM_NUMEL: ("iu", 1),
    fmt.MODULE_NAME: ("S", 1), fmt.MODULE_TYPE: ("S", 1), fmt.SNAP_PARAM: ("iu", 1), fmt.SNAP_SHAPE: ("iu", 2),
}


# Datasets read whole (not in blocks): their size is checked against the file's before any read.
READ_WHOLE = {fmt.META, fmt.TAG_NAMES, fmt.STATE, fmt.STATUS, fmt.ERROR, fmt.SEGMENTS, fmt.SEGMENT_NOTES,
              fmt.SEGMENT_META, *TABLES}


@dataclass
class Layout:
    """What a checked file holds: the documented datasets that may be read, and what was left out."""
    present: set = field(default_factory=set)
    datasets: dict = field(default_factory=dict)  # path -> open h5py.Dataset of every present one
    warnings: list = field(default_factory=list)
    groups: set = field(default_factory=set)      # record groups whose every column is sound


def check_layout(f, path) -> Layout:
    """Walk ``f`` (an open h5py.File) without following any link; RunFileError on a refusal."""
    found = {}
    _walk(f, "", 0, found, path)
    out = Layout()
    _drop_oversized(found, path, out)
    if fmt.META not in found:
        # The writer has created the file but not frozen its layout yet.
        raise RunFileError(f"{path}: run is starting (no data written yet); try again in a moment")
    for name, (kinds, ndim) in CORE.items():
        problem = _problem(found.get(name), kinds, ndim)
        if problem:
            raise RunFileError(f"{path}: damaged run file ({name} {problem})")
        out.present.add(name)
    meta = found[fmt.META]
    if meta.dtype.itemsize != 1 or meta.shape[0] > MAX_META_BYTES:
        raise RunFileError(f"{path}: damaged run file ({fmt.META} is {meta.dtype} {meta.shape}, not JSON bytes)")
    if found[fmt.TAG_NAMES].shape[0] > MAX_TAGS:
        raise RunFileError(f"{path}: damaged run file ({fmt.TAG_NAMES} claims {found[fmt.TAG_NAMES].shape[0]:,} names)")
    for name, (kinds, ndim) in TEXTS.items():
        problem = _problem(found.get(name), kinds, ndim)
        if problem:
            out.warnings.append(f"{name} {problem}: " + ("the run's state is judged from its heartbeat alone"
                                                          if name == fmt.STATUS else "no writer error shown"))
        else:
            out.present.add(name)
    _check_segments(found, out)
    tables_ok = _check_tables(found, out)
    for group in fmt.RECORD_GROUPS:
        _check_group(found, group, tables_ok, out)
    out.datasets = {name: found[name] for name in out.present}
    return out


def whole_read_limit(file_size: int) -> int:
    """The most bytes a table read whole may claim in a file of ``file_size`` bytes."""
    return max(WHOLE_READ_MIN_BYTES, WHOLE_READ_FACTOR * file_size)


def _drop_oversized(found: dict, path, out: Layout) -> None:
    """Tables a reader loads whole must fit what the file could hold: a table resized to 2^33
    rows in a 2 MB file is refused or left out, never read; so is one stored compressed that
    would unpack to gigabytes (20 M gzip'd names in 5.7 MB took 3.7 GB and 26 s to read). The
    recorder never compresses, and a repacked run's tables unpack to a few times its size."""
    import os

    _refuse_column_bomb(found, path)
    limit = whole_read_limit(os.path.getsize(path))
    for name in sorted(READ_WHOLE & found.keys()):
        ds = found[name]
        try:
            nbytes = math.prod(ds.shape) * ds.dtype.itemsize
        except Exception:   # an unknown datatype: _problem says so
            continue
        if nbytes <= limit:
            continue
        problem = f"{name} claims {nbytes:,} bytes in a file of {os.path.getsize(path):,}"
        if name in CORE:
            raise RunFileError(f"{path}: damaged run file ({problem})")
        out.warnings.append(problem + ": left out")
        del found[name]


def _decoded_bytes(ds) -> int:
    """Bytes the allocated chunks of a compressed dataset unpack to (0: stored uncompressed)."""
    try:
        dcpl = ds.id.get_create_plist()
        if not ds.chunks or not any(dcpl.get_filter(i)[0] in COMPRESSING_FILTERS for i in range(dcpl.get_nfilters())):
            return 0
        return ds.id.get_num_chunks() * math.prod(ds.chunks) * ds.dtype.itemsize
    except Exception:   # an unknown datatype or a damaged index: _problem or the read says so
        return 0


def _refuse_column_bomb(found: dict, path) -> None:
    """Refuse a file whose compressed growing columns unpack to far more than any real run's
    (COMPRESSED_COLUMNS_FACTOR x the file size), naming the largest: reading them is time and
    memory a shared 9 MB file must not be able to claim (trial 18 A3)."""
    import os

    size = os.path.getsize(path)
    decoded = {name: _decoded_bytes(ds) for name, ds in found.items() if name not in READ_WHOLE}
    total = sum(decoded.values())
    if total <= max(WHOLE_READ_MIN_BYTES, COMPRESSED_COLUMNS_FACTOR * size):
        return
    name = max(decoded, key=decoded.get)
    rows = found[name].shape[0] if found[name].shape else 0
    raise RunFileError(f"{path}: damaged or hostile run file ({name}: {rows:,} rows, {_bytes(decoded[name])} "
                       f"decoded; compressed columns unpack to {_bytes(total)} from a file of {_bytes(size)}, "
                       f"{total / max(size, 1):,.0f}x; trainspect never compresses its columns)")


def _bytes(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n} bytes"


def _walk(group, prefix: str, depth: int, found: dict, path) -> None:
    import h5py

    names = list(group.keys())
    if len(names) > MAX_LINKS_PER_GROUP:
        raise RunFileError(f"{path}: damaged run file (/{prefix} holds {len(names):,} objects)")
    for name in names:
        where = f"{prefix}{name}"
        link = group.get(name, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            raise RunFileError(f"{path}: refused: /{where} is an external link (to {link.filename}:{link.path}); "
                               "a run file never reads other files")
        if isinstance(link, h5py.SoftLink):
            raise RunFileError(f"{path}: refused: /{where} is a soft link (to {link.path}); "
                               "run files hold no links")
        if not isinstance(link, h5py.HardLink):
            raise RunFileError(f"{path}: refused: /{where} is a user-defined link; run files hold no links")
        try:
            obj = group[name]
        except KeyError as exc:   # h5py's word for "cannot open": a damaged object header
            raise RunFileError(f"{path}: damaged run file (/{where}: {exc.args[0] if exc.args else exc})") from None
        if isinstance(obj, h5py.Group):
            if depth + 1 >= MAX_DEPTH:
                raise RunFileError(f"{path}: refused: /{where} is a group nested deeper than the run layout")
            _walk(obj, where + "/", depth + 1, found, path)
        elif isinstance(obj, h5py.Dataset):
            _check_storage(obj, where, path)
            found[where] = obj
        else:
            raise RunFileError(f"{path}: refused: /{where} is a named datatype, not part of the run layout")


def _check_storage(ds, where: str, path) -> None:
    from h5py import h5d

    dcpl = ds.id.get_create_plist()
    if dcpl.get_layout() == h5d.VIRTUAL:
        raise RunFileError(f"{path}: refused: /{where} is a virtual dataset (it would read other files)")
    if dcpl.get_external_count() > 0:
        target = dcpl.get_external(0)[0]
        raise RunFileError(f"{path}: refused: /{where} uses external storage ({target!r}); "
                           "a run file never reads other files")
    for i in range(dcpl.get_nfilters()):
        code = dcpl.get_filter(i)[0]
        if code not in KNOWN_FILTERS:
            raise RunFileError(f"{path}: refused: /{where} uses user-defined filter {code}; "
                               f"run files use only {', '.join(KNOWN_FILTERS.values())}")
    chunks = ds.chunks
    if chunks:
        size = math.prod(chunks) * ds.dtype.itemsize
        if chunks[0] > MAX_CHUNK_ROWS and size > MAX_CHUNK_BYTES:
            # HDF5 inflates a whole chunk to read one row of it: a 6.6 MB crafted file with
            # gzip'd 2**27-row chunks cost every command 25-57 s and 1.1 GB (trial 14)
            raise RunFileError(f"{path}: refused: /{where} is stored in chunks of {chunks[0]:,} rows "
                               f"({size / 2**20:,.0f} MiB each to read any row of it); trainspect writes at most "
                               f"{MAX_CHUNK_ROWS:,} rows a chunk: not written by trainspect")


def _problem(ds, kinds: str, ndim: int) -> str:
    """Why ``ds`` does not fit (dtype kind in ``kinds``, rank ``ndim``), or ""."""
    if ds is None:
        return "is missing"
    try:
        dtype = ds.dtype
    except Exception:   # an unknown datatype class
        return "has an unreadable datatype"
    if dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype is not None:
        return f"has dtype {dtype}, expected {_kind_words(kinds)}"
    if len(ds.shape) != ndim:
        return f"has shape {ds.shape}, expected {ndim} dimension(s)"
    if dtype.kind == "S" and dtype.itemsize > 4096:
        return f"has strings of {dtype.itemsize} bytes"
    return ""


def _check_segments(found: dict, out: Layout) -> None:
    """segments/ (a resumed run's writer sessions): optional; unsound = read as one session."""
    if fmt.SEGMENTS not in found and fmt.SEGMENT_NOTES not in found:
        return
    table, notes = found.get(fmt.SEGMENTS), found.get(fmt.SEGMENT_NOTES)
    problem = _problem(table, "f", 2) or _problem(notes, "S", 1)
    if not problem and (table.shape[1] != len(fmt.SEGMENT_COLUMNS) or table.shape[0] != notes.shape[0]
                        or table.shape[0] > MAX_TABLE_ROWS):
        problem = f"has shape {table.shape} with {notes.shape[0]} notes"
    if problem:
        out.warnings.append(f"{fmt.SEGMENTS} {problem}: the run's writer sessions are not told apart "
                            "(rows a resumed session superseded are shown too)")
        return
    out.present.update((fmt.SEGMENTS, fmt.SEGMENT_NOTES))
    meta = found.get(fmt.SEGMENT_META)    # the later sessions' config: optional, shown only
    if meta is not None:
        problem = _problem(meta, "iu", 1) or ("is no JSON bytes" if meta.dtype.itemsize != 1
                                              or meta.shape[0] > MAX_META_BYTES else "")
        if problem:
            out.warnings.append(f"{fmt.SEGMENT_META} {problem}: the resumed sessions' config is not shown")
        else:
            out.present.add(fmt.SEGMENT_META)


def _kind_words(kinds: str) -> str:
    words = {"f": "floats", "i": "integers", "u": "unsigned integers", "S": "fixed-length strings"}
    return " or ".join(words[k] for k in kinds)


def _check_tables(found: dict, out: Layout) -> dict:
    """Layer tables: {"params": n, "modules": n, "snaps": n} of those that are sound."""
    ok = {}
    params = [fmt.PARAM_NAME, fmt.PARAM_MODULE, fmt.PARAM_SHAPE, fmt.PARAM_NUMEL]
    groups = {"params": params, "modules": [fmt.MODULE_NAME, fmt.MODULE_TYPE], "snaps": [fmt.SNAP_PARAM, fmt.SNAP_SHAPE]}
    for kind, names in groups.items():
        if not any(n in found for n in names):
            ok[kind] = 0
            continue
        problems = [f"{n} {p}" for n in names if (p := _problem(found.get(n), *TABLES[n]))]
        lengths = {found[n].shape[0] for n in names if n in found and found[n].shape}
        if not problems and len(lengths) > 1:
            problems.append(f"{kind} tables of different lengths {sorted(lengths)}")
        if not problems and max(lengths, default=0) > MAX_TABLE_ROWS:
            problems.append(f"{kind} tables claim {max(lengths):,} rows")
        if not problems and kind == "snaps":
            problems += _snap_problems(found, ok.get("params", 0))
        if problems:
            out.warnings.append("; ".join(problems) + f": the {kind} layer data is left out")
            continue
        out.present.update(names)
        ok[kind] = lengths.pop() if lengths else 0
    return ok


def _snap_problems(found: dict, n_params: int) -> list:
    shape = found[fmt.SNAP_SHAPE]
    if shape.ndim != 2 or shape.shape[1] != 2:
        return [f"{fmt.SNAP_SHAPE} has shape {shape.shape}, expected (slots, 2)"]
    idx = np.asarray(found[fmt.SNAP_PARAM][()])
    if len(idx) and (idx.min() < 0 or idx.max() >= n_params):
        return [f"{fmt.SNAP_PARAM} points outside the {n_params} parameter tensors"]
    return []


def _check_group(found: dict, group: str, tables_ok: dict, out: Layout) -> None:
    step = f"{group}/{fmt.STEP_FIELD}"
    columns = [step] + [f"{group}/{k}" for k in fmt.RECORD_GROUPS[group]]
    if not any(c in found for c in columns):
        return   # a group the run does not record
    kind = fmt.GROUP_LAYERS[group]
    problems = []
    if kind not in tables_ok:
        problems.append(f"its {kind} table is unusable")
    else:
        if p := _problem(found.get(step), "iu", 1):
            problems.append(f"{step} {p}")
        for name in fmt.RECORD_GROUPS[group]:
            col = f"{group}/{name}"
            want = (None, *fmt.row_shape(group, name, tables_ok[kind]))
            if p := _problem(found.get(col), "fiu", len(want)):
                problems.append(f"{col} {p}")
            elif tuple(found[col].shape[1:]) != want[1:]:
                problems.append(f"{col} has rows of shape {found[col].shape[1:]}, expected {want[1:]}")
    if problems:
        out.warnings.append("; ".join(problems) + f": the {group} records are left out")
        return
    out.present.update(columns)
    out.groups.add(group)


def stored_rows(ds, file_size: int) -> int:
    """Rows of the growing column ``ds`` backed by storage: its extent, unless the extent
    claims more bytes than the file could hold, in which case the rows its allocated chunks
    cover (a resized-but-empty column must not make a reader walk 2^33 rows of fill)."""
    n = ds.shape[0]
    row_bytes = ds.dtype.itemsize * math.prod(ds.shape[1:])
    if n * row_bytes <= max(file_size, 1) * 4:   # uncompressed data fits in the file
        return n
    chunks = ds.chunks
    if not chunks:
        return 0
    dsid = ds.id
    count = dsid.get_num_chunks()
    covered = 0
    for i in range(count):
        covered = max(covered, dsid.get_chunk_info(i).chunk_offset[0] + chunks[0])
    return min(n, covered)
