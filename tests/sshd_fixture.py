"""A real OpenSSH server on 127.0.0.1 for the ssh:// tests: throw-away host and user keys in
a temp dir, a free port, key login only. Skips only where sshd is not installed."""
from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
import trainspect

# The folder that holds the imported trainspect package (not resolved: it may be a symlink).
REPO_PATH = os.path.dirname(os.path.dirname(trainspect.__file__))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path, kind: str = "ed25519") -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True)


class Sshd:
    def __init__(self, root: Path):
        self.root = root
        self.port = _free_port()
        self.user = getpass.getuser()
        _keygen(root / "host_key")
        _keygen(root / "user_key")
        _keygen(root / "other_key")   # a key the server does not know (auth refused)
        (root / "authorized_keys").write_text((root / "user_key.pub").read_text())
        (root / "known_hosts").write_text(
            f"[127.0.0.1]:{self.port} {(root / 'host_key.pub').read_text()}")
        cfg = root / "sshd_config"
        cfg.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {root / 'host_key'}",
            f"AuthorizedKeysFile {root / 'authorized_keys'}", "StrictModes no", "UsePAM no",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PermitRootLogin yes",
            f"PidFile {root / 'sshd.pid'}", "PermitUserEnvironment no", "AcceptEnv TRAINSPECT_*",
            "LogLevel ERROR", ""]))
        Path("/run/sshd").mkdir(exist_ok=True)   # privilege separation dir sshd insists on
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(cfg)], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"sshd did not start: {self.proc.stderr.read().decode()}")
                time.sleep(0.05)

    def ssh_opts(self, key: str = "user_key") -> str:
        return (f"-F none -i {self.root / key} -o IdentitiesOnly=yes -o IdentityAgent=none "
                f"-o UserKnownHostsFile={self.root / 'known_hosts'} -o StrictHostKeyChecking=yes")

    def remote_cmd(self) -> str:
        # The "remote" trainspect: this checkout, found through PYTHONPATH on the far side.
        return f"env PYTHONPATH={REPO_PATH} {sys.executable} -m trainspect.app.cli"

    def url(self, path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{Path(path).resolve()}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    if not os.path.exists(SSHD):
        pytest.skip("OpenSSH server (sshd) not installed")
    server = Sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture
def ssh_env(sshd, monkeypatch, tmp_path):
    """ssh:// runs of this test go to the test sshd; mirrors land in tmp_path."""
    monkeypatch.setenv("TRAINSPECT_SSH_OPTS", sshd.ssh_opts())
    monkeypatch.setenv("TRAINSPECT_REMOTE_CMD", sshd.remote_cmd())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return sshd
