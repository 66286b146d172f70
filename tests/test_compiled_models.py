"""torch.compile'd models as real training code uses them: nanoGPT compiles and then wraps in DDP
(``DDP(torch.compile(model))``), and a script may compile after ``watch()``.

Found on the old code: DDP(compile(model)) was not seen as compiled, so the activation hooks
went into compiled code and dynamo recompiled to its limit on the first statistics step; the
layer names carried ``module._orig_mod.`` (a run did not compare with the same model run plain);
a model compiled after watch() labelled every ``log(step=None)`` after the step one step late,
with no word that activation statistics were gone.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch._dynamo
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from trainspect.analysis import open_run
from trainspect.recorder import Recorder

torch.set_num_threads(1)
STEPS = 12


def net():
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))


def compiled(model):
    # the eager backend: dynamo traces the hooks as inductor would, without a C++ compile
    return torch.compile(model, backend="eager", fullgraph=True)


@pytest.fixture
def no_recompiles():
    # config.patch, not monkeypatch: pytest 9 undoes a module attribute it did not find in the
    # module's __dict__ by deleting it, and dynamo's config options live elsewhere
    torch._dynamo.reset()
    with torch._dynamo.config.patch(error_on_recompile=True):
        yield
    torch._dynamo.reset()


@pytest.fixture
def one_rank_group(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def train(path, seed, wrap, log_before_step=False, **rec_kw):
    """A seeded classifier; ``wrap(model)`` -> (module the loop calls, module given to watch())."""
    torch.manual_seed(seed)
    model = net()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    data = torch.Generator().manual_seed(seed)
    losses = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(path, stats_every=1, **rec_kw) as rec:
            called, watched = wrap(model)
            rec.watch(watched, opt)
            if not isinstance(called, nn.Module):   # compiled after watch()
                called = called()
            for _ in range(STEPS):
                x, y = torch.randn(16, 6, generator=data), torch.randint(0, 3, (16,), generator=data)
                loss = F.cross_entropy(called(x), y)
                loss.backward()
                if log_before_step:
                    rec.log({"train/loss": loss})
                opt.step()
                opt.zero_grad()
                if not log_before_step:
                    rec.log({"train/loss": loss})
                losses.append(float(loss))
    return open_run(path), losses, [str(w.message) for w in caught]


def plain(model):
    return model, model


def compile_then_watch(model):
    c = compiled(model)
    return c, c


def watch_then_compile(model):
    return (lambda: compiled(model)), model     # compiled after watch()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("log_before_step", [False, True], ids=["log-after-step", "log-before-step"])
def test_a_model_compiled_after_watch_labels_losses_with_their_step(tmp_path, no_recompiles, seed, log_before_step):
    run, losses, caught = train(tmp_path / "late.h5", seed, watch_then_compile, log_before_step)
    loss = run.scalar("train/loss")
    assert list(loss.steps) == list(range(STEPS))        # old code: 1..12 when logged after the step
    np.testing.assert_allclose(loss.values, losses, rtol=1e-6)
    assert list(run.layer_stat("grad_norm").steps) == list(range(STEPS))
    assert sum("compile'd after watch()" in m for m in caught) == 1, caught
    assert not run.layer_stat("act_std").steps.size       # said so: no activation statistics


@pytest.mark.parametrize("seed", [0, 1])
def test_a_compiled_model_records_the_layer_names_of_the_plain_model(tmp_path, no_recompiles, seed):
    base, _, _ = train(tmp_path / "plain.h5", seed, plain)
    run, _, _ = train(tmp_path / "compiled.h5", seed, compile_then_watch)
    names = base.layer_stat("grad_norm").layers
    assert names[0] == "0.weight"
    assert run.layer_stat("grad_norm").layers == names
    assert [m.name for m in run.modules] == [m.name for m in base.modules]
    np.testing.assert_allclose(run.layer_stat("grad_norm").values, base.layer_stat("grad_norm").values, rtol=1e-4)


def test_ddp_around_a_compiled_model_is_seen_as_compiled(tmp_path, no_recompiles, one_rank_group):
    """nanoGPT's torchrun path; the old code added leaf hooks inside the compiled module and
    error_on_recompile raised out of the first statistics step's forward."""
    base, _, _ = train(tmp_path / "plain.h5", 0, plain)
    run, _, caught = train(tmp_path / "ddp.h5", 0, ddp_of_compiled)
    assert len(run.scalar("train/loss").values) == STEPS
    assert run.layer_stat("grad_norm").layers == base.layer_stat("grad_norm").layers
    assert [m.name for m in run.modules] == [m.name for m in base.modules]
    assert any("not recorded for a torch.compile'd model" in m for m in caught), caught


def ddp_of_compiled(model):
    d = DistributedDataParallel(compiled(model))
    return d, d


class Holder(nn.Module):
    """A user's own wrapper with an attribute named like DDP's: its name is kept."""

    def __init__(self, model):
        super().__init__()
        self.module = model

    def forward(self, x):
        return self.module(x)


def test_only_known_wrappers_lose_their_attribute_name(tmp_path):
    run, _, _ = train(tmp_path / "holder.h5", 0, lambda m: plain(Holder(m)))
    assert run.layer_stat("grad_norm").layers[0] == "module.0.weight"


@pytest.mark.parametrize("seed", [0, 1])
def test_a_compiled_train_step_does_not_make_dynamo_recompile_the_recorder(tmp_path, no_recompiles, seed):
    """torch.compile around forward, backward and optimizer.step() (the compiled-optimizer
    recipe): dynamo traced the recorder's step and backward hooks and recompiled them at each
    new step count, to its limit of 8 (error_on_recompile raises here on the old code)."""
    torch.manual_seed(seed)
    model = net()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)

    @torch.compile(backend="eager")
    def train_step(x, y):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        norms = torch.stack([p.grad.norm() for p in model.parameters()])
        opt.step()
        opt.zero_grad()
        return loss, norms

    data = torch.Generator().manual_seed(seed)
    expected = []
    with Recorder(tmp_path / "step.h5", stats_every=1) as rec:
        rec.watch(model, opt)
        for _ in range(STEPS):
            loss, norms = train_step(torch.randn(16, 6, generator=data), torch.randint(0, 3, (16,), generator=data))
            rec.log({"train/loss": loss})
            expected.append(norms.numpy())
    run = open_run(tmp_path / "step.h5")
    grads = run.layer_stat("grad_norm")
    assert list(grads.steps) == list(range(STEPS))
    np.testing.assert_allclose(grads.values, expected, rtol=1e-5)
    assert list(run.scalar("train/loss").steps) == list(range(STEPS))


def test_the_advisor_says_why_a_compiled_run_has_no_activation_statistics(tmp_path, no_recompiles):
    """It told nanoGPT's users to "record with trainspect (rec.watch(model, optimizer))", which
    they had done."""
    from trainspect.analysis.advisor.coverage import coverage

    run, _, _ = train(tmp_path / "compiled.h5", 0, compile_then_watch)
    gaps = {g.instrument: g for g in coverage(run).gaps}
    assert "torch.compile" in gaps["activations"].text and "rec.watch" not in gaps["activations"].text


def test_the_advisor_says_stats_every_0_turned_activation_statistics_off(tmp_path):
    from trainspect.analysis.advisor.coverage import coverage

    model = net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Recorder(tmp_path / "off.h5", stats_every=0) as rec:
        rec.watch(model, opt)
        for _ in range(3):
            F.cross_entropy(model(torch.randn(4, 6)), torch.tensor([0, 1, 2, 0])).backward()
            opt.step()
            opt.zero_grad()
    gaps = {g.instrument: g for g in coverage(tmp_path / "off.h5").gaps}
    assert "stats_every=0" in gaps["activations"].text
