"""An RL policy fed one state per forward (pytorch/examples' actor_critic feeds the unbatched 1-D
state, reinforce.py ``state.unsqueeze(0)``): "<= 0 for the whole batch" of one sample is half of
any ReLU layer, and the advisor said "67 % of affine1 dead -> lr too high, reduce the LR 10x" on a
healthy policy; the unbatched state's length was recorded as its batch size (trial 18 U4)."""
from __future__ import annotations

import pytest

from trainspect.analysis import diagnose, open_run
from trainspect.recorder import Recorder


def _corridor_run(path, seed: int, batched: bool, episodes: int = 100, n: int = 8):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    torch.manual_seed(seed)

    class Policy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.affine1 = torch.nn.Linear(n + 1, 64)
            self.action_head = torch.nn.Linear(64, 2)
            self.value_head = torch.nn.Linear(64, 1)

        def forward(self, x):
            h = F.relu(self.affine1(x))
            return F.softmax(self.action_head(h), -1), self.value_head(h)

    model = Policy()
    with torch.no_grad():   # most units <= 0 for any one state (not for a batch of them); a value below 0
        model.affine1.bias.fill_(-0.15)
        model.value_head.bias.fill_(-2.0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    gen = torch.Generator().manual_seed(seed)
    with Recorder(path) as rec:
        rec.watch(model, opt)
        for episode in range(episodes):
            pos, saved, rewards = 0, [], []
            for _ in range(30):       # a goal 8 cells away: the random policy never finds it
                state = torch.zeros(n + 1)
                state[pos] = 1.0
                probs, value = model(state.unsqueeze(0) if batched else state)
                probs = probs.reshape(-1)
                action = int(torch.multinomial(probs.detach(), 1, generator=gen))
                saved.append((torch.log(probs[action]), value.reshape(())))
                pos = max(0, min(n, pos + (1 if action == 1 else -1)))
                rewards.append(1.0 if pos == n else -1.0)
                if pos == n:
                    break
            ret, returns = 0.0, []
            for r in reversed(rewards):
                ret = r + 0.99 * ret
                returns.insert(0, ret)
            loss = sum(-lp * (r - v.item()) + F.smooth_l1_loss(v, torch.tensor(r)) for (lp, v), r in zip(saved, returns))
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"loss": loss.item(), "episode_reward": sum(rewards)}, step=episode)


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_state_per_forward_is_no_evidence_of_dead_units(tmp_path, seed, batched):
    path = tmp_path / "rl.h5"
    _corridor_run(path, seed, batched)
    with open_run(path) as run:
        sizes = set(run.scalar("sys/batch_size").values.tolist())
        found = {f.symptom: f for f in diagnose(run)}
    assert sizes == {1.0}, sizes          # one state, batched or not, is one sample
    assert "dead_units" not in found, found["dead_units"].title   # and its "reduce the LR 10x"


def test_a_one_dimensional_input_to_a_first_linear_is_one_sample(tmp_path):
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with Recorder(tmp_path / "u.h5") as rec:
        rec.watch(model, opt)
        for _ in range(4):
            loss = model(torch.randn(5)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            rec.log({"train/loss": loss.item()})
    with open_run(tmp_path / "u.h5") as run:
        assert set(run.scalar("sys/batch_size").values.tolist()) == {1.0}
