"""ssh:// runs in the app and remote globs, against a real sshd on 127.0.0.1 (no mock of ssh):
several remote runs mixed with local ones, globs expanded on the host, a distributed run's rank
files mirrored side by side, and each failure named in the error banner."""
from __future__ import annotations

import pytest

from trainspect.analysis.ranks import open_ranks
from trainspect.app import remote
from trainspect.app.gui.widgets.remote_dialog import OpenRemoteDialog, recent_hosts, remote_url
from trainspect.recorder import Recorder

from fixtures_runs import make_run
from sshd_fixture import sshd, ssh_env  # noqa: F401  (fixtures)

WAIT_MS = 60_000


def _names(window):
    return sorted(e.name for e in window.runs.runs())


def test_glob_is_expanded_on_the_host(ssh_env, tmp_path):
    runs = tmp_path / "runs"
    for name in ("b", "a", "c"):
        make_run(runs / f"{name}.h5", n_steps=20)
    (runs / "notes.txt").write_text("not a run")
    urls = remote.expand(ssh_env.url(runs) + "/*.h5")
    assert [remote.parse(u).path.rsplit("/", 1)[1] for u in urls] == ["a.h5", "b.h5", "c.h5"]
    assert remote.expand(ssh_env.url(runs / "a.h5")) == [ssh_env.url(runs / "a.h5")]   # no glob: as given
    with pytest.raises(ValueError, match="no run files match"):
        remote.expand(ssh_env.url(runs) + "/*.nope")


def test_remote_runs_and_globs_open_beside_local_ones(window, ssh_env, tmp_path, qtbot):
    make_run(tmp_path / "remote" / "r1.h5", n_steps=50)
    make_run(tmp_path / "remote" / "r2.h5", n_steps=60)
    make_run(tmp_path / "far" / "single.h5", n_steps=40)
    local = make_run(tmp_path / "local.h5", n_steps=30)
    window.open_paths([ssh_env.url(tmp_path / "remote") + "/r*.h5", str(local), ssh_env.url(tmp_path / "far/single.h5")])
    qtbot.waitUntil(lambda: len(window.runs) == 4, timeout=WAIT_MS)
    assert not window.errors
    mirrors = [e for e in window.runs.runs() if str(e.path).startswith(str(tmp_path / "cache"))]
    assert len(mirrors) == 3
    for e in mirrors:
        qtbot.waitUntil(lambda e=e: e.run.status().state == "finished", timeout=WAIT_MS)


@pytest.mark.parametrize("given", ["glob", "rank0"])
def test_rank_files_of_a_remote_run_mirror_side_by_side_and_open_as_one(window, ssh_env, tmp_path, qtbot,
                                                                         monkeypatch, given):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        with Recorder(tmp_path / "job" / "exp1.h5") as rec:
            for step in range(5):
                rec.log({"train/loss": 1.0 + rank + step}, step=step)
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var)
    # a glob names every rank; rank 0's URL alone: its meta says 2 ranks, the app fetches rank 1 too
    window.open_paths([ssh_env.url(tmp_path / "job") + "/exp1*.h5" if given == "glob"
                       else ssh_env.url(tmp_path / "job" / "exp1.h5")])
    rank1 = remote.mirror_path(remote.parse(ssh_env.url(tmp_path / "job" / "exp1.rank1.h5")))
    qtbot.waitUntil(lambda: len(window.runs) == 1 and rank1.exists(), timeout=WAIT_MS)
    (entry,) = window.runs.runs()          # rank 1's mirror is not a run of its own
    qtbot.waitUntil(lambda: not window.remote.busy(), timeout=WAIT_MS)
    window.tabs.setCurrentWidget(window.ranks)
    qtbot.waitUntil(lambda: window.ranks.metric.ranks == [0, 1], timeout=WAIT_MS)
    with open_ranks(entry.path) as ranked:
        assert ranked.ranks == [0, 1]
        assert ranked.matrix("train/loss").row(1).tolist() == [2.0, 3.0, 4.0, 5.0, 6.0]


@pytest.mark.parametrize("case", ["missing_path", "refused_key", "unreachable", "no_match"])
def test_each_failure_is_named_in_the_banner(window, ssh_env, sshd, tmp_path, qtbot, monkeypatch, case):
    url = ssh_env.url(tmp_path / "nothing-here.h5")
    expect = "no such file"
    if case == "refused_key":
        make_run(tmp_path / "ok.h5", n_steps=5)
        url = ssh_env.url(tmp_path / "ok.h5")
        monkeypatch.setenv("TRAINSPECT_SSH_OPTS", sshd.ssh_opts("other_key"))
        expect = "refused the login"
    elif case == "unreachable":
        url = url.replace(f":{sshd.port}/", ":1/")
        expect = "unreachable"
    elif case == "no_match":
        url = ssh_env.url(tmp_path) + "/*.nope"
        expect = "no run files match"
    window.open_paths([url])
    qtbot.waitUntil(lambda: bool(window.errors), timeout=WAIT_MS)
    assert expect in window.errors[-1].lower(), window.errors
    assert window.banner.isVisible()
    assert len(window.runs) == 0


def test_open_remote_dialog_builds_the_url_and_remembers_hosts(window):
    assert remote_url("me@gpu1:2222", "runs/*.h5") == "ssh://me@gpu1:2222/runs/*.h5"
    with pytest.raises(ValueError):
        remote_url("", "/x.h5")
    dialog = OpenRemoteDialog(window.settings, window)
    dialog.host.setEditText("me@gpu1")
    dialog.path.setText("/data/run.h5")
    dialog.accept()
    assert dialog.url() == "ssh://me@gpu1/data/run.h5"
    assert recent_hosts(window.settings) == ["me@gpu1"]
    again = OpenRemoteDialog(window.settings, window)
    assert again.host.itemText(0) == "me@gpu1"


def test_closing_the_window_leaves_a_live_mirror_usable(window, ssh_env, tmp_path, qtbot):
    """The window closes while a remote run is still written: its follower stops as on Ctrl-C
    and closes the mirror, so the next open resumes from it (a killed follower left the mirror
    flagged as open for writing, and the next open threw it away and fetched everything)."""
    from trainspect.recorder.format import read_head

    path = tmp_path / "remote" / "live.h5"
    with Recorder(path, name="live") as rec:
        for step in range(30):
            rec.log({"train/loss": 1.0 / (1 + step)}, step=step)
        rec.flush()
        window.open_paths([ssh_env.url(path)])
        qtbot.waitUntil(lambda: len(window.runs) == 1 and window.runs.runs()[0].run is not None, timeout=WAIT_MS)
        mirror = remote.mirror_path(remote.parse(ssh_env.url(path)))
        assert read_head(mirror).writer_open   # the follower holds it
        window.remote.stop()
        assert not read_head(mirror).writer_open, "the follower left the mirror flagged as open for writing"
