"""FSDP2 (``fully_shard``, DTensor parameters) on CPU/gloo: every rank records the norms of its
own shards with no collective (neither ``torch.distributed`` nor DTensor's functional ones),
and the reader combines them into the global per-parameter norms, checked against norms of
the unsharded tensors (``full_tensor()`` in the worker)."""
import json

import numpy as np
import pytest

from trainspect.analysis import open_run
from trainspect.analysis.ranks import global_norms, open_ranks
from trainspect.recorder.ranks import rank_path

from torchrun_jobs import torchrun

pytest.importorskip("torch.distributed.fsdp")


@pytest.mark.parametrize("nproc", [2, pytest.param(4, marks=pytest.mark.multiproc)])
def test_fsdp2_shard_norms_combine_into_the_global_norms(tmp_path, nproc):
    out = tmp_path / "exp1.h5"
    torchrun(tmp_path, "fsdp_record.py", nproc, out, 6)
    truth = [json.loads((tmp_path / f"exp1.h5.truth{r}.json").read_text()) for r in range(nproc)]
    for r in range(nproc):
        with open_run(rank_path(out, r)) as run:
            assert run.meta["model"]["sharded_params"] == list(range(6))
            # fully_shard makes FSDPLinear: the layers keep their own type (the advisor reads it)
            assert [m.type for m in run.modules] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
            local = run.layer_stat("weight_norm")
            # the rank's file holds its shard's norms: nothing was reduced across ranks
            np.testing.assert_allclose(local.values[-1], [truth[r]["local_weight"][n] for n in local.layers],
                                       rtol=1e-5, atol=1e-7)
            grads = run.layer_stat("grad_norm")
            np.testing.assert_allclose(grads.values[-1], [truth[r]["local_grad"][n] for n in grads.layers],
                                       rtol=1e-5, atol=1e-7)
        assert (tmp_path / f"exp1.h5.collectives{r}").read_text() == ""
    with open_ranks(out) as ranked:
        for stat, key in (("weight_norm", "global_weight"), ("grad_norm", "global_grad")):
            g = global_norms(ranked, stat)
            assert g.steps.tolist() == list(range(6))
            np.testing.assert_allclose(g.values[-1], [truth[0][key][n] for n in g.layers], rtol=1e-5)
        with pytest.raises(ValueError, match="only norms"):
            global_norms(ranked, "act_mean")


def test_fsdp2_recorder_adds_no_functional_collectives(tmp_path):
    """FSDP2 issues its own collectives; with the recorder the job issues exactly as many
    (torch.distributed and functional/DTensor ones) as without, none from a recorder frame,
    while the counter does see the ones a DTensor read issues (the truth, a planted recorder
    frame)."""
    counts = {}
    for mode in ("record", "bare"):
        (tmp_path / mode).mkdir()
        torchrun(tmp_path / mode, "fsdp_record.py", 2, tmp_path / mode / "exp1.h5", 6,
                 *(["bare"] if mode == "bare" else []))
        counts[mode] = [json.loads((tmp_path / mode / f"exp1.h5.counts{r}.json").read_text()) for r in range(2)]
    for rec, bare in zip(counts["record"], counts["bare"]):
        assert rec["recorder"] == []
        assert rec["training"] == bare["training"]               # of each kind
        assert rec["training"]["c10d"] > 0                       # FSDP2's own all-gathers: seen
        assert rec["truth"] > 0 and bare["truth"] > 0            # full_tensor(): seen by the counter
        assert any("_c10d_functional" in name for name in rec["planted"]), rec
