"""Long layer names keep the part that tells the layers apart (UX review trial14, L3).

On a TransformerEncoder the heatmap read "layers.0...._weight (MultiheadAttention)" and
"...rs.0.self_attn.out_proj.bias (Linear)": the module type took the room and the middle of the
path (in_proj / out_proj) was cut. Now a label that does not fit loses its type first, then the
left end of its module path, never half a name part; the same labels in the heatmap's axis, its
legend and the distribution titles."""
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from trainspect.app.gui.widgets.parts import layer_labels  # noqa: E402

ENC = [f"enc.layers.{b}.{m}" for b in (0, 1) for m in
       ("self_attn.in_proj_weight (MultiheadAttention)", "self_attn.out_proj.weight (Linear)",
        "self_attn.out_proj.bias (Linear)", "linear1.weight (Linear)", "norm1.bias (LayerNorm)")] + ["head.weight (Linear)"]


@pytest.mark.parametrize("fit", [26, 32, 38])
def test_the_distinguishing_tail_is_kept(fit):
    short = layer_labels(ENC, fit)
    assert all(len(s) <= fit for s in short), short
    assert len(set(short)) == len(ENC), short
    for name, label in zip(ENC, short):
        path = name.split(" (")[0]
        leaf = path.rsplit(".", 1)[-1]
        assert label.split(" (")[0].endswith(leaf), (name, label)          # "in_proj_weight", not "_weight"
        assert "…" not in label or label.split("…")[-1].startswith(tuple(path.split("."))), label  # no half part
    assert short[-1] == "head.weight (Linear)"


def test_names_that_fit_are_left_alone():
    plain = ["0.weight (Linear)", "0.bias (Linear)", "2.weight (Linear)"]
    assert layer_labels(plain, 38) == plain


def test_the_heatmap_axis_uses_them(window, qtbot, tmp_path):
    torch = pytest.importorskip("torch")
    from torch import nn

    from trainspect.recorder import Recorder
    from tests.gui_helpers import open_runs, show_panel

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), 2,
                                             enable_nested_tensor=False)
            self.head = nn.Linear(16, 4)

        def forward(self, x):
            return self.head(self.enc(x))

    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    path = tmp_path / "tf.h5"
    with Recorder(path, stats_every=1) as rec:
        rec.watch(model, opt)
        for step in range(6):
            loss = model(torch.randn(2, 5, 16)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss}, step=step)
    window.resize(1600, 1000)
    open_runs(window, [path])
    show_panel(window, qtbot, window.heatmap)
    hm = window.heatmap
    qtbot.waitUntil(lambda: hm.source is not None and len(hm.plot.getAxis("left")._tickLevels[0]) > 0, timeout=30_000)
    ticks = [t for _, t in hm.plot.getAxis("left")._tickLevels[0]]
    attn = [t for t in ticks if "proj" in t]
    assert attn and all("in_proj_weight" in t or "out_proj." in t for t in attn), ticks
    import os
    if os.environ.get("TRAINSPECT_UX_SHOTS"):
        from trainspect.app.gui.main_window import render_screenshot
        render_screenshot(window, os.path.join(os.environ["TRAINSPECT_UX_SHOTS"], "ux2_layer_names.png"))
