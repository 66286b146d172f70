"""sys/cuda_mem_allocated and sys/cuda_mem_peak: read from one call of the caching allocator's
nested statistics (torch.cuda.memory_allocated / max_memory_allocated flatten them each time,
a cost a launch-bound GPU loop pays every step). No GPU here: the allocator's answer is faked
with the structure torch returns, and the values must be those the flat API would give."""
from __future__ import annotations

import types

import pytest
import torch

from trainspect.recorder import format as fmt
from trainspect.recorder.records import cuda_memory


def nested_stats(current, peak):
    """What torch.cuda.memory_stats_as_nested_dict returns (abridged to the keys that matter
    and a few neighbours that must not be confused with them)."""
    def pools(cur, pk):
        return {"current": cur, "peak": pk, "allocated": pk * 3, "freed": pk * 3 - cur}
    return {
        "allocated_bytes": {"all": pools(current, peak), "small_pool": pools(current // 4, peak // 4),
                            "large_pool": pools(current - current // 4, peak - peak // 4)},
        "reserved_bytes": {"all": pools(current * 2, peak * 2)},
        "active_bytes": {"all": pools(current + 512, peak + 512)},
        "num_alloc_retries": 0,
    }


def flat(stats, prefix=""):
    """torch.cuda.memory_stats' flattening, to compare with what the flat API would read."""
    out = {}
    for k, v in stats.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


@pytest.mark.parametrize("current,peak", [(0, 0), (123_456_789, 987_654_321), (2**40 + 7, 2**41 + 3)])
def test_allocated_bytes_match_the_flat_api(monkeypatch, current, peak):
    stats = nested_stats(current, peak)
    seen = []
    monkeypatch.setattr(torch.cuda, "memory_stats_as_nested_dict", lambda device=None: seen.append(device) or stats)
    got = cuda_memory.allocated_bytes("cuda:0")
    want = flat(stats)
    assert got == (float(want["allocated_bytes.all.current"]), float(want["allocated_bytes.all.peak"]))
    assert seen == ["cuda:0"]          # one read of the allocator for both values


def test_uninitialised_cuda_reads_as_zero_like_the_flat_api(monkeypatch):
    # Before CUDA is initialised torch returns {} and memory_allocated() returns 0.
    monkeypatch.setattr(torch.cuda, "memory_stats_as_nested_dict", lambda device=None: {})
    assert cuda_memory.allocated_bytes(0) == (0.0, 0.0)


def fake_record(monkeypatch, stats):
    """A CudaMemory record on a faked allocator and link: returns it, its rows and tag names."""
    monkeypatch.setattr(torch.cuda, "memory_stats_as_nested_dict", lambda device=None: stats())
    rows, names = [], []
    link = types.SimpleNamespace(tag=lambda name: names.append(name) or len(names) - 1,
                                 host_value=lambda *row: rows.append(row))
    param = types.SimpleNamespace(device=torch.device("cuda", 0))
    watched = types.SimpleNamespace(link=link, params=[param], optimizer=object())
    assert cuda_memory.CudaMemory.wanted(watched)
    return cuda_memory.CudaMemory(watched), rows, names


def test_record_emits_both_values_at_the_step(monkeypatch):
    record, rows, names = fake_record(monkeypatch, lambda: nested_stats(5000, 9000))
    record.after_step(17, 1234.5, None)
    assert rows == [(17, 0, 5000.0, 1234.5), (17, 1, 9000.0, 1234.5)]
    assert names == [fmt.SYS_CUDA_ALLOC, fmt.SYS_CUDA_PEAK]


def test_fast_steps_are_sampled_and_the_peak_between_reads_is_kept(monkeypatch):
    """Steps 10 ms apart: a read every SAMPLE_INTERVAL seconds of the steps' wall clock, the
    first step's included; a peak reached between two reads shows at the next read; slow steps
    are each read; a clock set back does not stop the reads."""
    state = {"current": 0, "peak": 0}
    record, rows, _ = fake_record(monkeypatch, lambda: nested_stats(state["current"], state["peak"]))
    interval = cuda_memory.SAMPLE_INTERVAL
    wall = 1000.0
    for step in range(100):
        state["current"] = 100 + step
        state["peak"] = max(state["peak"], 5000 if step == 33 else state["current"])
        record.after_step(step, wall + step * interval / 10, None)
    read_steps = [r[0] for r in rows[::2]]
    assert read_steps[0] == 0 and 9 <= len(read_steps) <= 11
    assert all(9 <= b - a <= 11 for a, b in zip(read_steps, read_steps[1:]))
    first_after = next(s for s in read_steps if s >= 33)
    peaks = {r[0]: r[2] for r in rows[1::2]}
    assert peaks[first_after] == 5000.0 and all(peaks[s] < 5000 for s in read_steps if s < 33)
    rows.clear()
    slow = wall + 100
    for step in range(100, 105):
        record.after_step(step, slow + (step - 100) * interval * 1.01, None)
    assert [r[0] for r in rows[::2]] == [100, 101, 102, 103, 104]
    rows.clear()
    record.after_step(105, wall - 3600, None)      # the system clock was set back an hour
    record.after_step(106, wall - 3600 + interval, None)
    assert [r[0] for r in rows[::2]] == [105, 106]
