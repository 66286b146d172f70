"""A distributed run read as one run (analysis/ranks.py) and the advisor's rank rules
(analysis/advisor/rank_rules.py): torchrun jobs on CPU/gloo with planted rank-level problems."""
import json

import numpy as np
import pytest

from trainspect.analysis import diagnose, open_run
from trainspect.analysis.advisor import rank_rules
from trainspect.analysis.ranks import RankMatrix, open_ranks
from trainspect.app import cli
from trainspect.recorder import Recorder
from trainspect.recorder import format as fmt

from torchrun_jobs import torchrun


def _record_ranks(tmp_path, monkeypatch, world, losses, port="29500", ranks=None, overwrite=False):
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", port)
    for rank in ranks if ranks is not None else range(world):
        monkeypatch.setenv("RANK", str(rank))
        with Recorder(tmp_path / "exp1.h5", overwrite=overwrite) as rec:
            for step, value in enumerate(losses(rank)):
                if value is not None:
                    rec.log({"train/loss": value}, step=step)
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var)


def test_any_rank_file_opens_the_whole_run_with_rank_as_a_dimension(tmp_path, monkeypatch):
    # rank 1 logs every other step only: the matrix holds NaN where a rank has no value
    _record_ranks(tmp_path, monkeypatch, 3, lambda r: [float(10 * r + s) if r != 1 or s % 2 == 0 else None
                                                       for s in range(6)])
    with open_ranks(tmp_path / "exp1.rank2.h5") as ranked:
        assert ranked.ranks == [0, 1, 2] and ranked.world_size == 3
        assert ranked.primary.path.name == "exp1.h5"
        m = ranked.matrix("train/loss")
        assert m.steps.tolist() == list(range(6))
        assert m.row(0).tolist() == [0, 1, 2, 3, 4, 5]
        assert m.row(2).tolist() == [20, 21, 22, 23, 24, 25]
        assert np.isnan(m.row(1)[1::2]).all() and m.row(1)[::2].tolist() == [10, 12, 14]
    with open_run(tmp_path / "exp1.h5") as run:
        assert open_ranks(run) is not None
        run.scalar_names()            # the Run passed in stays open: the caller owns it


def test_leftover_rank_file_of_another_launch_is_not_mixed_in(tmp_path, monkeypatch):
    _record_ranks(tmp_path, monkeypatch, 4, lambda r: [1.0, 2.0], port="29500")
    # a relaunch replacing the run whose ranks 2 and 3 never got to write
    _record_ranks(tmp_path, monkeypatch, 4, lambda r: [1.0, 2.0], port="29501", ranks=[0, 1], overwrite=True)
    (tmp_path / "exp1.rank2.h5").unlink()
    with open_ranks(tmp_path / "exp1.h5") as ranked:
        assert ranked.ranks == [0, 1]
        assert ranked.missing == [2] and ranked.foreign == [3]
        assert "2 of 4 ranks" in ranked.describe()


def test_single_process_run_is_not_a_ranked_run(tmp_path):
    with Recorder(tmp_path / "solo.h5") as rec:
        rec.log({"train/loss": 1.0}, step=0)
    assert open_ranks(tmp_path / "solo.h5") is None
    with open_run(tmp_path / "solo.h5") as run:
        assert rank_rules.rank_signals(run) is None


def test_info_on_rank_zero_lists_every_rank(tmp_path, monkeypatch, capsys):
    _record_ranks(tmp_path, monkeypatch, 3, lambda r: [3.0, 2.0, 1.0 + r])
    assert cli.main(["info", str(tmp_path / "exp1.h5")]) == 0
    out = capsys.readouterr().out
    assert "3 of 3 ranks" in out
    for rank, name in enumerate(["exp1.h5", "exp1.rank1.h5", "exp1.rank2.h5"]):
        assert f"rank {rank}" in out and name in out
    assert "train/loss 3" in out          # rank 2's last loss, read from its own file
    assert cli.main(["info", str(tmp_path)]) == 0       # a directory: the run once, not once per rank
    assert capsys.readouterr().out.count("run:") == 1
    cli.main(["diagnose", str(tmp_path / "exp1.rank1.h5")])
    assert "ranks: 3 of 3 ranks read (exp1.h5, exp1.rank1.h5, exp1.rank2.h5)" in capsys.readouterr().out
    cli.main(["diagnose", "--json", str(tmp_path / "exp1.h5")])
    assert json.loads(capsys.readouterr().out)["ranks"]["read"] == {"0": "exp1.h5", "1": "exp1.rank1.h5",
                                                                  "2": "exp1.rank2.h5"}


# ------------------------------------------------------------------ rules on synthetic ranks
def _matrix(values):
    values = np.asarray(values, dtype=np.float64)
    return RankMatrix(np.arange(values.shape[1]), list(range(values.shape[0])), values)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("world", [2, 4, 8])
def test_straggler_rule_names_the_slow_rank_and_stays_quiet_without_one(seed, world):
    rng = np.random.default_rng(seed)
    wait = rng.lognormal(np.log(2e-4), 0.5, size=(world, 60))
    assert rank_rules.detect_straggler({fmt.SYS_DATA_WAIT: _matrix(wait)}) is None
    slow = world - 1 - seed % world
    wait[slow] += 0.03 * rng.uniform(0.8, 1.2, 60)
    f = rank_rules.detect_straggler({fmt.SYS_DATA_WAIT: _matrix(wait)})
    assert f is not None and f.ranks == [slow] and f"rank {slow}" in f.title


def test_rank_whose_loss_went_nan_before_the_all_reduce_is_named():
    steps = np.arange(10)
    clean = np.linspace(2, 1, 10)
    loss_bad = clean.copy()
    loss_bad[6:] = np.nan
    loss_late = clean.copy()
    loss_late[7:] = np.nan
    grads_late = np.where(steps >= 6, np.nan, 1.0)     # the all-reduce spreads the NaN at step 6
    per_rank = {0: {"train/loss": (steps, loss_late), fmt.SYS_GRAD_NORM: (steps, grads_late)},
                1: {"train/loss": (steps, loss_bad), fmt.SYS_GRAD_NORM: (steps, grads_late)},
                2: {"train/loss": (steps, loss_late), fmt.SYS_GRAD_NORM: (steps, grads_late)}}
    f = rank_rules.detect_rank_nonfinite_first(per_rank)
    assert f.ranks == [1] and f.first_step == 6 and "rank 1" in f.title
    same = {r: {"train/loss": (steps, loss_bad)} for r in range(3)}
    assert rank_rules.detect_rank_nonfinite_first(same) is None     # all at once: nothing rank-specific


@pytest.mark.parametrize("seed", range(5))
def test_loss_divergence_rule_names_the_rank_apart_and_ignores_noise(seed):
    rng = np.random.default_rng(seed)
    curve = 2 * np.exp(-np.arange(80) / 20) + 0.5
    losses = curve * rng.lognormal(0, 0.15, size=(4, 80))
    assert rank_rules.detect_rank_loss_divergence(_matrix(losses), "train/loss") is None
    losses[seed % 4] += 1.5
    f = rank_rules.detect_rank_loss_divergence(_matrix(losses), "train/loss")
    assert f is not None and f.ranks == [seed % 4]


# ------------------------------------------------------------------ torchrun jobs (CPU, gloo)
def _findings(path):
    """The advisor's findings; its rank rules (read through bounded views) give, field for field,
    what they give on every rank's full series (test_rank_bounded.py: long runs)."""
    from test_rank_bounded import rank_findings

    bounded, full = rank_findings(path)
    assert {s: f.to_dict() for s, f in bounded.items()} == {s: f.to_dict() for s, f in full.items()}
    with open_run(path) as run:
        return {f.symptom: f for f in diagnose(run)}


@pytest.mark.parametrize("nproc", [2, pytest.param(4, marks=pytest.mark.multiproc)])
def test_torchrun_planted_straggler_and_rank_local_nan_are_named(tmp_path, nproc):
    slow, bad = nproc - 1, (1 if nproc > 2 else 0)
    torchrun(tmp_path, "ddp_planted.py", nproc, tmp_path / "exp1.h5", 40, f"slow:{slow},nan:{bad}:25")
    found = _findings(tmp_path / "exp1.h5")
    straggler = found["straggler_rank"]
    assert straggler.ranks == [slow] and f"rank {slow}" in straggler.title
    assert straggler.causes[0].id == "slow_data_loading"
    nan = found["rank_nonfinite_first"]
    assert nan.ranks == [bad] and nan.first_step == 25 and f"rank {bad}" in nan.title
    assert "rank_loss_divergence" not in found


@pytest.mark.multiproc
def test_torchrun_rank_reading_another_dataset_is_named(tmp_path):
    torchrun(tmp_path, "ddp_planted.py", 4, tmp_path / "exp1.h5", 40, "shard:2")
    f = _findings(tmp_path / "exp1.rank3.h5")["rank_loss_divergence"]   # any rank's file will do
    assert f.ranks == [2]
    assert f.causes[0].id == "inconsistent_data_sharding"    # DDP keeps the replicas' weights equal


def test_torchrun_healthy_job_has_no_rank_findings(tmp_path):
    torchrun(tmp_path, "ddp_planted.py", 2, tmp_path / "exp1.h5", 40, "none")
    assert not {"straggler_rank", "rank_nonfinite_first", "rank_loss_divergence"} & set(_findings(tmp_path / "exp1.h5"))
    with open_ranks(tmp_path / "exp1.h5") as ranked:     # every rank has its own series
        for name in ("train/loss", fmt.SYS_STEP_TIME, fmt.SYS_DATA_WAIT, fmt.SYS_NONFINITE_GRADS):
            m = ranked.matrix(name)
            assert m.ranks == [0, 1] and np.isfinite(m.values).sum(axis=1).min() >= 39, name


def test_data_wait_is_the_host_time_between_a_step_and_the_next_forward(tmp_path):
    import time

    import torch

    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with Recorder(tmp_path / "wait.h5") as rec:
        rec.watch(model, opt)
        for step in range(4):
            time.sleep(0.02 if step == 2 else 0)      # a slow batch before step 2's forward
            for _ in range(2):                        # gradient accumulation: only the first forward counts
                model(torch.ones(3, 4)).sum().backward()
            opt.step()
            opt.zero_grad()
    with open_run(tmp_path / "wait.h5") as run:
        wait = run.scalar(fmt.SYS_DATA_WAIT)
    assert wait.steps.tolist() == [1, 2, 3]
    assert wait.values[1] >= 0.02


def test_report_of_a_folder_reads_a_distributed_run_as_one_run(tmp_path, monkeypatch, capsys):
    """`trainspect report runs/` compared the rank files as two runs named alike ('exp1' vs
    'exp1'), each with the same distributed finding; info and the app fold them into one."""
    _record_ranks(tmp_path, monkeypatch, 2, lambda r: [1.0 / (s + 1) + r for s in range(30)], port="29511")
    out = tmp_path / "report.html"
    assert cli.main(["report", str(tmp_path), "-o", str(out), "-q"]) == 0
    assert out.read_text(encoding="utf-8").count('<h2 id="run-') == 1


def test_report_evidence_of_a_rank_finding_plots_every_rank(tmp_path, monkeypatch):
    """The figure under 'rank 1 ...' drew rank 0's series alone, unlabelled."""
    from trainspect.app.report.content import finding_figures

    rng = np.random.default_rng(0)
    _record_ranks(tmp_path, monkeypatch, 2, lambda r: [float(2.0 / (s + 1) + 0.01 * rng.standard_normal()
                                                              + (r * 0.1 * s if s > 100 else 0.0)) for s in range(300)],
                  port="29512")
    with open_run(tmp_path / "exp1.h5") as run:
        found = [f for f in diagnose(run) if f.ranks]
        assert found, [f.symptom for f in diagnose(run)]
        svg = " ".join(fig.svg for fig in finding_figures(run, found[0]))
    assert "rank 1 (named)" in svg and "rank 0" in svg
