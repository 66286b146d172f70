"""``trainspect open --screenshot`` waits for the background reads: a distributed run's Ranks tab
was in some shots and not in others of the same run (trial 17, F15), so a picture for CI or
docs changed from one run to the next."""
import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")

from tests.fixtures_runs import make_run  # noqa: E402
from tests.rank_runs import rank_series, write_rank_files  # noqa: E402


def _settle(window, path):
    window.open_paths([str(path)])
    assert window.wait_loaded(30)
    window.advisor.wait()
    assert window.wait_background(30)        # what `open --screenshot` does before it paints


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_distributed_runs_ranks_tab_is_always_in_the_screenshot(window, tmp_path, seed):
    path = tmp_path / "ddp.h5"
    write_rank_files(path, rank_series("straggler", [200, 200], np.random.default_rng(seed), target=1))
    _settle(window, path)
    assert window.tabs.isTabVisible(window.tabs.indexOf(window.ranks))


def test_a_single_process_run_settles_without_a_ranks_tab(window, tmp_path):
    _settle(window, make_run(tmp_path / "one.h5", n_steps=100, n_layers=0))
    assert not window.tabs.isTabVisible(window.tabs.indexOf(window.ranks))
