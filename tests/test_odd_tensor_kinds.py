"""Tensors of kinds the statistics cannot read, at a leaf output or as the batch (trial 14):
a wrapper subclass (MaskedTensor; DTensor the same way) had its data_ptr() read by the C
extension and the training died of SIGSEGV at step 0; a sparse or jagged leaf output switched
every instrument off for the rest of the run, and `info` then said "no optimizer step was
recorded". Such a tensor is left out (a DTensor gives its shard); the rest is recorded.
Each case runs in a fresh process: a crash must fail the test, not the test runner."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from trainspect.analysis.run import Run

SCRIPT = textwrap.dedent('''
    import sys, warnings, torch, torch.nn as nn
    from trainspect import Recorder
    kind, where, path, device_path = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
    warnings.simplefilter("ignore", UserWarning)   # torch.masked / nested are prototypes

    def odd(x):
        if kind == "masked":
            from torch.masked import masked_tensor
            return masked_tensor(x.detach(), x.detach() > 0)
        if kind == "sparse_coo":
            return x.to_sparse()
        if kind == "sparse_csr":
            return x.to_sparse_csr()
        if kind == "jagged":
            return torch.nested.as_nested_tensor([x[:2], x[2:5]], layout=torch.jagged)

    class Odd(nn.Module):
        def forward(self, x):
            odd(x)           # returned, looked at by the recorder's hooks, not used further
            return x

    class Leaf(nn.Module):
        def forward(self, x):
            return odd(x)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 1)
            self.odd = Leaf() if where == "output" else nn.Identity()

        def forward(self, x):
            if where == "input":
                x = x.get_data() if hasattr(x, "get_data") else x.to_dense()
            h = torch.relu(self.a(x))
            self.odd(h)
            return self.b(h)

    torch.manual_seed(0)
    m = M()
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    with Recorder(path, _device_path=device_path) as rec:
        rec.watch(m, opt)
        for step in range(30):
            x = torch.randn(16, 4)
            loss = m(odd(x) if where == "input" else x).pow(2).mean()
            opt.zero_grad(); loss.backward(); opt.step()
            rec.log({"train/loss": loss.item()})
    print("done")
''')


@pytest.mark.parametrize("device_path", [False, True], ids=["cpu-path", "device-path"])
@pytest.mark.parametrize("kind,where", [("masked", "output"), ("masked", "input"), ("sparse_coo", "output"),
                                        ("sparse_csr", "output"), ("jagged", "output"), ("sparse_coo", "input")])
def test_odd_tensors_are_left_out_and_the_rest_is_recorded(tmp_path, kind, where, device_path):
    path = tmp_path / "run.h5"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, kind, where, str(path), "1" if device_path else "0"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "done" in proc.stdout
    assert "switched off" not in proc.stderr, proc.stderr[-2000:]
    with Run(path) as run:
        counts = run.instruments()
        assert counts.get("grads") == 30 and counts.get("acts", 0) >= 29
        assert "sys/instruments_off" not in run.scalar_names()


def test_instruments_switched_off_are_said_so_not_blamed_on_the_loop(tmp_path, monkeypatch):
    """When an instrument does fail, `info` and "not checked" say the instruments were switched
    off, instead of "no optimizer step was recorded: train at least a step"."""
    import torch

    from trainspect.analysis.advisor.coverage import coverage
    from trainspect.app.cli import main
    from trainspect.recorder import Recorder
    from trainspect.recorder.records import weights

    def broken(self, *args):
        raise RuntimeError("a kind of tensor the statistics do not know")

    monkeypatch.setattr(weights.Weights, "compute", broken)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    path = tmp_path / "off.h5"
    with pytest.warns(UserWarning, match="switched off"):
        with Recorder(path) as rec:
            rec.watch(model, opt)
            for _ in range(30):
                loss = model(torch.randn(8, 4)).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                rec.log({"train/loss": loss.item()})
    text = "\n".join(coverage(path).lines())
    assert "switched off" in text and "no optimizer step was recorded" not in text
    import io
    from contextlib import redirect_stdout
    out = io.StringIO()
    with redirect_stdout(out):
        main(["info", str(path)])
    assert "switched off at step 0" in out.getvalue() or "failed at step 0" in out.getvalue()
