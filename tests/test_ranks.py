"""Every rank of a distributed job records its own file (recorder/ranks.py, FORMAT.md)."""
from pathlib import Path

import h5py
import pytest

from trainspect.recorder import format as fmt
from trainspect.recorder import Recorder
from trainspect.recorder.ranks import rank_path, split_rank_path

from torchrun_jobs import torchrun


def _meta(path):
    with h5py.File(path, "r") as f:
        return fmt.decode_meta(f[fmt.META][()])


def test_rank_paths_round_trip():
    assert rank_path("runs/exp1.h5", 0) == Path("runs/exp1.h5")
    assert rank_path("runs/exp1.h5", 3) == Path("runs/exp1.rank3.h5")
    assert split_rank_path("runs/exp1.rank3.h5") == (Path("runs/exp1.h5"), 3)
    assert split_rank_path("runs/exp1.h5") == (Path("runs/exp1.h5"), 0)
    assert split_rank_path("runs/my.rankings.h5") == (Path("runs/my.rankings.h5"), 0)


def test_env_ranks_write_side_by_side_files_tied_by_meta(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("MASTER_ADDR", "10.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    for rank in (0, 2):
        monkeypatch.setenv("RANK", str(rank))
        with Recorder(tmp_path / "exp1.h5") as rec:
            rec.log({"train/loss": 1.0 + rank}, step=0)
    m0, m2 = _meta(tmp_path / "exp1.h5"), _meta(tmp_path / "exp1.rank2.h5")
    assert m0["name"] == m2["name"] == "exp1"
    assert (m0["distributed"]["rank"], m2["distributed"]["rank"]) == (0, 2)
    assert m0["distributed"]["world_size"] == m2["distributed"]["world_size"] == 3
    assert m0["distributed"]["run_id"] == m2["distributed"]["run_id"]
    assert m2["distributed"]["rank0_file"] == "exp1.h5"
    monkeypatch.setenv("MASTER_PORT", "29501")   # another launch: another id
    monkeypatch.setenv("RANK", "0")
    with Recorder(tmp_path / "exp1.h5", overwrite=True):
        pass
    assert _meta(tmp_path / "exp1.h5")["distributed"]["run_id"] != m2["distributed"]["run_id"]


def test_single_process_meta_has_no_distributed_entry(tmp_path, monkeypatch):
    for var in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    with Recorder(tmp_path / "solo.h5"):
        pass
    assert "distributed" not in _meta(tmp_path / "solo.h5")


@pytest.mark.parametrize("nproc", [2, pytest.param(4, marks=pytest.mark.multiproc)])
def test_torchrun_ddp_every_rank_records_with_zero_collectives(tmp_path, nproc):
    out = tmp_path / "exp1.h5"
    torchrun(tmp_path, "ddp_record.py", nproc, out, 6)
    files = [rank_path(out, r) for r in range(nproc)]
    metas = [_meta(p) for p in files]
    assert [m["distributed"]["rank"] for m in metas] == list(range(nproc))
    assert {m["distributed"]["world_size"] for m in metas} == {nproc}
    assert len({m["distributed"]["run_id"] for m in metas}) == 1
    for r, p in enumerate(files):
        with h5py.File(p, "r") as f:
            assert f["scalars/step"].shape[0] > 0
        assert (tmp_path / f"exp1.h5.collectives{r}").read_text() == ""
    assert not list(tmp_path.glob("exp1.rank0*"))
