"""`diagnose` of a distributed run names the rank that stopped first. Trial 17, F11: rank 1 died
(os._exit at step 87), torchrun SIGTERMed rank 0, and diagnose said only `crashed at step 86:
terminated (SIGTERM)` ... `no problems found`; the rank that died was in `info` alone."""
from __future__ import annotations

import json
import time

import h5py
import numpy as np

from rank_runs import write_rank_files
from trainspect.app.cli import main
from trainspect.recorder import format as fmt


def _set_state(path, status: str, error: str = "", heartbeat: float | None = None) -> None:
    with h5py.File(path, "r+") as f:
        f[fmt.STATUS][0] = np.bytes_(status.encode().ljust(fmt.STATUS_LEN, b"\0"))
        f[fmt.ERROR][0] = np.bytes_(error.encode().ljust(fmt.ERROR_LEN, b"\0"))
        if heartbeat is not None:
            values = f[fmt.STATE][()]
            values[fmt.STATE_HEARTBEAT] = heartbeat
            f[fmt.STATE][...] = values


def _job(tmp_path, lengths, seed=0):
    rng = np.random.default_rng(seed)
    per_rank = [{"train/loss": 2.0 * np.exp(-np.arange(n) / 30) + 0.1 * rng.random(n)} for n in lengths]
    return write_rank_files(tmp_path / "ddp.h5", per_rank)


def _diagnose(capsys, path, *args):
    code = main(["diagnose", str(path), *args])
    return code, capsys.readouterr().out


def test_the_rank_that_died_first_heads_the_diagnosis(tmp_path, capsys):
    for seed in range(3):
        rank0, rank1 = _job(tmp_path / str(seed), [87, 83], seed)
        _set_state(rank0, fmt.STATUS_CRASHED, "terminated (SIGTERM) at step 86")
        _set_state(rank1, fmt.STATUS_RUNNING, heartbeat=time.time() - 600)   # killed: its writer went silent
        code, out = _diagnose(capsys, rank0)
        headline = out.splitlines()[0]
        assert code == 3
        assert headline.startswith("exp: rank 1 stopped first: writer stopped responding at step 82"), headline
        assert "killed or hung" in headline
        assert "rank 0 (this file) then crashed at step 86: terminated (SIGTERM)" in headline
        code, out = _diagnose(capsys, rank0, "--json")
        first = json.loads(out)["ranks"]["first_stopped"]
        assert first["rank"] == 1 and first["status"] == "stale" and first["last_step"] == 82


def test_a_rank_that_crashed_while_rank_0_finished_is_named(tmp_path, capsys):
    rank0, rank1 = _job(tmp_path, [100, 40])
    _set_state(rank1, fmt.STATUS_CRASHED, "RuntimeError: CUDA error: an illegal memory access")
    _, out = _diagnose(capsys, rank0)
    headline = out.splitlines()[0]
    assert headline.startswith("exp: rank 1 stopped first: crashed at step 39: RuntimeError"), headline
    assert "rank 0 (this file) finished at step 99" in headline


def test_a_job_preempted_as_a_whole_names_no_first_rank(tmp_path, capsys):
    files = _job(tmp_path, [87, 87])
    for f in files:
        _set_state(f, fmt.STATUS_CRASHED, "terminated (SIGTERM) at step 86")
    _, out = _diagnose(capsys, files[0])
    assert out.splitlines()[0] == "exp: crashed at step 86: terminated (SIGTERM) at step 86"
    assert "stopped first" not in out


def test_healthy_ranks_and_the_dead_ranks_own_file_keep_their_headline(tmp_path, capsys):
    files = _job(tmp_path / "ok", [50, 50])
    _, out = _diagnose(capsys, files[0])
    assert out.splitlines()[0] == "exp: finished at step 49"
    rank0, rank1 = _job(tmp_path / "died", [87, 83])
    _set_state(rank0, fmt.STATUS_CRASHED, "terminated (SIGTERM) at step 86")
    _set_state(rank1, fmt.STATUS_RUNNING, heartbeat=time.time() - 600)
    _, out = _diagnose(capsys, rank1)      # rank 1's own file: it stopped first itself
    assert out.splitlines()[0].startswith("exp: writer stopped responding at step 82")


def test_info_names_the_rank_that_stopped_first(tmp_path, capsys):
    """`info` lists every rank; the one that died first is named under the list's heading, as
    diagnose heads with it (left open in session 17: info listed the ranks and said nothing)."""
    rank0, rank1 = _job(tmp_path / "died", [87, 83])
    _set_state(rank0, fmt.STATUS_CRASHED, "terminated (SIGTERM) at step 86")
    _set_state(rank1, fmt.STATUS_RUNNING, heartbeat=time.time() - 600)
    assert main(["info", str(rank0)]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("ranks:"))
    assert lines[at + 1].strip().startswith("rank 1 stopped first: writer stopped responding at step 82")
    assert "rank 0 (this file) then crashed at step 86" in lines[at + 1]
    files = _job(tmp_path / "ok", [50, 50])
    main(["info", str(files[0])])
    assert "stopped first" not in capsys.readouterr().out
