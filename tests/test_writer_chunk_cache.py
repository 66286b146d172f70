"""The writer's HDF5 chunk cache holds the chunk being appended to, no more.

At HDF5's default (1 MB per dataset) the training process kept up to 1 MB of already-written
chunks for every growing dataset: +60 MB over 400 k steps of a small watched MLP, growing with
the run (benchmarks/bench_writer_memory.py). The rows must still come back exactly when they
span many chunks, in a new file and in a resumed one."""
from __future__ import annotations

import numpy as np
import pytest
from trainspect.analysis import open_run
from trainspect.recorder import Recorder
from trainspect.recorder import format as fmt
from trainspect.recorder.h5file import CHUNK_CACHE_BYTES

STEPS = 3 * fmt.SCALAR_CHUNK + 123     # several chunks of the scalar table, a partial one last


def chunk_cache_bytes(rec) -> int:
    return rec._writer.file.f.id.get_access_plist().get_cache()[2]


def test_the_cache_fits_one_chunk_of_the_layout_and_is_below_hdf5s_default():
    target = 256 * 1024      # fmt.chunk_rows' default target: chunks of ~256 KB
    assert fmt.chunk_rows(8) * 8 <= target <= CHUNK_CACHE_BYTES < 1024 * 1024
    assert fmt.SCALAR_CHUNK * 8 <= CHUNK_CACHE_BYTES   # a chunk of the float64 scalar columns


@pytest.mark.parametrize("seed", [0, 1])
def test_rows_over_many_chunks_read_back_exactly_new_and_resumed(tmp_path, seed):
    path = tmp_path / "run.h5"
    values = np.random.default_rng(seed).standard_normal((2, STEPS))
    with Recorder(path) as rec:
        assert chunk_cache_bytes(rec) == CHUNK_CACHE_BYTES
        for i in range(STEPS):
            rec.log({"a": float(values[0, i])}, step=i)
    with Recorder(path, resume=True) as rec:
        assert chunk_cache_bytes(rec) == CHUNK_CACHE_BYTES
        for i in range(STEPS):
            rec.log({"b": float(values[1, i])}, step=STEPS + i)
    with open_run(path) as run:
        a, b = run.scalar("a"), run.scalar("b")
    np.testing.assert_array_equal(a.steps, np.arange(STEPS))
    np.testing.assert_array_equal(a.values, values[0])
    np.testing.assert_array_equal(b.steps, STEPS + np.arange(STEPS))
    np.testing.assert_array_equal(b.values, values[1])
