"""Whatever the model is called with, the input statistics and ``sys/batch_size`` never stop the
training loop, and never switch the other per-layer instruments off: the worst is a missing value.

A meta tensor input was measured (its statistics were copied to the host: "Cannot copy out of
meta tensor") and a tensor subclass whose ``to_local`` attribute raises failed in plain_values;
either switched every per-layer instrument off for the rest of the run.
"""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from trainspect.analysis.run import open_run
from trainspect.recorder import Recorder


class ToLocalRaises(torch.Tensor):
    """A wrapper-like subclass whose ``to_local`` is a property that raises."""

    @property
    def to_local(self):
        raise ValueError("no local shard")


class ShapeRaises(torch.Tensor):
    @property
    def shape(self):
        raise RuntimeError("no shape")


def _masked():
    from torch.masked import masked_tensor
    return masked_tensor(torch.ones(5, 4), torch.ones(5, 4, dtype=torch.bool))


INPUTS = {   # name -> (make the forward's arguments, the batch size expected: None = not recorded)
    "meta": (lambda: ((torch.empty(9, 4, device="meta"),), {}), 9),
    "to_local_raises": (lambda: ((torch.ones(8, 4).as_subclass(ToLocalRaises),), {}), None),
    "shape_raises": (lambda: ((torch.ones(8, 4).as_subclass(ShapeRaises),), {}), 8),
    "zero_dim": (lambda: ((torch.tensor(3.0),), {}), None),
    "nested_containers": (lambda: ((((torch.ones(5, 4), {"a": torch.ones(7)}),),), {"b": [torch.ones(2)]}), None),
    "generator": (lambda: (((t for t in [torch.ones(2)]),), {}), None),
    "nested_jagged": (lambda: ((torch.nested.nested_tensor([torch.ones(2, 4), torch.ones(3, 4)],
                                                            layout=torch.jagged),), {}), None),
    "masked": (lambda: ((_masked(),), {}), None),
}


class IgnoresItsInput(nn.Module):
    """Trains on a fixed batch whatever it is called with (the input is only looked at by hooks)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.drop = nn.Dropout(0.1)

    def forward(self, *args, **kwargs):
        return self.drop(self.fc(torch.linspace(-1, 1, 12).reshape(3, 4))).pow(2).mean()


@pytest.mark.parametrize("kind", sorted(INPUTS))
def test_a_hostile_input_is_a_missing_value_at_worst(tmp_path, kind):
    make, batch = INPUTS[kind]
    torch.manual_seed(0)
    model = IgnoresItsInput()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(tmp_path / "r.h5", stats_every=1, dense_start=0) as rec:
            rec.watch(model, opt)
            for _ in range(4):
                args, kwargs = make()
                loss = model(*args, **kwargs)
                opt.zero_grad()
                loss.backward()
                opt.step()
                rec.log({"train/loss": loss.item()})
                with torch.no_grad():                    # validation in train mode: marked
                    args, kwargs = make()
                    model(*args, **kwargs)
    failed = [str(w.message) for w in caught if "instrument failed" in str(w.message)
              or "switched off" in str(w.message)]
    assert not failed, failed
    with open_run(tmp_path / "r.h5") as run:
        names = run.metric_names()
        sizes = run.scalar("sys/batch_size").values.tolist() if "sys/batch_size" in names else []
        assert sizes == ([batch] * 4 if batch else []), sizes
        assert run.scalar("sys/nograd_train_mode").values.tolist() == [1.0] * 4
        for stat in ("grad_norm", "act_mean"):     # the per-layer instruments kept recording
            assert run.layer_stat(stat).steps.tolist() == [0, 1, 2, 3], stat
