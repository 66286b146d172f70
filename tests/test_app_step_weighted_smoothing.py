"""Smoothing means one window in *steps* for every curve of the scalar panel.

The EMA runs per point: with one weight for every curve a validation loss logged every 100
steps beside a training loss logged every step was averaged over 100x more steps, and its bold
curve lagged far behind its values (it hid where the validation loss turned up: overfitting).
A curve logged 2**k times less often than the panel's densest curve now gets the per-point
weight w ** 2**k; the densest curve keeps w exactly (offscreen Qt, real run files)."""
import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from trainspect.app import lod
from trainspect.app.lod import Envelope, ema
from trainspect.recorder.h5file import RunFileWriter

from tests.gui_helpers import open_runs

WAIT_MS = 30_000      # generous: a loaded machine only makes the background reads slower
W = 0.9               # the slider's weight: a lag of ~9 points
N_STEPS = 4000        # train/loss every step: every point held (Envelope.CAPACITY = 4096)
VAL_EVERY = 100
TURN = 2000           # the validation loss is lowest here, then rises (overfitting begins)


def scalar_file(path, columns: dict, status="finished"):
    """A run file with the given metrics {name: (steps, values)} and no layer tables."""
    w = RunFileWriter(path)
    w.start({"name": path.stem})
    w.add_tags(list(columns))
    for tag, (steps, values) in enumerate(columns.values()):
        steps = np.asarray(steps, dtype=np.int64)
        w.append_scalars(steps, np.full(len(steps), tag), np.asarray(values, dtype=np.float64), 1e9 + steps * 0.1)
    w.close(status=status, last_step=max(int(np.max(s)) for s, _ in columns.values()))
    return path


def val_curve(steps):
    """Drops steeply from 4 to 1 at TURN, then climbs back to ~1.6."""
    steps = np.asarray(steps, np.float64)
    return np.where(steps <= TURN, 4.0 - 3.0 * steps / TURN, 1.0 + 0.3 * (steps - TURN) / 1000.0)


def columns(loss_every: int = 1, with_acc: bool = True) -> dict:
    rng = np.random.default_rng(0)
    s = np.arange(0, N_STEPS, loss_every)
    cols = {"train/loss": (s, 2.0 * np.exp(-s / 1500.0) + 0.3 + 0.2 * rng.standard_normal(len(s)))}
    v = np.arange(0, N_STEPS, VAL_EVERY)
    cols["val/loss"] = (v, val_curve(v))
    if with_acc:   # every 4 steps: 4x the dense gap -> weight W ** 4
        a = np.arange(0, N_STEPS, 4)
        cols["eval/acc"] = (a, 1.0 - np.exp(-a / 800.0) + 0.05 * rng.standard_normal(len(a)))
    return cols


def bold_line(curve):
    """(x, y) of the line drawn in the run's colour: the EMA over the faint raw curve, or the
    raw curve itself where the curve is drawn raw."""
    if curve.smooth.isVisible():
        return curve.smooth.getOriginalDataset()
    assert curve.raw.opts["pen"].color().alpha() == 255      # drawn raw: not the faint pen
    return curve.raw.getOriginalDataset()


def drawn(panel, metric, entry):
    curve = panel.curves.get((metric, entry.key))
    return curve is not None and not curve.rebuild and curve.raw.getOriginalDataset()[0] is not None


def idle(window) -> bool:
    """No background read in flight (the plots' reads land on the GUI thread)."""
    return not window.runs.io.outstanding()


def show(window, qtbot, entries, metrics):
    window.view.set_smoothing(W)
    window.view.set_metrics(metrics)
    panel = window.scalars
    qtbot.waitUntil(lambda: idle(window) and all(drawn(panel, m, e) for e in entries for m in metrics),
                    timeout=WAIT_MS)
    return panel


# ---------------------------------------------------------------- the rule


def test_weight_rule_keeps_the_dense_weight_and_follows_the_gap_in_steps():
    step_weight, gap_exponent = lod.step_weight, lod.gap_exponent
    assert step_weight(W, 0) == W and step_weight(W, None) == W       # the densest curve: as before
    assert step_weight(0.6, 0) == 0.6
    assert step_weight(W, 1) == pytest.approx(W ** 2)                   # every 2 steps
    assert step_weight(W, 2) == pytest.approx(W ** 4)
    assert step_weight(W, 7) == 0.0            # W ** 128 < 1 %: drawn raw (every 100 steps)
    assert step_weight(0.0, 3) == 0.0
    # Exponents: log2 of the gap ratio, rounded; never below 0.
    assert gap_exponent(1.0, 1.0) == 0 and gap_exponent(1.02, 1.0) == 0
    assert gap_exponent(2.0, 1.0) == 1 and gap_exponent(4.0, 1.0) == 2
    assert gap_exponent(100.0, 1.0) == 7 and gap_exponent(500.0, 1.0) == 9
    assert gap_exponent(0.5, 1.0) == 0                                  # denser than the reference
    assert gap_exponent(None, 1.0) is None and gap_exponent(3.0, None, previous=2) == 2
    # Hysteresis: a gap hovering near a midpoint keeps the exponent it had (a live run does not
    # smooth a long series anew, a read of the file, whenever its mean gap wobbles).
    assert gap_exponent(1.45, 1.0) == 1 and gap_exponent(1.45, 1.0, previous=0) == 0
    assert gap_exponent(1.8, 1.0, previous=0) == 1
    assert gap_exponent(2.9, 1.0, previous=1) == 1 and gap_exponent(2.9, 1.0) == 2


def test_envelope_knows_the_mean_step_gap_even_when_it_holds_buckets():
    steps = np.arange(0, 100_000, 100)
    for capacity in (None, 64):          # every point held, and buckets of many points
        env = Envelope(0.5, capacity=capacity)
        for a in range(0, len(steps), 300):   # appended in pieces, as a live run is read
            s = steps[a:a + 300]
            env.extend(np.arange(a, a + len(s)), s, 1e9 + s, np.sin(s))
        assert env.exact == (capacity is None)
        assert env.step_gap() == pytest.approx(100.0)
    assert Envelope(0.5).step_gap() is None
    one_step = Envelope(0.5)
    one_step.extend([0, 1], [7, 7], [0.0, 0.0], [1.0, 2.0])
    assert one_step.step_gap() is None           # all at one step: says nothing


# ---------------------------------------------------------------- through the widgets


def test_sparse_validation_curve_follows_its_values_and_dense_loss_is_unchanged(window, tmp_path, qtbot):
    cols = columns()
    entry = open_runs(window, [scalar_file(tmp_path / "overfit.h5", cols)])[0]
    panel = show(window, qtbot, [entry], ["train/loss", "val/loss", "eval/acc"])

    # The dense training loss: the slider's weight, the very curve it had before.
    loss = panel.curves[("train/loss", entry.key)]
    assert loss.env.weight == W and loss.smooth.isVisible()
    np.testing.assert_array_equal(loss.smooth.getOriginalDataset()[1], ema(cols["train/loss"][1], W)[0])

    # The validation loss (every 100 steps): its bold line ends at its last value and is lowest
    # where it turns. With the per-point weight (a window of ~900 steps) it ended 0.11 below the
    # last value, sat at 1.96 where the values reached 1.0, and was lowest at step 3300, 1300
    # steps after overfitting began.
    vs, vv = cols["val/loss"]
    x, y = bold_line(panel.curves[("val/loss", entry.key)])
    assert x[-1] == vs[-1]
    assert y[-1] == pytest.approx(vv[-1], abs=0.02 * (vv.max() - vv.min()))
    assert abs(x[np.argmin(y)] - TURN) <= VAL_EVERY
    assert np.max(np.abs(y - vv)) < 0.05       # it sat up to 0.96 above its values

    # Every 4 steps: W ** 4 per point, the same window in steps as the dense loss's.
    acc = panel.curves[("eval/acc", entry.key)]
    assert acc.env.weight == pytest.approx(W ** 4) and acc.smooth.isVisible()
    np.testing.assert_allclose(acc.smooth.getOriginalDataset()[1], ema(cols["eval/acc"][1], W ** 4)[0], rtol=1e-12)

    # The readout's smoothed value uses the weight the curve is drawn with.
    step, raw, smooth = panel.curves[("val/loss", entry.key)].value_at(float(vs[-1]))
    assert step == vs[-1] and smooth == pytest.approx(raw, abs=0.02)
    text = panel.show_crosshair(float(vs[-1]))
    val_part = text.split("<b>val/loss</b>")[1].split("<b>")[0]
    assert "ema" not in val_part                                   # drawn raw: no second value
    loss_part = text.split("<b>train/loss</b>")[1].split("<b>")[0]
    assert f"ema&nbsp;{ema(cols['train/loss'][1], W)[0][vs[-1]]:.4g}" in loss_part
    acc_step, _, acc_smooth = acc.value_at(float(vs[-1]))
    assert acc_smooth == pytest.approx(ema(cols["eval/acc"][1], W ** 4)[0][acc_step // 4])

    # The slider still moves every curve: back to W, the same again.
    window.view.set_smoothing(0.5)
    qtbot.waitUntil(lambda: idle(window) and acc.env.weight == pytest.approx(0.5 ** 4), timeout=WAIT_MS)
    assert loss.env.weight == 0.5


def test_compare_mode_smooths_every_run_over_the_same_steps(window, tmp_path, qtbot):
    # Run a logs its loss every step, run b every 4 steps: b's bold loss averages over as many
    # steps as a's (one reference for the panel), not over 4x more.
    a = scalar_file(tmp_path / "a.h5", columns(with_acc=False))
    b_cols = columns(loss_every=4, with_acc=False)
    b = scalar_file(tmp_path / "b.h5", b_cols)
    ea, eb = open_runs(window, [a, b])
    panel = show(window, qtbot, [ea, eb], ["train/loss", "val/loss"])
    assert panel.curves[("train/loss", ea.key)].env.weight == W
    b_loss = panel.curves[("train/loss", eb.key)]
    assert b_loss.env.weight == pytest.approx(W ** 4)
    assert panel.smoothing_reference() == pytest.approx(1.0)
    np.testing.assert_allclose(b_loss.smooth.getOriginalDataset()[1], ema(b_cols["train/loss"][1], W ** 4)[0],
                               rtol=1e-12)
    for e in (ea, eb):
        _, y = bold_line(panel.curves[("val/loss", e.key)])
        assert y[-1] == pytest.approx(b_cols["val/loss"][1][-1], abs=0.05)

    # Run a closed: b's loss is the densest curve left and gets the slider's weight.
    window.runs.remove(ea)
    qtbot.waitUntil(lambda: idle(window) and not b_loss.rebuild and b_loss.env.weight == W, timeout=WAIT_MS)
    np.testing.assert_array_equal(b_loss.smooth.getOriginalDataset()[1], ema(b_cols["train/loss"][1], W)[0])


def test_live_run_keeps_a_curves_weight_while_its_gaps_wobble(window, tmp_path, qtbot):
    # Validation every ~100 steps, a few steps late now and then: its weight is set once, not
    # changed (a new smoothing of the series) whenever its mean gap moves.
    w = RunFileWriter(tmp_path / "live.h5")
    w.start({"name": "live"})
    w.add_tags(["train/loss", "val/loss"])
    rng = np.random.default_rng(1)
    step = 0
    val_steps = []

    def append(n_val):
        nonlocal step
        s = np.arange(step, step + n_val * VAL_EVERY)
        w.append_scalars(s, np.zeros(len(s)), 1.0 + 0.1 * rng.standard_normal(len(s)), 1e9 + s)
        v = s[::VAL_EVERY] + rng.integers(0, 7, n_val)      # a few steps late, now and then
        val_steps.extend(v.tolist())
        w.append_scalars(v, np.ones(n_val), val_curve(v), 1e9 + v)
        step += n_val * VAL_EVERY
        w.flush(step - 1)

    append(12)
    try:
        entry = open_runs(window, [tmp_path / "live.h5"])[0]
        panel = show(window, qtbot, [entry], ["train/loss", "val/loss"])
        val = panel.curves[("val/loss", entry.key)]
        exponents = set()
        for _ in range(4):
            append(3)
            with qtbot.waitSignal(window.runs.runUpdated, timeout=WAIT_MS):
                window.runs.poll()
            # ... and the plot has followed the new steps (it draws the x range in view)
            qtbot.waitUntil(lambda: idle(window) and val.n_points == len(val_steps)
                            and bold_line(val)[0][-1] == val_steps[-1], timeout=WAIT_MS)
            _, y = bold_line(val)
            assert y[-1] == pytest.approx(val_curve(val_steps[-1]), abs=0.02)
            exponents.add(val.gap_exp)
        assert exponents == {7}            # 100 steps apart: 2**7, kept while the gaps wobble
        assert panel.curves[("train/loss", entry.key)].env.weight == W
    finally:
        w.close()


def test_learning_rate_schedules_are_drawn_as_they_are_never_smoothed(window, tmp_path, qtbot):
    """An LR schedule is not a noisy measurement: its EMA only lags it (the trial's warm-up was
    drawn at 6.8e-4 where the LR was 7.6e-4). The losses beside it are smoothed as before."""
    steps = np.arange(300)
    warmup = np.minimum(1.0, (steps + 1) / 50.0) * 1e-3
    cols = columns(with_acc=False)
    cols.update({name: (steps, warmup) for name in ("lr", "sys/lr", "train/learning_rate", "lr-AdamW")})
    entry = open_runs(window, [scalar_file(tmp_path / "warmup.h5", cols)])[0]
    panel = show(window, qtbot, [entry], ["train/loss", "lr", "sys/lr", "train/learning_rate", "lr-AdamW"])
    for name in ("lr", "sys/lr", "train/learning_rate", "lr-AdamW"):
        curve = panel.curves[(name, entry.key)]
        assert curve.env.weight == 0.0 and not curve.smooth.isVisible()
        x, y = bold_line(curve)
        np.testing.assert_array_equal(y, warmup)
        assert "ema" not in panel.show_crosshair(15.0).split(f"<b>{name}</b>")[1].split("<b>")[0]
    assert panel.curves[("train/loss", entry.key)].env.weight == W
