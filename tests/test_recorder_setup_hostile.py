"""What a training script hands the Recorder at setup and in log() must not cost it the run:
a bad argument frees the file, odd config values are kept as text, a name HDF5 cannot store
is refused out loud, a warning is printed once, and a link is written through."""
import fractions
import warnings

import pytest
from trainspect import Recorder
from trainspect.analysis import open_run
from trainspect.recorder.warning import RecorderWarning


@pytest.mark.parametrize("bad", [{"stats_every": -1}, {"hist_every": "often"}, {"roles": {"train": 5}},
                                 {"max_pending": 0}])
def test_a_bad_argument_leaves_the_run_file_free(tmp_path, bad):
    path = tmp_path / "run.h5"
    with pytest.raises((ValueError, TypeError)):
        Recorder(path, **bad)
    # The notebook cell is fixed and run again: the same path must be usable at once.
    with Recorder(path) as rec:
        rec.log({"train/loss": 1.0}, step=0)
    assert open_run(path).scalar("train/loss").values.tolist() == [1.0]


class _ReprNeedsSetup:
    def __repr__(self):
        raise AttributeError("'_ReprNeedsSetup' object has no attribute 'cfg'")


def test_config_values_that_cannot_be_printed_or_converted_are_kept_as_text(tmp_path):
    config = {"model_cfg": _ReprNeedsSetup(), "ratio": fractions.Fraction(10 ** 400, 3), "lr": 0.1}
    with Recorder(tmp_path / "run.h5", config=config) as rec:
        rec.log({"train/loss": 1.0}, step=0)
    saved = open_run(tmp_path / "run.h5").meta["config"]
    assert saved["lr"] == 0.1
    assert "_ReprNeedsSetup" in saved["model_cfg"] and "AttributeError" in saved["model_cfg"]
    assert saved["ratio"].startswith("Fraction(")


def test_a_metric_name_with_a_nul_is_refused_not_merged_into_another(tmp_path):
    path = tmp_path / "run.h5"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(path) as rec:
            for s in range(3):
                rec.log({"train/loss": 1.0, "train/loss\0": 999.0}, step=s)
    run = open_run(path)
    assert run.metric_names() == ["train/loss"]
    assert run.scalar("train/loss").values.tolist() == [1.0, 1.0, 1.0]
    assert any("NUL" in str(w.message) for w in caught)
    with Recorder(tmp_path / "strict.h5", strict=True) as rec, pytest.raises(ValueError, match="NUL"):
        rec.log({"a\0b": 1.0}, step=0)


def test_a_bad_step_at_every_call_warns_once(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(tmp_path / "run.h5") as rec:
            for i in range(500):
                rec.log({"train/loss": 1.0}, step=i + 0.5)   # a fractional epoch at every call
            warned = len(rec._warned)
    ours = [w for w in caught if issubclass(w.category, RecorderWarning) and "step must be" in str(w.message)]
    assert len(ours) == 1 and "0.5" in str(ours[0].message)
    assert warned <= 2


def test_a_run_path_that_is_a_link_writes_its_target(tmp_path):
    disk, runs = tmp_path / "bigdisk", tmp_path / "runs"
    disk.mkdir(), runs.mkdir()
    (runs / "exp1.h5").symlink_to(disk / "exp1.h5")     # made ahead of the run, dangling
    with warnings.catch_warnings():
        warnings.simplefilter("error", RecorderWarning)   # no "already holds a run" either
        with Recorder(runs / "exp1.h5") as rec:
            rec.log({"train/loss": 1.0}, step=0)
    assert (runs / "exp1.h5").is_symlink()
    assert open_run(disk / "exp1.h5").scalar("train/loss").values.tolist() == [1.0]
    # overwrite=True through the link replaces the target's run, and the link stays
    with Recorder(runs / "exp1.h5", overwrite=True) as rec:
        rec.log({"train/loss": 2.0}, step=0)
    assert (runs / "exp1.h5").is_symlink()
    assert open_run(runs / "exp1.h5").scalar("train/loss").values.tolist() == [2.0]


def test_a_step_that_goes_back_warns_once_and_keeps_the_values(tmp_path):
    """dcgan logs step=i with i restarting at 0 every epoch: the loss zig-zagged back to step 0
    without a word."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Recorder(tmp_path / "run.h5") as rec:
            for epoch in range(3):
                for i in range(4):
                    rec.log({"train/loss": float(epoch)}, step=i)
    back = [w for w in caught if "steps went back" in str(w.message)]
    assert len(back) == 1 and "log(step=0) after step 3" in str(back[0].message)
    assert len(open_run(tmp_path / "run.h5").scalar("train/loss").values) == 12
    with warnings.catch_warnings():
        warnings.simplefilter("error", RecorderWarning)   # the same step again, or step=None: no warning
        with Recorder(tmp_path / "ok.h5") as rec:
            for s in range(5):
                rec.log({"train/loss": 1.0}, step=s)
                rec.log({"val/loss": 1.0}, step=s)
                rec.log({"lr": 0.1})


def test_config_values_that_broke_the_run_are_kept_as_notes(tmp_path):
    """np.timedelta64 (an Integral to numpy) raised TypeError from Recorder(); an int of 5000
    digits killed the writer thread (JSON's 4300-digit limit) and the run was lost; a 70 MB
    config was written and every reader refused the file as damaged."""
    import numpy as np

    cases = {"timedelta": {"timeout": np.timedelta64(5, "s")}, "huge_int": {"seed": 10 ** 5000},
             "huge_config": {"vocab": "x" * (9 << 20), "lr": 0.1}}
    for name, config in cases.items():
        path = tmp_path / f"{name}.h5"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with Recorder(path, config=config) as rec:
                for s in range(5):
                    rec.log({"train/loss": 1.0 / (s + 1)}, step=s)
        with open_run(path) as run:
            assert run.status().state == "finished", name
            assert run.scalar("train/loss").steps.tolist() == list(range(5)), name
            kept = run.meta["config"]
        if name == "timedelta":
            assert "5" in kept["timeout"]
        if name == "huge_int":
            assert "bits" in kept["seed"]
        if name == "huge_config":
            assert kept["lr"] == 0.1 and "too large" in kept["vocab"]
            assert any("too large" in str(w.message) for w in caught)
