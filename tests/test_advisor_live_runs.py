"""What the advisor says about a run still being written. Followed live (`trainspect tail`, the
app), a run 15 % through read "info slow_convergence: the loss was still falling when the run
ended ... lr too low": a live run's loss is meant to be still falling, and it has not ended."""
from __future__ import annotations

import numpy as np
import pytest
from trainspect.analysis import diagnose
from trainspect.recorder import Recorder


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_live_run_still_falling_is_not_told_to_train_longer(tmp_path, seed):
    rng = np.random.default_rng(seed)
    path = tmp_path / "r.h5"
    rec = Recorder(path)
    try:
        for step in range(300):
            rec.log({"loss": float((2.3 - 1.5 * step / 300) * np.exp(0.02 * rng.standard_normal()))})
        rec.flush()
        assert "slow_convergence" not in {f.symptom for f in diagnose(path)}
    finally:
        rec.close()
    assert "slow_convergence" in {f.symptom for f in diagnose(path)}      # once it ended, it is the finding
