"""Watched.to_one: the per-layer results of a model spread over devices are gathered on the
first device before they are stacked; a model on one device skips the per-tensor check, but a
model split over devices after watch() (seen at the results' ends) is still gathered."""
from __future__ import annotations

import types

import torch

from trainspect.recorder.records.base import Watched


class Result:
    """A 0-d result on a named device; .to() returns its copy there (what a real copy does)."""

    def __init__(self, device, name):
        self.device, self.name = torch.device(device), name

    def to(self, device, non_blocking=False):
        assert non_blocking          # async copies: no host wait
        return Result(device, self.name + "@" + str(device))


def watched(*devices):
    params = [types.SimpleNamespace(device=torch.device(d)) for d in devices]
    link = types.SimpleNamespace(device_path=True)
    layout = types.SimpleNamespace(param_tensors=params)
    return Watched(link, torch.nn.Module(), None, layout)


def names(results):
    return [r.name for r in results]


def test_one_device_results_stay_where_they_are():
    w = watched("cuda:0", "cuda:0", "cuda:0")
    results = [Result("cuda:0", n) for n in "abc"]
    assert names(w.to_one(results)) == ["a", "b", "c"]
    assert all(r.device == torch.device("cuda:0") for r in w.to_one(results))


def test_model_over_two_devices_is_gathered_on_the_first():
    w = watched("cuda:0", "cuda:1", "cuda:1")
    got = w.to_one([Result("cuda:0", "a"), Result("cuda:1", "b"), Result("cuda:1", "c")])
    assert names(got) == ["a", "b@cuda:0", "c@cuda:0"]
    assert {r.device for r in got} == {torch.device("cuda:0")}


def test_model_split_after_watch_is_still_gathered():
    # watch() saw one device; the model was then split (pipeline): its ends differ.
    w = watched("cuda:0", "cuda:0", "cuda:0")
    got = w.to_one([Result("cuda:0", "a"), Result("cuda:1", "b"), Result("cuda:1", "c")])
    assert names(got) == ["a", "b@cuda:0", "c@cuda:0"]
