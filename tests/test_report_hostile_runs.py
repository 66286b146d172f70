"""Ordinary runs that took the report down: a traceback and no report file."""
from __future__ import annotations

import h5py
import pytest
import torch
from trainspect.app.cli import main
from trainspect.recorder import Recorder
from trainspect.recorder import format as fmt

from tests.fixtures_runs import make_run


@pytest.mark.parametrize("units, inputs", [(16, 8), (64, 4), (8, 16)])
def test_a_weight_snapshot_with_more_units_than_inputs_is_drawn(tmp_path, units, inputs):
    """Constant-initialised weights (what symmetric_weights flags): the snapshot figure of the
    finding drew its matrix transposed and indexed past its labels when rows > columns."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(inputs, units), torch.nn.Tanh(), torch.nn.Linear(units, 2))
    for p in model.parameters():
        torch.nn.init.constant_(p, 0.05)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(256, inputs), torch.randint(0, 2, (256,))
    with Recorder(tmp_path / "sym.h5", snapshot_every=10) as rec:
        rec.watch(model, opt)
        for _ in range(60):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"loss": loss.item()})
    out = tmp_path / "r.html"
    assert main(["report", str(tmp_path / "sym.h5"), "-o", str(out), "-q"]) == 0
    page = out.read_text()
    assert "symmetric_weights" in page and "weights of 0.weight" in page


def test_a_start_time_no_clock_shows_leaves_the_report_and_the_comparison_readable(tmp_path, capsys):
    """meta start_time 1e308 (a float, so the reader's type check lets it through): an
    OverflowError failed the report, and `compare` of a whole sweep with it."""
    path = make_run(tmp_path / "odd.h5", n_steps=50, n_layers=2)
    with h5py.File(path, "r+") as f:
        meta = fmt.decode_meta(f[fmt.META][()])
        meta["start_time"] = 1e308
        del f[fmt.META]
        f.create_dataset(fmt.META, data=fmt.encode_meta(meta))
    make_run(tmp_path / "fine.h5", n_steps=50, n_layers=2)
    assert main(["report", str(path), "-o", str(tmp_path / "r.html"), "-q"]) == 0
    assert main(["compare", str(tmp_path)]) == 0
    assert "Traceback" not in capsys.readouterr().err
