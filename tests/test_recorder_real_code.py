"""What real training code does that a plain loop does not: clipping, optimizer wrappers,
gradient accumulation, GradScaler skips, activations applied as functions, 1-based steps."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from trainspect.analysis import open_run
from trainspect.analysis.advisor import diagnose
from trainspect.recorder import Recorder
from trainspect.recorder import format as fmt

torch.set_num_threads(1)


def deep_mlp(seed, std=None, depth=6, width=32):
    torch.manual_seed(seed)
    layers = []
    for _ in range(depth):
        lin = nn.Linear(width, width)
        if std is not None:
            nn.init.normal_(lin.weight, std=std)
        layers += [lin, nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 1))


def clipped_run(path, seed, std, steps=60, max_norm=1.0, device_path=False):
    """SGD with clip_grad_norm_ as nanoGPT/HF/Lightning do; returns what the test saw itself."""
    model = deep_mlp(seed, std)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    returned, layer_norms = [], []
    with Recorder(path, stats_every=5, _device_path=device_path) as rec:
        rec.watch(model, opt)
        for _ in range(steps):
            x, y = torch.randn(64, 32), torch.randn(64, 1)
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            layer_norms.append([p.grad.norm().item() for p in model.parameters()])
            returned.append(float(nn.utils.clip_grad_norm_(model.parameters(), max_norm)))
            opt.step()
            rec.log({"train/loss": loss.item()})
    return np.array(returned), np.array(layer_norms)


@pytest.mark.parametrize("device_path", [False, True], ids=["cpu-fast-path", "device-path"])
@pytest.mark.parametrize("seed", [0, 1])
def test_grad_norms_are_recorded_before_clipping_and_the_clipped_norm_beside_them(tmp_path, seed, device_path):
    returned, layer_norms = clipped_run(tmp_path / "run.h5", seed, std=None, steps=12, max_norm=0.01,
                                        device_path=device_path)
    assert (returned > 0.01).all()          # every step was clipped
    with open_run(tmp_path / "run.h5") as run:
        total = run.scalar(fmt.SYS_GRAD_NORM)
        post = run.scalar(fmt.SYS_GRAD_NORM_POST_CLIP)
        per_layer = run.layer_stat("grad_norm")
        assert total.steps.tolist() == post.steps.tolist() == per_layer.steps.tolist() == list(range(12))
        np.testing.assert_allclose(total.values, returned, rtol=1e-5)   # what clip_grad_norm_ returned
        np.testing.assert_allclose(per_layer.values, layer_norms, rtol=1e-5)
        np.testing.assert_allclose(post.values, 0.01, rtol=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_clipped_explosion_is_still_diagnosed_as_exploding(tmp_path, seed):
    # Gradients 1e7..1e8 times the clip threshold: every step is clipped to norm 1.0.
    returned, _ = clipped_run(tmp_path / "run.h5", seed, std=1.0)
    assert np.median(returned) > 1e6
    symptoms = {f.symptom for f in diagnose(tmp_path / "run.h5")}
    assert "exploding_gradients" in symptoms


def test_gradient_accumulation_records_the_accumulated_gradient_once_per_step(tmp_path):
    model = deep_mlp(0, depth=2)
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    expected = []
    with Recorder(tmp_path / "run.h5") as rec:
        rec.watch(model, opt)
        for step in range(5):
            opt.zero_grad()
            for _ in range(3):
                F.mse_loss(model(torch.randn(8, 32)), torch.randn(8, 1)).backward()
            expected.append(float(nn.utils.clip_grad_norm_(model.parameters(), 1e-3)))
            opt.step()
    with open_run(tmp_path / "run.h5") as run:
        total = run.scalar(fmt.SYS_GRAD_NORM)
        assert total.steps.tolist() == list(range(5))
        np.testing.assert_allclose(total.values, expected, rtol=1e-5)


class HooklessWrapper:
    """Like accelerate's AcceleratedOptimizer: no _optimizer_step_pre_hooks of its own."""

    def __init__(self, optimizer):
        self.optimizer = optimizer

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    def zero_grad(self, set_to_none=True):
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure=None):
        self.optimizer.step(closure)


def _wrapped_training(path, wrap):
    model = deep_mlp(0, depth=2)
    opt = wrap(torch.optim.Adam(model.parameters(), lr=1e-3))
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for step in range(4):
            loss = F.mse_loss(model(torch.randn(8, 32)), torch.randn(8, 1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
    with open_run(path) as run:
        assert run.layer_stat("grad_norm").steps.tolist() == [0, 1, 2, 3]
        assert run.scalar(fmt.SYS_LR).values.tolist() == [1e-3] * 4
        assert run.scalar("train/loss").steps.tolist() == [0, 1, 2, 3]


def test_an_optimizer_wrapper_without_step_hooks_is_watched_through(tmp_path, recwarn):
    _wrapped_training(tmp_path / "run.h5", HooklessWrapper)
    assert not [w for w in recwarn if "trainspect" in str(w.message)]


def test_accelerates_optimizer_wrapper_does_not_crash_watch(tmp_path):
    accelerate = pytest.importorskip("accelerate")
    accelerator = accelerate.Accelerator(cpu=True)
    model = deep_mlp(0, depth=2)
    model, opt = accelerator.prepare(model, torch.optim.Adam(model.parameters(), lr=1e-3))
    assert type(opt).__name__ == "AcceleratedOptimizer"
    with Recorder(tmp_path / "run.h5") as rec:
        rec.watch(model, opt)
        for _ in range(4):
            loss = F.mse_loss(model(torch.randn(8, 32)), torch.randn(8, 1))
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(model.parameters(), 1e-6)
            opt.step()
            opt.zero_grad()
            rec.log({"train/loss": loss.item()})
    with open_run(tmp_path / "run.h5") as run:
        assert run.layer_stat("grad_norm").steps.tolist() == [0, 1, 2, 3]
        assert (run.scalar(fmt.SYS_GRAD_NORM).values > 1e-3).all()          # before clipping
        assert (run.scalar(fmt.SYS_GRAD_NORM_POST_CLIP).values < 2e-6).all()


class NoHooksAnywhere:
    def __init__(self, params):
        self.param_groups = [{"params": list(params), "lr": 0.1}]

    def step(self):
        with torch.no_grad():
            for p in self.param_groups[0]["params"]:
                p -= 0.1 * p.grad


def test_an_optimizer_with_no_hooks_anywhere_falls_back_to_log_calls(tmp_path):
    model = deep_mlp(0, depth=1)
    opt = NoHooksAnywhere(model.parameters())
    with pytest.warns(UserWarning, match="no step hooks"):
        with Recorder(tmp_path / "run.h5") as rec:
            rec.watch(model, opt)
            for _ in range(3):
                model.zero_grad()
                loss = F.mse_loss(model(torch.randn(8, 32)), torch.randn(8, 1))
                loss.backward()
                opt.step()
                rec.log({"train/loss": loss.item()})
    with open_run(tmp_path / "run.h5") as run:
        assert run.layer_stat("grad_norm").steps.tolist() == [0, 1, 2]


def test_set_step_lines_records_up_with_a_one_based_framework_counter(tmp_path):
    model = deep_mlp(0, depth=1)
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    with Recorder(tmp_path / "run.h5") as rec:
        rec.watch(model, opt)
        for global_step in range(1, 4):      # HF: global_step counts completed steps
            rec.set_step(global_step)
            loss = F.mse_loss(model(torch.randn(8, 32)), torch.randn(8, 1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()}, step=global_step)
    with open_run(tmp_path / "run.h5") as run:
        assert run.layer_stat("grad_norm").steps.tolist() == [1, 2, 3]
        assert run.scalar("train/loss").steps.tolist() == [1, 2, 3]


# ---------------------------------------------------------------- GradScaler
def scaler_run(path, seed, steps=30):
    """init_scale far too high: the scaler skips the first steps, as in fp16 warm-up."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 127, growth_interval=1000)
    skipped, scales, applied = [], [], {}
    with Recorder(path, stats_every=5) as rec:
        rec.watch(model, opt, scaler=scaler)
        for step in range(steps):
            x, y = torch.randn(32, 8) * 100, torch.randn(32, 1)
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            scaler.scale(loss).backward()
            scales.append(scaler.get_scale())
            scaler.unscale_(opt)
            norm = float(nn.utils.clip_grad_norm_(model.parameters(), 1e9))
            scaler.step(opt)
            scaler.update()
            if scaler.get_scale() < scales[-1]:
                skipped.append(step)
            else:
                applied[step] = norm
            rec.log({"train/loss": loss.item()}, step=step)
    return skipped, scales, applied


@pytest.mark.parametrize("seed", [0, 1])
def test_gradscaler_skips_are_recorded_and_steps_stay_aligned(tmp_path, seed):
    skipped, scales, applied = scaler_run(tmp_path / "run.h5", seed)
    assert 5 <= len(skipped) < 30 and skipped[:5] == [0, 1, 2, 3, 4]   # the warm-up skips
    with open_run(tmp_path / "run.h5") as run:
        assert run.scalar(fmt.SYS_AMP_SKIPPED).steps.tolist() == skipped
        grads = run.layer_stat("grad_norm")
        assert grads.steps.tolist() == sorted(applied)               # the user's step numbers
        total = run.scalar(fmt.SYS_GRAD_NORM)
        np.testing.assert_allclose(total.values, [applied[s] for s in sorted(applied)], rtol=1e-5)  # unscaled
        assert run.scalar(fmt.SYS_LOSS_SCALE).values.tolist() == scales
        assert run.scalar(fmt.SYS_LR).steps.tolist() == sorted(applied)
    assert "nan_inf" not in {f.symptom for f in diagnose(tmp_path / "run.h5")}


# ---------------------------------------------------------------- functional activations
class ModuleReLU(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))

    def forward(self, x):
        return self.net(x)


class FunctionalReLU(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(16, 64), nn.Linear(64, 64), nn.Linear(64, 3)

    def forward(self, x):
        return self.out(F.relu(self.fc2(F.relu(self.fc1(x)))))


def train_classifier(path, model, seed, dead_bias=None, steps=60):
    torch.manual_seed(seed)
    hidden = [m for m in model.modules() if isinstance(m, nn.Linear)][1]
    if dead_bias is not None:                  # plant the fault: most units of layer 2 never fire
        with torch.no_grad():
            hidden.bias[:56] = dead_bias
    w = torch.randn(16, 3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with Recorder(path, stats_every=5) as rec:
        rec.watch(model, opt)
        for _ in range(steps):
            x = torch.randn(64, 16)
            loss = F.cross_entropy(model(x), (x @ w).argmax(1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
    return {f.symptom: f for f in diagnose(path)}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("style", [ModuleReLU, FunctionalReLU], ids=["nn.ReLU", "F.relu"])
def test_planted_dead_relus_are_found_in_module_and_functional_style(tmp_path, seed, style):
    torch.manual_seed(seed)
    found = train_classifier(tmp_path / "dead.h5", style(), seed, dead_bias=-50.0)
    assert "dead_units" in found
    # the ReLU behind the second Linear, or (functional style) the second Linear itself
    assert found["dead_units"].layers == (["net.3"] if style is ModuleReLU else ["fc2"])
    torch.manual_seed(seed)
    healthy = train_classifier(tmp_path / "ok.h5", style(), seed)
    assert "dead_units" not in healthy
