"""``ssh://[user@]host[:port]/path.h5`` runs: a local mirror fed by ``trainspect stream`` over ssh.

ssh runs with the user's own config, keys and agent; trainspect never asks for or stores a
password (BatchMode=yes: a key that is refused is an error naming the fix). The remote
command is ``trainspect`` unless TRAINSPECT_REMOTE_CMD says otherwise (e.g. a venv's path).
Extra ssh options (tests, jump hosts) come from TRAINSPECT_SSH_OPTS.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True)
class RemoteRun:
    host: str
    path: str
    user: str = ""
    port: int | None = None

    @property
    def url(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"ssh://{user}{self.host}{port}{self.path}"


def is_remote(text) -> bool:
    return str(text).startswith("ssh://")


# A host is a DNS name, an IPv4 address or (bracketed in the URL) an IPv6 one; a user a login
# name. Nothing else reaches ssh's command line: a host or user starting with '-' would be read
# as an option (`ssh://-oProxyCommand=...@host/x.h5` runs a local command; trial 18, A1).
HOST_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._-]*)|[0-9A-Fa-f:.]+(?:%[A-Za-z0-9._-]+)?")
USER_RE = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.$-]*")


def parse(url: str) -> RemoteRun:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:   # a port that is not a number, an unclosed '[' ...
        raise ValueError(f"not a remote run: {url!r}: {exc}") from None
    if parts.scheme != "ssh" or not parts.hostname or not parts.path or parts.path == "/":
        raise ValueError(f"not a remote run: {url!r} (expected ssh://[user@]host[:port]/path/run.h5)")
    host, user = parts.hostname, parts.username or ""
    if not HOST_RE.fullmatch(host):
        raise ValueError(f"not a remote run: {url!r}: the host {host!r} is not a host name or address")
    if user and not USER_RE.fullmatch(user):
        raise ValueError(f"not a remote run: {url!r}: the user {user!r} is not a login name")
    return RemoteRun(host=host, path=parts.path, user=user, port=port)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "trainspect" / "remote"


def mirror_path(run: RemoteRun) -> Path:
    """One local folder per remote folder, the remote file name kept: the rank files of a
    distributed run (exp1.h5, exp1.rank1.h5, ...) mirror side by side and open as one run."""
    folder = RemoteRun(run.host, str(Path(run.path).parent), run.user, run.port).url
    key = hashlib.sha1(folder.encode()).hexdigest()[:12]
    return cache_dir() / f"{run.host}-{key}" / Path(run.path).name


GLOB_CHARS = "*?["
MAX_RANK_FOLLOWERS = 16   # a remote distributed run: its ranks mirrored (one ssh each) up to this


def other_ranks(run: RemoteRun, info) -> list:
    """The other rank files of the distributed run whose rank-0 file is ``run`` (``info``: its
    ``meta["distributed"]``), up to MAX_RANK_FOLLOWERS ranks in all; [] for any other file."""
    from trainspect.analysis.ranks import rank_path

    if not isinstance(info, dict) or info.get("rank") != 0:
        return []
    world = int(info.get("world_size") or 1)
    return [RemoteRun(run.host, rank_path(run.path, k), run.user, run.port)
            for k in range(1, min(world, MAX_RANK_FOLLOWERS))]


def ranks_notice(run: RemoteRun, info) -> str:
    world = int(info["world_size"])
    more = f" of {world} (open the others by glob)" if world > MAX_RANK_FOLLOWERS else ""
    return f"{run.url}: {world} ranks; mirroring ranks 1-{min(world, MAX_RANK_FOLLOWERS) - 1}{more} beside rank 0"


def has_glob(url: str) -> bool:
    return any(c in parse(url).path for c in GLOB_CHARS)


def _ssh(run: RemoteRun, args: list, *, batch: bool = True) -> list:
    remote = shlex.split(os.environ.get("TRAINSPECT_REMOTE_CMD", "trainspect"))
    cmd = ["ssh", *shlex.split(os.environ.get("TRAINSPECT_SSH_OPTS", ""))]
    if batch:
        cmd += ["-o", "BatchMode=yes"]
    if run.port:
        cmd += ["-p", str(run.port)]
    if run.user:
        cmd += ["-l", run.user]
    # '--' before the host: nothing of the URL can be read as an option, whatever parse() let by
    return cmd + ["--", run.host, " ".join(shlex.quote(a) for a in [*remote, *args])]


def expand(url: str, *, timeout: float = 60.0) -> list:
    """``ssh://host/runs/*.h5`` -> the URLs of the matching files, globbed on the remote host
    (``trainspect stream --list``). A URL without glob characters stays as it is. Raises
    ``ValueError`` with the reason (no match, host unreachable, login refused, ...)."""
    if not has_glob(url):
        return [url]
    run = parse(url)
    try:
        proc = subprocess.run(_ssh(run, ["stream", "--list", run.path]), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise ValueError("ssh is not installed on this machine") from None
    except subprocess.TimeoutExpired:
        raise ValueError(f"{run.host}: no answer within {timeout:g} s while listing {run.path}") from None
    if proc.returncode != 0:
        low = proc.stderr.lower()
        if "no run files match" in low:
            raise ValueError(f"{url}: no run files match on {run.host}")
        if "unrecognized arguments" in low or "invalid choice" in low:
            raise ValueError(f"{run.host}: its trainspect is too old to list runs (needs `trainspect stream --list`)")
        raise ValueError(explain(run, proc.returncode, proc.stderr))
    return [RemoteRun(run.host, line.strip(), run.user, run.port).url
            for line in proc.stdout.splitlines() if line.strip()]


def ssh_command(run: RemoteRun, have: dict, *, batch: bool = True, follow: bool = True,
                wait_s: float = 0.0) -> list:
    args = ["stream", run.path, "--from", json.dumps(have, separators=(",", ":"))]
    if not follow:
        args.append("--once")
    if wait_s > 0:
        args += ["--wait", f"{wait_s:g}"]
    return _ssh(run, args, batch=batch)


def explain(run: RemoteRun, rc: int, stderr: str) -> str:
    """One line saying what went wrong with ssh, in terms of what to do about it."""
    low = stderr.lower()
    if "permission denied" in low:
        return (f"{run.host}: ssh refused the login (no usable key); add your key with ssh-copy-id "
                "or ssh-add, trainspect never asks for passwords")
    if any(w in low for w in ("could not resolve", "connection refused", "no route", "timed out",
                              "network is unreachable")):
        return f"{run.host}: host unreachable ({stderr.strip().splitlines()[-1]})"
    if rc == 127 or "not found" in low or "no module named" in low:
        return (f"{run.host}: trainspect is not installed on the remote PATH; install it there "
                "or set TRAINSPECT_REMOTE_CMD to its full path")
    last = stderr.strip().splitlines()[-1] if stderr.strip() else f"ssh exited with status {rc}"
    return f"{run.host}: {last}"


def fetch(run: RemoteRun, *, follow: bool = True, batch: bool = True, on_batch=None,
          mirror: Path | None = None, wait_s: float = 0.0):
    """Bring the mirror of ``run`` up to date (and keep following it while ``follow``).
    Resumes from the rows the mirror holds; raises StreamError with a clear message."""
    from trainspect.analysis.stream import Mirror, StreamError   # h5py: only when used

    m = Mirror(mirror or mirror_path(run))
    try:
        proc = subprocess.Popen(ssh_command(run, m.rows(), batch=batch, follow=follow, wait_s=wait_s),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError:
        m.close()
        raise StreamError("ssh is not installed on this machine") from None
    try:
        try:
            m.consume(proc.stdout, on_batch=on_batch)
        except EOFError:
            pass
        except StreamError as exc:
            proc.kill()
            err = proc.stderr.read().decode(errors="replace")
            msg = str(exc)
            if "did not answer" in msg and err.strip():
                msg = explain(run, proc.wait(), err)
            raise StreamError(f"{run.url}: {msg}") from None
        rc = proc.wait()
        err = proc.stderr.read().decode(errors="replace")
        if rc != 0 or m.f is None:
            raise StreamError(explain(run, rc, err) if err.strip() or rc else
                              f"{run.url}: the connection ended before any data")
        return m
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        m.close()


FATAL_WORDS = ("refused the login", "not installed", "schema version", "protocol", "no such file",
               "cannot open", "not a remote run", "ssh is not installed", "another run at the same path")


def follow(run: RemoteRun, *, retries: int = 20, say=print, batch: bool = True, wait_s: float = 0.0) -> int:
    """Keep the mirror of ``run`` up to date until the remote run ends; reconnect after a
    dropped connection (resuming from the mirror's rows). 0 = run ended, 2 = gave up."""
    from trainspect.analysis.stream import StreamError

    fails, connected = 0, False

    def seen():
        nonlocal connected, fails
        connected, fails = True, 0

    while True:
        try:
            fetch(run, follow=True, batch=batch, on_batch=seen, wait_s=0.0 if connected else wait_s)
            return 0
        except StreamError as exc:
            msg = str(exc)
            if not connected or any(w in msg for w in FATAL_WORDS) or fails >= retries:
                say(f"trainspect: {msg}")
                return 2
            fails += 1
            say(f"trainspect: connection to {run.host} lost ({msg}); reconnecting ({fails}/{retries})")
            time.sleep(min(10.0, 0.5 * 2 ** (fails - 1)))


def follower_command(url: str, wait_s: float = 0.0) -> list:
    """``trainspect fetch --follow URL`` of this interpreter: the child that writes the mirror
    (a reader in this process never shares an HDF5 handle with the writer)."""
    return [sys.executable, "-m", "trainspect.app.cli", "fetch", "--follow", "--wait", f"{wait_s:g}", url]


def start_follower(url: str, wait_s: float = 0.0) -> subprocess.Popen:
    return subprocess.Popen(follower_command(url, wait_s), stdin=subprocess.DEVNULL)


def start_rank_followers(run: RemoteRun, info, *, wait_s: float = 0.0, say=print) -> list:
    """Rank 0 of a distributed remote run is followed: mirror its other ranks beside it (one
    follower each) and wait for each mirror's first batch, so that whatever reads rank 0's
    mirror (the advisor's rank rules) finds every rank. Returns the follower processes."""
    others = other_ranks(run, info)
    if not others:
        return []
    say(ranks_notice(run, info))
    started = [(other, mirror_stamp(other), start_follower(other.url, wait_s)) for other in others]
    for other, since, proc in started:
        wait_for_mirror(other, proc, since, timeout=wait_s + 30.0)   # a failed one has said why
    return [proc for *_, proc in started]


def mirror_stamp(run: RemoteRun):
    try:
        st = mirror_path(run).stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def wait_for_mirror(run: RemoteRun, proc: subprocess.Popen, since, timeout: float = 60.0) -> Path | None:
    """The mirror's path once the follower has written to it after ``since`` (its stamp
    before the follower started: an old mirror must not look like a stopped run), or
    None if the follower gave up first."""
    path = mirror_path(run)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and mirror_stamp(run) != since:
            return path
        if proc.poll() is not None:
            return path if proc.returncode == 0 and path.exists() else None
        time.sleep(0.02)
    return None
