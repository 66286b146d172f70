"""The layer heatmap's rows and labels on a LoRA-style run: a base frozen with requires_grad=False
and a few adapters that train, with PEFT-length names. Found in the app: 28 of 32 gradient rows
were empty (the frozen base), the labels of 32 rows in 230 px were printed over each other, and
a name longer than the axis (60 characters) was not drawn at all, so the rows that train had no
label."""
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")
torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from tests.gui_helpers import open_runs, show_panel  # noqa: E402
from trainspect.app.gui.widgets.heatmap import LABEL_PITCH_PX  # noqa: E402
from trainspect.app.short_names import short_labels  # noqa: E402
from trainspect.recorder import Recorder  # noqa: E402

WAIT_MS = 30_000


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.attention_projection_with_a_long_name = nn.Linear(8, 8)
        self.adapter_down_projection_default = nn.Linear(8, 2)
        self.adapter_up_projection_default = nn.Linear(2, 8)

    def forward(self, x):
        return (self.attention_projection_with_a_long_name(x)
                + self.adapter_up_projection_default(self.adapter_down_projection_default(x)))


def lora_run(path, n_blocks=8):
    torch.manual_seed(0)
    model = nn.Sequential(*[Block() for _ in range(n_blocks)])
    for block in model:
        block.attention_projection_with_a_long_name.requires_grad_(False)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    with Recorder(path, stats_every=1) as rec:
        rec.watch(model, opt)
        for _ in range(12):
            model(torch.randn(4, 8)).pow(2).mean().backward()
            opt.step()
            opt.zero_grad()
    return path


def test_frozen_rows_are_left_out_and_every_label_is_drawn_apart(window, tmp_path, qtbot):
    window.resize(1100, 700)
    open_runs(window, [lora_run(tmp_path / "lora.h5")])
    show_panel(window, qtbot, window.heatmap)
    hm = window.heatmap
    qtbot.waitUntil(lambda: hm.source is not None and hm.source.stat == "grad_norm", timeout=WAIT_MS)
    src = hm.source
    assert src.hidden == 16 and len(src.layers) == 32            # 8 blocks x 2 frozen / 4 training
    assert all("adapter" in name for name in src.layers)
    # said under the map (on the rotated axis title it was cut to the map's height; trial14 L2)
    assert "16 frozen layer(s) not shown" in hm.series_plot.titleLabel.text
    ticks = hm.plot.getAxis("left")._tickLevels[0]
    height = hm.plot.getViewBox().height()
    assert 1 <= len(ticks) <= height / LABEL_PITCH_PX + 1          # no label printed over another
    # each label fits the axis (a wider one is not drawn at all) and names its block
    width = hm.plot.getAxis("left").width()
    assert all(len(text) * 6 + 30 <= max(width, 260) for _, text in ticks)
    assert ticks[0][1].startswith("0.")
    # the activations are per module: nothing is hidden there
    window.view.set_heatmap_stat("act_std")
    qtbot.waitUntil(lambda: hm.source is not None and hm.source.stat == "act_std", timeout=WAIT_MS)
    assert hm.source.hidden == 0 and hm.plot.getAxis("left").labelText == "layer"
    assert "not shown" not in hm.series_plot.titleLabel.text


def test_short_labels_keep_what_tells_rows_apart():
    peft = [f"transformer.h.{b}.attn.c_attn.lora_{ab}.default.weight (Linear)" for b in (0, 1) for ab in "AB"]
    assert short_labels(peft, 38) == ["0.lora_A.weight (Linear)", "0.lora_B.weight (Linear)",
                                  "1.lora_A.weight (Linear)", "1.lora_B.weight (Linear)"]
    plain = ["0.weight (Linear)", "0.bias (Linear)", "2.weight (Linear)"]
    assert short_labels(plain, 38) == plain
    mixed = ["transformer.wte.weight (Embedding)", "transformer.h.0.attn.c_attn.base_layer.weight (Conv1D)",
             "transformer.h.11.mlp.c_proj.bias (Conv1D)"]
    short = short_labels(mixed, fit=38)
    assert all(len(s) <= 38 for s in short) and short[1].startswith("h.0.") and short[1].endswith("weight (Conv1D)")
    assert len(set(short)) == 3


def test_short_labels_of_an_encoder_decoder_tell_the_two_stacks_apart():
    """nn.Transformer's rows: cut from the left, encoder and decoder layers read the same
    ("…der.layers.0.linear1"), and a decoder's self- and cross-attention too."""
    names = [f"{stack}.layers.0.{m}" for stack in ("encoder", "decoder") for m in ("self_attn", "linear1")]
    names.insert(3, "decoder.layers.0.multihead_attn")
    labels = [f"{n} ({'MultiheadAttention' if 'attn' in n else 'Linear'})" for n in names] + ["head (Linear)"]
    for fit in (26, 30, 38):
        short = short_labels(labels, fit)
        assert len(set(short)) == len(labels), short
        assert all(len(s) <= fit for s in short)
        assert short[-1] == "head (Linear)"
        assert short[1].startswith("enc") and short[4].startswith("dec")     # the two linear1 rows


@pytest.mark.parametrize("span", [4, 9, 30])
def test_a_step_axis_has_no_ticks_between_steps(qtbot, span):
    """A 5-step run (a live run's first minute) read 0.5, 1.5, ... on its step axis."""
    from trainspect.app.gui.widgets.parts import StepAxis

    values = [v for _, level in StepAxis("bottom").tickValues(0, span, 800) for v in level]
    assert values and all(float(v).is_integer() for v in values)
    import pyqtgraph as pg

    # a long run keeps pyqtgraph's usual ticks
    assert StepAxis("bottom").tickValues(0, 1_000_000, 800) == pg.AxisItem("bottom").tickValues(0, 1_000_000, 800)


def test_long_layer_names_keep_the_distribution_plots_inside_the_panel(window, tmp_path, qtbot):
    """A plot is no narrower than its title: the snapshot plot, titled with a 50-character layer
    name, was pushed past the panel's right edge (its colour bar out of sight)."""
    window.resize(1100, 700)
    open_runs(window, [lora_run(tmp_path / "lora.h5")])
    panel = window.distributions
    show_panel(window, qtbot, panel)
    panel.snap_layer.setCurrentIndex(panel.snap_layer.count() - 1)
    qtbot.waitUntil(lambda: not panel.reading() and panel.snap_title.text().endswith("step 0"),
                    timeout=WAIT_MS)
    qtbot.wait(100)
    right = max(item.sceneBoundingRect().right() for item in (panel.snap_plot, panel.snap_bar))
    assert right <= panel.canvas.width() + 1
    assert "…" in panel.snap_title.text()


def test_matching_layers_of_a_finding_over_thousands_of_tensors_is_linear():
    """A finding over 10,000 parameter tensors (a mixture of experts) froze the app 10.5 s in
    matching_layers, which compared every pair; the matches are the same as before."""
    from trainspect.app.gui.widgets.heatmap import matching_layers

    assert matching_layers(["a.b"], ["a", "a.b", "a.b.c", "a.bc", "x"]) == [0, 1, 2]
    assert matching_layers(["a.b.weight"], ["a.b", "a.b.weight", "a.b.bias"]) == [0, 1]
    layers = [f"experts.{i}.w{j}" for i in range(500) for j in range(4)]
    calls = 0

    class Counted(str):     # every comparison of a selected name is counted
        def startswith(self, *a):
            nonlocal calls
            calls += 1
            return str.startswith(self, *a)

    assert matching_layers([Counted(n) for n in layers], layers) == list(range(len(layers)))
    assert calls < 10 * len(layers)
