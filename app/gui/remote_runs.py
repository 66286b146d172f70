"""ssh:// runs in the app: one follower child process per URL (``trainspect fetch --follow``)
keeps a local mirror up to date; the mirror opens as an ordinary live run.

Globs (``ssh://host/runs/*.h5``) are expanded on the remote host (``trainspect stream --list``)
in a worker thread, so the window never waits for the network. Every failure (unreachable
host, refused login, trainspect missing or of another schema there, no such file, a
connection that drops for good) reaches the window's error banner as one sentence naming the
URL; reconnects after a dropped connection show in the status bar.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, QProcess, QTimer, Signal

from trainspect.analysis.ranks import rank_of

from .. import rank_view, remote

POLL_MS = 100
FIRST_DATA_TIMEOUT_S = 120.0    # a follower that wrote nothing by then is stopped and reported


@dataclass
class Follower:
    url: str
    target: remote.RemoteRun
    proc: QProcess
    since: object                  # the mirror's stamp before the follower started
    started: float
    opened: bool = False           # its mirror is open in the app
    reported: bool = False         # its end (an error) was reported
    stderr: list = field(default_factory=list)


class RemoteRuns(QObject):
    failed = Signal(str, str)      # url, message (for the error banner)
    notice = Signal(str)           # progress: "listing ...", "reconnecting ..." (status bar)
    _expanded = Signal(str, object, str)   # url, [urls], error (from the listing thread)

    def __init__(self, runs, parent=None):
        super().__init__(parent)
        self.runs = runs
        self.followers: dict[str, Follower] = {}
        self._pending = 0           # glob listings in flight
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)
        self._expanded.connect(self._on_expanded)
        runs.runAdded.connect(self._follow_other_ranks)

    # ------------------------------------------------------------ opening
    def open(self, url: str) -> None:
        try:
            remote.parse(url)
            glob = remote.has_glob(url)
        except ValueError as exc:
            self.failed.emit(url, str(exc))
            return
        if not glob:
            self._follow(url)
            return
        self._pending += 1
        self.notice.emit(f"listing {url} …")
        threading.Thread(target=self._list, args=(url,), daemon=True, name="trainspect-remote-list").start()

    def _list(self, url: str) -> None:
        try:
            self._expanded.emit(url, remote.expand(url), "")
        except ValueError as exc:
            self._expanded.emit(url, [], str(exc))

    def _on_expanded(self, url: str, urls, error: str) -> None:
        self._pending -= 1
        if error:
            self.failed.emit(url, error)
        for u in urls:
            self._follow(u)

    def _follow(self, url: str) -> None:
        if url in self.followers and self.followers[url].proc.state() != QProcess.NotRunning:
            return
        target = remote.parse(url)
        cmd = remote.follower_command(url)
        proc = QProcess(self)
        proc.setProgram(cmd[0])
        proc.setArguments(cmd[1:])
        f = Follower(url, target, proc, remote.mirror_stamp(target), time.monotonic())
        proc.readyReadStandardError.connect(lambda f=f: self._on_stderr(f))
        self.followers[url] = f
        proc.start()
        self.notice.emit(f"connecting to {target.host} for {url} …")
        self._timer.start()

    # ------------------------------------------------------------ following
    def _on_stderr(self, f: Follower) -> None:
        text = bytes(f.proc.readAllStandardError()).decode(errors="replace")
        for line in text.splitlines():
            line = line.removeprefix("trainspect: ").strip()
            if line:
                f.stderr.append(line)
                if "reconnecting" in line:
                    self.notice.emit(line)

    def _poll(self) -> None:
        for f in list(self.followers.values()):
            if not f.opened and remote.mirror_path(f.target).exists() and remote.mirror_stamp(f.target) != f.since:
                f.opened = True
                if not self._beside_rank0(f):
                    self.runs.open_async([remote.mirror_path(f.target)])
                else:
                    self._rank_arrived(f)
            if f.proc.state() == QProcess.NotRunning and not f.reported:
                f.reported = True
                self._on_stderr(f)
                if f.proc.exitCode() != 0 or f.proc.exitStatus() != QProcess.NormalExit:
                    why = f.stderr[-1] if f.stderr else f"the follower ended with status {f.proc.exitCode()}"
                    self.failed.emit(f.url, why if f.url in why or f.target.host in why else f"{f.url}: {why}")
            elif not f.opened and time.monotonic() - f.started > FIRST_DATA_TIMEOUT_S:
                f.proc.kill()
        if all(f.proc.state() == QProcess.NotRunning and f.reported
               for f in self.followers.values()) and not self._pending:
            self._timer.stop()

    def _beside_rank0(self, f: Follower) -> bool:
        """A rank-k file of a run whose rank 0 is followed too: only mirrored (beside rank 0's
        mirror), the app reads it through rank 0's run (analysis.ranks)."""
        base, rank = rank_of(f.target.path)
        return rank > 0 and remote.RemoteRun(f.target.host, base, f.target.user, f.target.port).url in self.followers

    def _follow_other_ranks(self, entry) -> None:
        """A remote run's rank 0 opened: mirror its other ranks beside it (the Ranks tab, bands)."""
        f = next((f for f in self.followers.values() if remote.mirror_path(f.target) == entry.path), None)
        info = (entry.run.meta or {}).get("distributed") if f is not None else None
        others = remote.other_ranks(f.target, info) if f is not None else []
        if others:
            self.notice.emit(remote.ranks_notice(f.target, info))
        for other in others:
            self._follow(other.url)

    def _rank_arrived(self, f: Follower) -> None:
        """Another rank's mirror has data: rank 0's run re-reads its ranks."""
        base, _ = rank_of(f.target.path)
        mirror0 = remote.mirror_path(remote.RemoteRun(f.target.host, base, f.target.user, f.target.port))
        entry = self.runs.find(mirror0)
        if entry is not None and entry.ready:
            rank_view.release(entry, self.runs.io)
            self.runs.runUpdated.emit(entry, 0)

    def busy(self) -> bool:
        """Something still to arrive: a listing, or a follower that has not written its mirror yet."""
        return bool(self._pending) or any(not f.opened and not f.reported
                                          for f in self.followers.values())

    def stop(self) -> None:
        """End every follower (the window closes); the mirrors stay for the next time."""
        self._timer.stop()
        for f in self.followers.values():
            if f.proc.state() != QProcess.NotRunning:
                # SIGINT, as Ctrl-C: the follower closes its mirror. A killed one left the file
                # flagged as open for writing, so the next open threw it away and fetched it all.
                os.kill(f.proc.processId(), signal.SIGINT)
                if not f.proc.waitForFinished(5000):
                    f.proc.kill()
                    f.proc.waitForFinished(2000)
