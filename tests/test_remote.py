"""ssh:// runs against a real sshd on 127.0.0.1: the mirror equals the remote file, resumes
without fetching a row twice, and every failure is named without damaging the mirror."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from trainspect.analysis import open_run
from trainspect.analysis.stream import StreamError
from trainspect.app import remote
from trainspect.recorder import format as fmt
from trainspect.recorder.h5file import RunFileWriter

from fixtures_runs import assert_same_file, make_run
from sshd_fixture import sshd, ssh_env  # noqa: F401  (fixtures)


def _writer(path, rows: int):
    w = RunFileWriter(path)
    w.start({"name": "remote-test"}, flush_every=0.01)
    w.add_tags(["train/loss"])
    _append(w, 0, rows)
    return w


def _append(w, start: int, rows: int) -> None:
    steps = list(range(start, start + rows))
    w.append_scalars(steps, [0] * rows, [1.0 / (1 + s) for s in steps], [0.0] * rows)
    w.flush(start + rows - 1)


@pytest.mark.parametrize("seed", [0, 1])
def test_finished_run_arrives_whole_and_readable(ssh_env, tmp_path, seed):
    src = make_run(tmp_path / "run.h5", n_steps=300, seed=seed)
    run = remote.parse(ssh_env.url(src))
    remote.fetch(run, follow=False)
    mirror = remote.mirror_path(run)
    assert_same_file(src, mirror)
    r = open_run(mirror)
    assert r.status().state == "finished"
    assert len(r.scalar("train/loss")) == len(open_run(src).scalar("train/loss"))


def test_resume_fetches_only_new_rows(ssh_env, tmp_path):
    src = tmp_path / "live.h5"
    w = _writer(src, 200)
    run = remote.parse(ssh_env.url(src))
    first = remote.fetch(run, follow=False)
    assert open_run(remote.mirror_path(run)).scalar("train/loss").steps[-1] == 199
    again = remote.fetch(run, follow=False)
    _append(w, 200, 50)
    third = remote.fetch(run, follow=False)
    w.close()
    last = remote.fetch(run, follow=False)
    row_bytes = 8 + 4 + 8 + 8   # step, tag, value, wall
    # Nothing new: only the layout and live state travel again, no row.
    assert again.bytes_in < first.bytes_in - 150 * row_bytes
    # 50 new rows: their bytes plus the same fixed overhead as the empty refetch.
    assert third.bytes_in - again.bytes_in <= 50 * row_bytes + 200
    assert third.bytes_in - again.bytes_in >= 50 * row_bytes
    assert_same_file(src, remote.mirror_path(run))
    assert last.bytes_in < first.bytes_in
    steps = open_run(remote.mirror_path(run)).scalar("train/loss").steps
    np.testing.assert_array_equal(steps, np.arange(250))


def _expect_error(run, *words) -> str:
    with pytest.raises(StreamError) as info:
        remote.fetch(run, follow=False)
    msg = str(info.value)
    assert all(w in msg for w in words), msg
    return msg


def test_missing_path_is_named_and_leaves_no_mirror(ssh_env, tmp_path):
    run = remote.parse(ssh_env.url(tmp_path / "nope.h5"))
    _expect_error(run, "no such file", "nope.h5")
    assert not remote.mirror_path(run).exists()


def test_trainspect_missing_on_remote(ssh_env, tmp_path, monkeypatch):
    src = make_run(tmp_path / "run.h5", n_steps=50)
    monkeypatch.setenv("TRAINSPECT_REMOTE_CMD", "/nonexistent/trainspect")
    _expect_error(remote.parse(ssh_env.url(src)), "not installed", "TRAINSPECT_REMOTE_CMD")


def test_auth_refused_names_the_fix_and_never_prompts(ssh_env, tmp_path, monkeypatch):
    src = make_run(tmp_path / "run.h5", n_steps=50)
    monkeypatch.setenv("TRAINSPECT_SSH_OPTS", ssh_env.ssh_opts("other_key"))
    _expect_error(remote.parse(ssh_env.url(src)), "refused the login", "never asks for passwords")


def test_unreachable_host(ssh_env, tmp_path):
    src = make_run(tmp_path / "run.h5", n_steps=50)
    url = ssh_env.url(src).replace(f":{ssh_env.port}", f":{remote_free_port()}")
    _expect_error(remote.parse(url), "unreachable")


def remote_free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_newer_schema_on_remote_is_refused_and_mirror_kept(ssh_env, tmp_path):
    src = make_run(tmp_path / "run.h5", n_steps=50)
    run = remote.parse(ssh_env.url(src))
    remote.fetch(run, follow=False)
    before = remote.mirror_path(run).read_bytes()
    with h5py.File(src, "r+", locking=False) as f:
        f.attrs[fmt.ATTR_SCHEMA] = np.int64(fmt.SCHEMA_VERSION + 1)
    _expect_error(run, "schema version", "upgrade trainspect")
    assert remote.mirror_path(run).read_bytes() == before


def test_parse_urls():
    r = remote.parse("ssh://me@gpu1:2222/runs/a.h5")
    assert (r.user, r.host, r.port, r.path) == ("me", "gpu1", 2222, "/runs/a.h5")
    assert remote.parse("ssh://gpu1/x.h5").url == "ssh://gpu1/x.h5"
    with pytest.raises(ValueError, match="expected ssh://"):
        remote.parse("ssh://gpu1")


def test_tail_follows_a_live_remote_run_until_it_finishes(ssh_env, tmp_path, capsys):
    from test_tail import start_writer

    from trainspect.app.cli import main

    src = tmp_path / "live.h5"
    writer = start_writer(src, 120, dt=0.01)
    try:
        rc = main(["tail", ssh_env.url(src), "--advisor-every", "0", "--wait", "30"])
    finally:
        writer.wait(timeout=60)
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "finished" in out
    assert "step    119" in out
    steps = open_run(remote.mirror_path(remote.parse(ssh_env.url(src)))).scalar("train/loss").steps
    np.testing.assert_array_equal(steps, np.arange(120))


def test_tail_of_a_missing_remote_run_says_so(ssh_env, tmp_path, capfd):
    from trainspect.app.cli import main

    rc = main(["tail", ssh_env.url(tmp_path / "gone.h5"), "--wait", "0"])
    assert rc == 2
    assert "no such file" in capfd.readouterr().err


def test_tail_of_rank_zero_follows_every_rank(ssh_env, tmp_path, capsys, monkeypatch):
    """Only rank 1 went NaN: the tail of rank 0's URL mirrors rank 1 too, so its advisor
    names rank 1 (following rank 0 alone, it would see a healthy run)."""
    from trainspect.app.cli import main
    from trainspect.recorder import Recorder

    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        with Recorder(tmp_path / "job" / "exp1.h5") as rec:
            for step in range(40):
                bad = rank == 1 and step >= 25
                rec.log({"train/loss": float("nan") if bad else 2.0 / (1 + step)}, step=step)
    for var in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var)
    rc = main(["tail", ssh_env.url(tmp_path / "job" / "exp1.h5"), "--wait", "30"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "2 ranks; mirroring ranks 1-1 beside rank 0" in out
    assert "rank 1" in out and "step 25" in out, out
    rank1 = remote.mirror_path(remote.parse(ssh_env.url(tmp_path / "job" / "exp1.rank1.h5")))
    assert_same_file(tmp_path / "job" / "exp1.rank1.h5", rank1)


@pytest.mark.parametrize("url, part", [
    ("ssh://-oProxyCommand=touch%20PWNED@localhost/x.h5", "user"),
    ("ssh://-oProxyCommand=touch PWNED;false@localhost/x.h5", "user"),
    ("ssh://me@-oProxyCommand=x/x.h5", "host"),
    ("ssh://-F/etc/passwd/x.h5", "host"),
])
def test_a_url_whose_user_or_host_reads_as_an_ssh_option_is_refused(tmp_path, monkeypatch, capsys, url, part):
    """Trial 18, A1: the URL's user@host sat before ssh's '--', so `ssh://-oProxyCommand=CMD@host/x.h5`
    handed ssh a ProxyCommand (a local shell command). Refused before ssh runs; the command never runs."""
    from trainspect.app.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=f"the {part} .* is not a"):
        remote.parse(url)
    for cmd in ("fetch", "tail"):
        assert main([cmd, url]) == 2
        assert "is not a" in capsys.readouterr().err
    assert not (tmp_path / "PWNED").exists()


def test_nothing_of_the_url_reaches_ssh_before_its_double_dash():
    argv = remote._ssh(remote.parse("ssh://me@gpu1:2222/runs/a.h5"), ["stream", "/runs/a.h5"])
    assert argv[argv.index("--") + 1:] == ["gpu1", "trainspect stream /runs/a.h5"]
    assert argv[argv.index("-l") + 1] == "me" and argv.index("-l") < argv.index("--")
    for ok in ("ssh://gpu-1.example.org/x.h5", "ssh://10.0.0.7/x.h5", "ssh://[::1]:22/x.h5", "ssh://ci_runner@h/x.h5"):
        assert remote.parse(ok).path == "/x.h5"
