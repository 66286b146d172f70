"""Seeded byte-flip and truncation mutants of real run files through every reading entry point.

What issue 11 found: one flipped byte in HDF5 metadata made every reader wait forever (SWMR
retries without end). Each mutant goes through ``info``, ``diagnose --json``, ``report``,
``export`` and ``open_run`` + ``diagnose`` in watchdog driver processes (tests/entry_driver.py).
Bases: a finished run, a kill -9-like run (write flags set) and a resumed run (two writer
sessions). Pass: 0 hangs, 0 crashes (segfaults), 0 tracebacks; whatever a mutant does to the data, each
entry point either reads it or exits 2 with an error naming the file.

``TRAINSPECT_FUZZ_COUNT`` (default 200) sets the number of mutants; ``TRAINSPECT_FUZZ_SEED``
picks another set (default 0, so a failure reproduces).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from tests.entry_driver import ENTRIES, run_batches
from tests.hostile_corpus import base_run

FUZZ_COUNT = int(os.environ.get("TRAINSPECT_FUZZ_COUNT", "200"))
FUZZ_SEED = int(os.environ.get("TRAINSPECT_FUZZ_SEED", "0"))
# Where HDF5 keeps metadata: object headers, B-trees, heaps, free space, chunk indexes.
METADATA_SIGNATURES = (b"OHDR", b"OCHK", b"BTHD", b"BTIN", b"BTLF", b"FRHP", b"FHDB", b"FHIB", b"FSHD",
                       b"FSSE", b"EAHD", b"EAIB", b"EADB", b"EASB", b"FAHD", b"FADB", b"SMTB", b"SMLI")

KILLED_WRITER = textwrap.dedent("""
    import os, sys, numpy as np
    from trainspect.recorder.h5file import RunFileWriter
    from tests.fixtures_runs import layer_layout
    w = RunFileWriter(sys.argv[1])
    w.start({"name": "killed"}, layer_layout(2), flush_every=1.0)
    w.add_tags(["train/loss", "val/loss"])
    steps = np.arange(200)
    w.append_scalars(steps, np.zeros(200, np.int32), 1.0 / (steps + 1.0), steps * 0.01)
    w.append_records("grads", steps, {"norm": np.ones((200, 4)), "nonfinite": np.zeros((200, 4))})
    w.flush(199)
    os._exit(0)   # as kill -9 leaves it: the superblock still says a writer holds the file
""")


def resumed_run(path):
    """A finished run continued by a second writer session from step 20 (segments table)."""
    from trainspect.recorder.h5file import RunFileWriter

    base_run(path, n_steps=40)
    w = RunFileWriter(path, resume=True)
    w.set_first_step(20)
    steps = np.arange(20, 50)
    w.append_scalars(steps, np.zeros(30, np.int32), np.ones(30), np.zeros(30))
    w.append_records("grads", steps, {"norm": np.ones((30, 4)), "nonfinite": np.zeros((30, 4))})
    w.close(last_step=49)
    return path


def metadata_offsets(data: bytes) -> np.ndarray:
    """Byte offsets inside HDF5 metadata blocks (and the superblock)."""
    starts = [0]
    for sig in METADATA_SIGNATURES:
        at = data.find(sig)
        while at >= 0:
            starts.append(at)
            at = data.find(sig, at + 1)
    return np.unique(np.concatenate([np.arange(s, min(len(data), s + 160)) for s in starts]))


def make_mutants(bases: list, directory, count: int, seed: int) -> list:
    """``count`` mutants: 1-4 flipped metadata bytes (3 in 4) or a truncated copy (1 in 4)."""
    rng = np.random.default_rng(seed)
    sources = [(p.read_bytes(), p.stem) for p in bases]
    offsets = [metadata_offsets(data) for data, _ in sources]
    out = []
    past = time.time() - 3600   # copied an hour ago: no writer is touching these files
    for i in range(count):
        k = int(rng.integers(len(sources)))
        data, stem = sources[k]
        if rng.random() < 0.25:
            mutant = data[: int(rng.integers(0, len(data)))]
            kind = "cut"
        else:
            buf = bytearray(data)
            for off in rng.choice(offsets[k], size=int(rng.integers(1, 5)), replace=False):
                buf[int(off)] ^= 1 << int(rng.integers(8))
            mutant = bytes(buf)
            kind = "flip"
        path = directory / f"{stem}-{kind}-{i:05d}.h5"
        path.write_bytes(mutant)
        os.utime(path, (past, past))
        out.append(path)
    return out


@pytest.fixture(scope="module")
def fuzz_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    finished = base_run(root / "finished.h5", n_steps=40)
    killed = root / "killed.h5"
    subprocess.run([sys.executable, "-c", KILLED_WRITER, str(killed)], check=True, timeout=120,
                   cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert killed.read_bytes()[11] & 0x05, "the killed writer left no write flags"
    resumed = resumed_run(root / "resumed.h5")
    (root / "mutants").mkdir()
    mutants = make_mutants([finished, killed, resumed], root / "mutants", FUZZ_COUNT, FUZZ_SEED)
    return mutants, run_batches(mutants, root / "out", entry_timeout=20.0)


def test_every_mutant_through_every_entry_point_without_hang_crash_or_traceback(fuzz_results):
    mutants, batches = fuzz_results
    assert len(mutants) >= min(FUZZ_COUNT, 200)
    assert batches.problems() == []
    assert len(batches.results) == len(mutants) * len(ENTRIES)


def test_a_refused_mutant_names_its_file(fuzz_results):
    _, batches = fuzz_results
    refused = [r for r in batches.results if r["rc"] == 2]
    assert refused, "no mutant was refused: the mutations did not reach the metadata"
    for r in refused:
        assert os.path.basename(r["file"]) in r["stderr"], r


def test_mutants_are_seeded(tmp_path):
    base = base_run(tmp_path / "b.h5", n_steps=10, n_layers=0)
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    a = make_mutants([base], tmp_path / "x", 5, seed=3)
    b = make_mutants([base], tmp_path / "y", 5, seed=3)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert all(p.read_bytes() != base.read_bytes() for p in a)
