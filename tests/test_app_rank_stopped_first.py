"""The app's advisor names the rank that stopped first, as `trainspect diagnose` does (trial 17,
F11): torchrun SIGTERMs the other ranks when one dies, and rank 0's own "terminated (SIGTERM)"
was all the app said. A job whose ranks finished together says nothing of the kind."""
from __future__ import annotations

import time

import pytest

pytest.importorskip("PySide6")

from tests.test_diagnose_rank_stopped_first import _job, _set_state  # noqa: E402
from trainspect.analysis import open_run  # noqa: E402
from trainspect.app.gui.advisor import STOP_CHARS, diagnose_run  # noqa: E402
from trainspect.recorder import format as fmt  # noqa: E402


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_advisor_message_heads_with_the_rank_that_died(tmp_path, seed):
    rank0, rank1 = _job(tmp_path, [87, 83], seed)
    _set_state(rank0, fmt.STATUS_CRASHED, "terminated (SIGTERM) at step 86")
    _set_state(rank1, fmt.STATUS_RUNNING, heartbeat=time.time() - 600)     # killed: its writer went silent
    with open_run(rank0) as run:
        findings, message, _ = diagnose_run(run)
    assert findings is not None
    assert message.startswith("rank 1 stopped first: writer stopped responding at step 82"), message
    assert "rank 0 (this file) then crashed at step 86" in message


def test_a_long_crash_message_is_cut_and_ranks_that_finished_say_nothing(tmp_path):
    rank0, rank1 = _job(tmp_path / "long", [87, 83])
    _set_state(rank0, fmt.STATUS_CRASHED, "RuntimeError: " + "gloo connection reset by peer " * 8)
    _set_state(rank1, fmt.STATUS_CRASHED, "killed")
    with open_run(rank0) as run:
        _, message, _ = diagnose_run(run)
    stop = message.split(" — ")[0]
    assert stop.startswith("rank 1 stopped first") and len(stop) <= STOP_CHARS and stop.endswith("…")
    together = _job(tmp_path / "together", [50, 50])
    with open_run(together[0]) as run:
        _, message, _ = diagnose_run(run)
    assert "stopped first" not in message
