"""The advisor on Dropout(p=0.9) (sweep of 2026-12-06): the training loss stays high and noisy while
gradients, activations and the LR look normal, and the advisor said nothing (or "train longer");
a ReLU registered right after a Dropout saw the Dropout's zeros and was reported as dead units.
The recorder lists each Dropout's p at watch(); for older files p is read back from the Dropout's
output statistics against its input's (zeros and second moment, which must agree)."""
from __future__ import annotations

import numpy as np
import pytest
from trainspect.analysis import diagnose, open_run
from trainspect.analysis.advisor.dropout import STRONG_DROPOUT, dropout_rates
from trainspect.analysis.advisor.signals import Signals, extract
from trainspect.analysis.advisor.tables import as_table
from trainspect.analysis.run import ModuleInfo

from tests.scenario_runs import grid

pytestmark = pytest.mark.timeout(1800)
SEEDS = (0, 1)


@pytest.fixture(scope="module")
def runs(scenario_runs):
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    scenario_runs.ensure(grid(("dropout_ninety", "healthy_dropout"), seeds=SEEDS, threads=(1,)))
    return scenario_runs


def _diagnose(path):
    with open_run(path) as run:
        return diagnose(run)


def _record(path, model, seed, *, batch=64, steps=200):
    """Train ``model`` on digits with Adam 1e-3 and the scenario suite's recorder schedules."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from trainspect.recorder import Recorder

    from tests.scenario_kit import train
    from tests.scenarios import RECORDER_OPTIONS
    with Recorder(str(path), **RECORDER_OPTIONS) as rec:
        train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3), batch=batch, steps=steps, seed=seed)
    return str(path)


def _net(order, p, seed, bias=None):
    """64-128-10 MLP with one Dropout(p): "relu_dropout" (Linear, ReLU, Dropout) or "dropout_relu"
    (Linear, Dropout, ReLU); hidden biases set to ``bias`` if given."""
    import torch
    from torch import nn
    torch.manual_seed(90 + seed)
    mid = [nn.ReLU(), nn.Dropout(p)] if order == "relu_dropout" else [nn.Dropout(p), nn.ReLU()]
    model = nn.Sequential(nn.Linear(64, 128), *mid, nn.Linear(128, 10))
    if bias is not None:
        with torch.no_grad():
            model[0].bias.fill_(bias)
    return model


# ------------------------------------------------------------------ what the advisor says
@pytest.mark.parametrize("seed", SEEDS)
def test_dropout_ninety_is_named_with_its_p(runs, seed):
    found = _diagnose(runs.path("dropout_ninety", seed, 1))
    f = next((f for f in found if f.symptom == "strong_dropout"), None)
    assert f is not None, [f.symptom for f in found]
    assert f.severity == "warning"
    assert "dropout too strong" in f.title
    assert f.causes[0].id == "dropout_too_strong"
    assert f.fixes[0].id == "lower_dropout" and "lower dropout p (now ~0.9" in f.fixes[0].text, f.fixes[0].text
    assert sorted(f.layers) == ["2", "5"]
    assert "dead_units" not in [g.symptom for g in found]
    for g in found:      # a stalled or slow loss beside it is the dropout's doing, not the LR's
        if g.symptom in ("no_progress", "early_plateau", "slow_convergence"):
            assert g.causes[0].id == "dropout_too_strong" and g.fixes[0].id == "lower_dropout"


@pytest.mark.parametrize("seed", SEEDS)
def test_dropout_half_and_tenth_raise_nothing(runs, tmp_path, seed):
    for found in (_diagnose(runs.path("healthy_dropout", seed, 1)),
                  _diagnose(_record(tmp_path / "tenth.h5", _net("relu_dropout", 0.1, seed), seed))):
        assert not [f.symptom for f in found if f.severity != "info" or f.symptom == "strong_dropout"]


@pytest.mark.parametrize("p,batch", [(0.9, 8), (0.5, 4)])
@pytest.mark.parametrize("seed", SEEDS)
def test_a_dropouts_zeros_are_not_dead_relu_units(tmp_path, seed, p, batch):
    """Linear, Dropout, ReLU with small batches: whole units are 0 for the batch because the Dropout
    dropped them (p^batch); they were reported as dead ReLUs (bad init / LR too high)."""
    found = _diagnose(_record(tmp_path / "dr.h5", _net("dropout_relu", p, seed), seed, batch=batch))
    assert "dead_units" not in [f.symptom for f in found], [(f.symptom, f.title) for f in found]
    assert ("strong_dropout" in [f.symptom for f in found]) == (p >= STRONG_DROPOUT)


@pytest.mark.parametrize("seed", SEEDS)
def test_dead_relus_before_a_dropout_are_still_found(tmp_path, seed):
    found = _diagnose(_record(tmp_path / "dead.h5", _net("relu_dropout", 0.5, seed, bias=-10.0), seed))
    dead = next((f for f in found if f.symptom == "dead_units"), None)
    assert dead is not None and dead.layers == ["1"], [(f.symptom, f.layers) for f in found]


@pytest.mark.parametrize("order", ["relu_dropout", "dropout_relu"])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_p_is_read_back_from_the_recorded_statistics(tmp_path, order, p):
    path = _record(tmp_path / "p.h5", _net(order, p, 0), 0, steps=60)
    name = "2" if order == "relu_dropout" else "1"
    with open_run(path) as run:
        sig = extract(run)
        assert [(r.module, r.p, r.source) for r in dropout_rates(sig)] == [(name, p, "settings")]
        sig.meta = {}           # a file from before the recorder listed p: read back
        rates = dropout_rates(sig)
    assert [(r.module, r.source) for r in rates] == [(name, "read back")]
    assert abs(rates[0].p - p) < 0.03 and abs(rates[0].p_energy - p) < 0.05, rates


def _mnist_style(p, seed):
    """pytorch/examples' mnist Net in miniature (tests/scenarios.apart_dropout_net): no Dropout
    follows its input in registration order."""
    import torch

    from tests.scenarios import apart_dropout_net
    torch.manual_seed(70 + seed)
    return apart_dropout_net(p)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_strong_dropout_registered_away_from_its_input_is_named(tmp_path, seed):
    found = _diagnose(_record(tmp_path / "m.h5", _mnist_style(0.9, seed), seed))
    f = next((f for f in found if f.symptom == "strong_dropout"), None)
    assert f is not None, [(g.symptom, g.title) for g in found]
    assert sorted(f.layers) == ["dropout1", "dropout2"]
    assert "Dropout(p=0.9) as set at watch()" in f.evidence[0].text
    assert f.causes[0].id == "dropout_too_strong" and f.fixes[0].id == "lower_dropout"


@pytest.mark.parametrize("seed", SEEDS)
def test_a_usual_dropout_registered_away_from_its_input_raises_nothing(tmp_path, seed):
    found = _diagnose(_record(tmp_path / "m.h5", _mnist_style(0.25, seed), seed))
    assert not [f.symptom for f in found if f.severity != "info" or f.symptom == "strong_dropout"]


@pytest.mark.parametrize("seed", SEEDS)
def test_dead_relus_right_after_a_dropout_of_known_rate_are_found(tmp_path, seed):
    found = _diagnose(_record(tmp_path / "dead.h5", _net("dropout_relu", 0.3, seed, bias=-10.0), seed))
    dead = next((f for f in found if f.symptom == "dead_units"), None)
    assert dead is not None and dead.layers == ["2"], [(f.symptom, f.layers) for f in found]
    assert "its Dropout zeroes" in dead.evidence[0].text or "100% of units" in dead.evidence[0].text


# ------------------------------------------------------------------ the read-back on synthetic statistics
def _act_signals(types, z, mean, std, records=20):
    names = [str(i) for i in range(len(types))]
    sig = Signals(modules=[ModuleInfo(n, t) for n, t in zip(names, types)])
    steps = np.arange(records) * 5
    for key, row in (("act_frac_nonpos", z), ("act_mean", mean), ("act_std", std)):
        sig.layer[key] = as_table(np.tile(np.asarray(row, np.float32), (records, 1)), steps, names)
    return sig


def _dropout_out(p, z_in, mean_in, std_in):
    """A Dropout(p)'s output statistics for an input with these (exact expectations)."""
    q_out = (std_in ** 2 + mean_in ** 2) / (1 - p)
    return p + (1 - p) * z_in, mean_in, np.sqrt(q_out - mean_in ** 2)


@pytest.mark.parametrize("p", [0.0, 0.3, 0.75, 0.85, 0.95])
def test_both_estimates_give_p_for_a_dropout_fed_by_the_module_before_it(p):
    z, m, s = _dropout_out(p, 0.5, 0.2, 0.3)
    sig = _act_signals(["Linear", "ReLU", "Dropout", "Linear"], [0.5, 0.5, z, 0.4], [0, 0.2, m, 0], [1, 0.3, s, 1])
    (r,) = dropout_rates(sig)
    assert (r.module, r.input) == ("2", "1")
    assert r.p == pytest.approx(p, abs=1e-5) and r.p_energy == pytest.approx(p, abs=1e-5)
    assert r.strong == (p >= STRONG_DROPOUT)


def test_no_rate_when_the_module_before_is_not_its_input():
    # zeros say 0.9 against the module before, the second moment 0.2: fed by something else
    sig = _act_signals(["LayerNorm", "Dropout2d"], [0.5, 0.95], [0.0, 0.0], [1.0, np.sqrt(1 / 0.8)])
    assert dropout_rates(sig) == []
    sig = _act_signals(["Dropout", "Linear"], [0.95, 0.5], [0.0, 0.0], [3.0, 1.0])    # first leaf: no input
    assert dropout_rates(sig) == []
    sig = _act_signals(["ReLU", "AlphaDropout"], [0.5, 0.95], [0.2, 0.2], [0.3, 0.95])   # no zeros to read
    assert dropout_rates(sig) == []


def test_a_strong_dropout_that_never_runs_is_not_named(tmp_path):
    """A Dropout(0.9) defined and never called (a leftover of an earlier model) drops nothing."""
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = _net("relu_dropout", 0.1, 0)
            self.unused = nn.Dropout(0.9)

        def forward(self, x):
            return self.body(x)

    found = _diagnose(_record(tmp_path / "u.h5", Net(), 0))
    assert "strong_dropout" not in [f.symptom for f in found], [(f.symptom, f.title) for f in found]


@pytest.mark.parametrize("seed", SEEDS)
def test_dead_relus_behind_a_high_rate_dropout_are_judged_by_whole_batch_death(tmp_path, seed):
    """Behind Dropout(0.7) a ReLU whose units are nearly all dead was not judged at all (only
    p <= 0.5 was): its dead units alone decide now, at 90 % (the Dropout alone leaves p**B)."""
    import torch
    model = _net("dropout_relu", 0.7, seed)
    with torch.no_grad():
        model[0].bias[:120].fill_(-10.0)      # 120 of 128 units dead from the start
    found = _diagnose(_record(tmp_path / "hi.h5", model, seed))
    dead = next((f for f in found if f.symptom == "dead_units"), None)
    assert dead is not None and dead.layers == ["2"], [(f.symptom, f.layers) for f in found]
    assert "threshold 90% dead units" in dead.evidence[0].text


@pytest.mark.parametrize("seed", SEEDS)
def test_a_relu_applied_before_the_dropout_registered_before_it_is_judged_as_any_relu(tmp_path, seed):
    """fc1, drop, act registered, forward drop(act(fc1(x))): the Dropout's statistics say the ReLU
    feeds it, so none of the ReLU's zeros are the Dropout's (they were taken off its share <= 0)."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.drop, self.act, self.fc2 = nn.Linear(64, 128), nn.Dropout(0.5), nn.ReLU(), nn.Linear(128, 10)

        def forward(self, x):
            return self.fc2(self.drop(self.act(self.fc1(x))))

    torch.manual_seed(seed)
    model = Net()
    with torch.no_grad():
        model.fc1.bias.fill_(-1.5)
    found = _diagnose(_record(tmp_path / "order.h5", model, seed))
    dead = next((f for f in found if f.symptom == "dead_units"), None)
    assert dead is not None and dead.layers == ["act"], [(f.symptom, f.layers) for f in found]
    assert "Dropout" not in dead.evidence[0].text


def _attention(p, seed):
    """Digits as 8 tokens of 8 pixels through one nn.MultiheadAttention(dropout=p): its dropout is
    no module of its own (the attention is the leaf), so only its setting says how much it drops."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(8, 32)
            self.attn = nn.MultiheadAttention(32, 4, dropout=p, batch_first=True)
            self.head = nn.Linear(32 * 8, 10)

        def forward(self, x):
            h = self.embed(x.reshape(-1, 8, 8))
            a, _ = self.attn(h, h, h, need_weights=False)
            return self.head((h + a).flatten(1))

    torch.manual_seed(50 + seed)
    return Net()


@pytest.mark.parametrize("seed", SEEDS)
def test_a_strong_attention_dropout_is_named(tmp_path, seed):
    found = _diagnose(_record(tmp_path / "a.h5", _attention(0.9, seed), seed))
    f = next((f for f in found if f.symptom == "strong_dropout"), None)
    assert f is not None and f.layers == ["attn"], [(g.symptom, g.title) for g in found]
    assert "attention dropout 0.9" in f.evidence[0].text
    quiet = _diagnose(_record(tmp_path / "q.h5", _attention(0.1, seed), seed))
    assert "strong_dropout" not in [g.symptom for g in quiet]


def test_odd_dropout_settings_are_left_out_and_never_break_watch(tmp_path):
    """A Dropout subclass whose p is a property that raises, a p outside [0, 1] or not a number:
    watch() goes on, the module is listed without p."""
    import torch
    from torch import nn
    from trainspect.recorder import Recorder

    class Scheduled(nn.Dropout):
        @property
        def p(self):
            raise RuntimeError("schedule not started")

        @p.setter
        def p(self, value):
            pass

    class Tensorial(nn.Dropout):
        def __init__(self):
            super().__init__()
            self.p = torch.tensor(0.3)

    model = nn.Sequential(nn.Linear(4, 4), Scheduled(), Tensorial(), nn.Dropout(0.2), nn.Linear(4, 1))
    model[3].p = 1.5          # set after construction: out of range
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Recorder(tmp_path / "odd.h5") as rec:
        rec.watch(model, opt)       # (a forward would raise in Scheduled itself: not run)
        rec.log({"train/loss": 1.0})
    with open_run(tmp_path / "odd.h5") as run:
        listed = {m["name"]: m for m in run.meta["model"]["modules"]}
    assert [n for n, m in listed.items() if "p" in m] == []
    assert {"1", "2", "3"} <= set(listed)


def test_a_strong_dropout_is_named_in_a_run_without_activation_records(tmp_path):
    """stats_every=0 (or a torch.compile'd model): no activation records, but p listed at watch().
    The advisor raised KeyError('act_frac_nonpos') on such a run; the report must render too."""
    import torch
    from trainspect.app.report import export_report
    from trainspect.recorder import Recorder

    from tests.scenario_kit import digits, train
    torch.manual_seed(3)
    model = _net("relu_dropout", 0.9, 0)
    with Recorder(tmp_path / "na.h5", stats_every=0) as rec:
        train(rec, model, torch.optim.Adam(model.parameters(), lr=1e-3), data=digits(), steps=150, seed=0)
    found = _diagnose(tmp_path / "na.h5")
    f = next((f for f in found if f.symptom == "strong_dropout"), None)
    assert f is not None and f.layers == ["2"], [(g.symptom, g.title) for g in found]
    assert f.first_step == 0 and f.last_step == 149
    out = export_report([tmp_path / "na.h5"], tmp_path / "na.html")
    assert "dropout too strong" in out.read_text(encoding="utf-8")
