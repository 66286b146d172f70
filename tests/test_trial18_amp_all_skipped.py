"""fp16 autocast + GradScaler whose forward overflows at every step (inputs x3e4): the scaler skipped
every optimizer step and its scale fell to 0, and nothing said so; "not checked" told a user who had
called watch() to call it, and a fix said "use a loss scaler" to a run using one (trial 18 U3)."""
from __future__ import annotations

import pytest

from trainspect.app.cli import main
from trainspect.recorder import Recorder


def _amp_run(path, seed, *, scale_inputs, steps=40):
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 4))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    try:
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
        with torch.autocast("cpu", dtype=torch.float16):
            model(torch.randn(2, 16))
    except (RuntimeError, TypeError, AttributeError) as exc:      # a torch without fp16 autocast on CPU
        pytest.skip(f"no float16 autocast on CPU: {exc}")
    g = torch.Generator().manual_seed(seed)
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for _ in range(steps):
            x = torch.randn(64, 16, generator=g) * scale_inputs
            y = torch.randint(0, 4, (64,), generator=g)
            with torch.autocast("cpu", dtype=torch.float16):
                loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(opt)
            scaler.update()
            rec.log({"train/loss": loss.item()})


def _out(capsys, *args) -> str:
    main([*map(str, args)])
    return capsys.readouterr().out


@pytest.mark.parametrize("seed", [0, 1])
def test_a_scaler_that_skipped_every_step_is_named(tmp_path, capsys, seed):
    path = tmp_path / "amp.h5"
    _amp_run(path, seed, scale_inputs=3e4)
    out = _out(capsys, "diagnose", path)
    assert "[nan_inf]" in out, out
    assert "the GradScaler skipped 40 of 40 optimizer steps" in out, out
    assert "the model never trained" in out and "bfloat16" in out, out
    assert "use a loss scaler" not in out, out
    assert "record with trainspect" not in out, out      # watch() was called
    assert "the GradScaler skipped every optimizer step recorded" in out, out
    info = _out(capsys, "info", path)
    assert "AMP:        the GradScaler skipped 40 of 40 optimizer steps; loss scale now " in info, info


@pytest.mark.parametrize("seed", [0, 1])
def test_a_healthy_fp16_run_stays_quiet(tmp_path, capsys, seed):
    path = tmp_path / "ok.h5"
    _amp_run(path, seed, scale_inputs=1.0)
    out = _out(capsys, "diagnose", path)
    assert "[nan_inf]" not in out and "GradScaler skipped" not in out, out
    assert "AMP:        the GradScaler skipped" in _out(capsys, "info", path)
