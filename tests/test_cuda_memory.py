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


def test_record_emits_both_values_at_the_step(monkeypatch):
    monkeypatch.setattr(torch.cuda, "memory_stats_as_nested_dict", lambda device=None: nested_stats(5000, 9000))
    rows, names = [], []
    link = types.SimpleNamespace(tag=lambda name: names.append(name) or len(names) - 1,
                                 host_value=lambda *row: rows.append(row))
    param = types.SimpleNamespace(device=torch.device("cuda", 0))
    watched = types.SimpleNamespace(link=link, params=[param], optimizer=object())
    assert cuda_memory.CudaMemory.wanted(watched)
    record = cuda_memory.CudaMemory(watched)
    record.after_step(17, 1234.5, None)
    assert rows == [(17, 0, 5000.0, 1234.5), (17, 1, 9000.0, 1234.5)]
    assert names == [fmt.SYS_CUDA_ALLOC, fmt.SYS_CUDA_PEAK]
