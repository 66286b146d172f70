"""Modules used at several places per forward, by design, get no warning per module (trial 15,
F7): torchvision's BasicBlock reuses ``self.relu`` twice (resnet18: 8 RecorderWarnings "give
each use a module of its own", asking users to edit torchvision), the seq2seq tutorial's
dropout runs at every decoder step, a siamese twin applies one branch to both inputs. Each
later call has its own row; only calls that no row measures are said, in one warning per run,
and never with advice to change the model."""
from __future__ import annotations

import warnings

import torch
from torch import nn
from trainspect.analysis import open_run
from trainspect.recorder import Recorder
from trainspect.recorder.recorder import RecorderWarning

torch.set_num_threads(1)

EDIT_ADVICE = ("module of its own", "give each use")


class BasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock: one ``self.relu`` after bn1 and after the sum."""

    def __init__(self, i, o, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(i, o, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(o)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(o, o, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(o)
        self.downsample = None if stride == 1 and i == o else nn.Sequential(
            nn.Conv2d(i, o, 1, stride, bias=False), nn.BatchNorm2d(o))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18Like(nn.Module):
    """resnet18's shape (stem, 4 stages of 2 BasicBlocks, pool, fc), 8 wide, for 8x8 images."""

    def __init__(self, width=8, classes=4):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        chans = [width, width, 2 * width, 2 * width, 2 * width]
        for s in range(1, 5):
            stride = 1 if s == 1 else 2
            setattr(self, f"layer{s}", nn.Sequential(BasicBlock(chans[s - 1], chans[s], stride),
                                                     BasicBlock(chans[s], chans[s])))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(chans[-1], classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class Seq2Seq(nn.Module):
    """The PyTorch seq2seq tutorial's shape: one dropout on the encoder's embeddings and on the
    decoder's at each of its ``steps`` time steps (1 + steps calls per forward)."""

    def __init__(self, steps=8, dropouts=1):
        super().__init__()
        self.steps = steps
        self.emb = nn.Embedding(10, 16)
        self.enc = nn.GRU(16, 16, batch_first=True)
        self.dec = nn.GRU(16, 16, batch_first=True)
        self.drops = nn.ModuleList(nn.Dropout(0.1) for _ in range(dropouts))
        self.out = nn.Linear(16, 10)

    def forward(self, src):
        x = self.emb(src)
        for d in self.drops:
            x = d(x)
        _, h = self.enc(x)
        inp, outs = self.emb(src[:, :1]), []
        for _ in range(self.steps):
            for d in self.drops:
                inp = d(inp)
            o, h = self.dec(inp, h)
            outs.append(self.out(o))
            inp = o
        return torch.cat(outs, 1)


class Siamese(nn.Module):
    """pytorch/examples' siamese_network: one ``self.cnn`` applied to both images."""

    def __init__(self):
        super().__init__()
        self.cnn = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
                                 nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(64, 16), nn.ReLU(inplace=True), nn.Linear(16, 1))

    def forward(self, a, b):
        return self.fc(torch.cat((self.cnn(a), self.cnn(b)), 1))


def resnet_batch():
    return (torch.randn(4, 3, 8, 8),), torch.randint(0, 4, (4,))


def seq_batch():
    src = torch.randint(0, 10, (4, 12))
    return (src,), src


def siamese_batch():
    return (torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)), torch.rand(4, 1)


def loss_of(out, target):
    if out.dim() == 3:
        target = target[:, :out.shape[1]]       # a decoder of fewer steps than the source
        return nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), target.reshape(-1))
    if target.dtype == torch.long:
        return nn.functional.cross_entropy(out, target)
    return nn.functional.binary_cross_entropy_with_logits(out, target)


def train(path, model, batch, steps=4, flush_first=False, seed=0):
    """Train ``model`` watched; returns the texts of the RecorderWarnings."""
    torch.manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(path, overwrite=True) as rec:
            rec.watch(model, opt)
            if flush_first:      # the layer tables start before a training forward showed the calls
                rec.flush()
            for _ in range(steps):
                args, target = batch()
                loss = loss_of(model(*args), target)
                opt.zero_grad()
                loss.backward()
                opt.step()
                rec.log({"train/loss": loss.item()})
    return [str(w.message) for w in caught if issubclass(w.category, RecorderWarning)]


def layers(path):
    with open_run(path) as run:
        return run.layer_stat("act_mean").layers


def test_resnet18_like_blocks_reusing_their_relu_get_no_warning_and_a_row_per_call(tmp_path):
    for seed in range(2):
        said = train(tmp_path / "r.h5", ResNet18Like(), resnet_batch, seed=seed)
        assert said == [], said
        names = layers(tmp_path / "r.h5")
        blocks = [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)]
        assert all(f"{b}.relu#2" in names for b in blocks), names
        assert "relu#2" not in names          # the stem's relu runs once


def test_a_siamese_twin_sharing_its_branch_gets_no_warning(tmp_path):
    said = train(tmp_path / "s.h5", Siamese(), siamese_batch)
    assert said == [], said
    names = layers(tmp_path / "s.h5")
    assert {"cnn.2#2", "cnn.3#2", "cnn.4#2"} <= set(names), names


def test_tables_started_before_the_first_forward_say_it_once_for_every_block(tmp_path):
    for seed in range(2):
        said = train(tmp_path / "r.h5", ResNet18Like(), resnet_batch, flush_first=True, seed=seed)
        assert len(said) == 1, said
        text = said[0]
        assert "8 modules" in text and "'layer1.0.relu' (ReLU, 2 calls, 1 row)" in text and "4 more" in text
        assert "watch() shortly before the training loop" in text
        assert not any(a in text for a in EDIT_ADVICE), text
        assert "layer1.0.relu#2" not in layers(tmp_path / "r.h5")


def test_a_dropout_run_at_every_decoder_step_beyond_its_rows_is_one_warning(tmp_path):
    said = train(tmp_path / "q.h5", Seq2Seq(steps=8), seq_batch)
    assert len(said) == 1, said
    assert "'drops.0' (Dropout, 9 calls, 8 rows)" in said[0]
    assert not any(a in said[0] for a in EDIT_ADVICE), said[0]
    names = layers(tmp_path / "q.h5")
    assert "drops.0#8" in names and "drops.0#9" not in names


def test_two_modules_beyond_their_rows_are_one_warning(tmp_path):
    said = train(tmp_path / "q.h5", Seq2Seq(steps=10, dropouts=2), seq_batch)
    assert len(said) == 1, said
    assert "2 modules" in said[0] and "'drops.0'" in said[0] and "'drops.1'" in said[0]


def test_calls_within_the_rows_are_not_warned(tmp_path):
    said = train(tmp_path / "q.h5", Seq2Seq(steps=7), seq_batch)     # 8 calls: 8 rows
    assert said == [], said


def test_a_resumed_run_says_it_keeps_its_first_sessions_rows(tmp_path):
    path = tmp_path / "r.h5"
    model = ResNet18Like()
    train(path, model, resnet_batch, steps=2, flush_first=True)     # one row per module
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(path, resume=True) as rec:
            rec.watch(model, opt)
            for _ in range(3):
                args, target = resnet_batch()
                loss = loss_of(model(*args), target)
                opt.zero_grad()
                loss.backward()
                opt.step()
    said = [str(w.message) for w in caught if issubclass(w.category, RecorderWarning)]
    assert len(said) == 1 and "8 modules" in said[0], said
    assert "a resumed run keeps the layer rows of its first session" in said[0]
    assert not any(a in said[0] for a in EDIT_ADVICE), said
