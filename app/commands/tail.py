"""``trainspect tail RUN``: follow a live run in a terminal (no Qt, no display needed).

Prints one compact line each time it finds a newer step (latest user metrics, learning rate,
gradient norm, under the step of the newest user metric; a run faster than the ``--interval``
polls, or a busy machine, shows every few steps: the file has them all), the last values when
the run ends, and each advisor
finding once, when it first appears. Exits when the run finishes, crashes or its writer
stops responding, or on Ctrl-C. ``--once`` prints one snapshot and exits.
A run restarted at the same path while it is followed is followed on: resumed
(``Recorder(..., resume=True)``: a new segment) or replaced (``overwrite=True``), with a line
saying which.

Exit code: 0 = the run finished (or Ctrl-C / --once), 1 = it crashed or its writer stopped
responding, 2 = the file could not be read.
"""
from __future__ import annotations

import math
import signal
import subprocess
import sys
import time

from trainspect.analysis import RunFileError, open_run
from trainspect.analysis.run import STALE_MIN_SECONDS

from ..present import text_lines
from ..restarts import Restart, file_identity, restart_of
from ..terminal_text import one_line
from ..vocab import SYS_GRAD_NORM, SYS_LR, RunState, is_sys, numbered_path, writer_holds

MAX_USER_METRICS = 6
WAITABLE = ("no such file", "run is starting", "cannot open as HDF5", "truncated")
RESTART_WAIT_S = 5.0   # how long a read error may last before it counts as a real failure
STAT_POLL_S = 0.01   # os.stat of the run file: ~2 us, so a 10 ms look costs nothing


def _stamp(path):
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def wait_for_change(path, timeout: float, stamp) -> tuple:
    """Sleep until the file's mtime or size moves away from ``stamp`` (the writer flushed)
    or ``timeout`` passed; returns the new stamp. Cheaper than inotify to set up, and works
    the same on every platform."""
    end = time.monotonic() + timeout
    while True:
        now = _stamp(path)
        if now != stamp:
            return now
        left = end - time.monotonic()
        if left <= 0:
            return now
        time.sleep(min(STAT_POLL_S, left))


def newer_live_run(path):
    """The newest ``<stem>-N`` run next to ``path`` that a live writer holds, or None."""
    newest, n = None, 2
    while n < 10_000 and (candidate := numbered_path(path, n)).exists():
        if writer_holds(candidate):
            newest = candidate
        n += 1
    return newest


def _wait_for_restart(run, identity, sessions: int, timeout: float):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        restart = restart_of(run, identity, sessions)
        if restart is not None:
            return restart
        time.sleep(0.05)
    return None


def add_arguments(parser) -> None:
    parser.add_argument("run", metavar="RUN", help="run file (.h5) being written (or finished)")
    parser.add_argument("--interval", type=float, default=0.5, metavar="S",
                        help="longest wait between looks (default 0.5); a change of the file is "
                             f"seen within {STAT_POLL_S * 1e3:.0f} ms")
    parser.add_argument("--advisor-every", type=float, default=5.0, metavar="S",
                        help="re-run the advisor at most every S seconds (default 5; 0 = never)")
    parser.add_argument("--wait", type=float, default=30.0, metavar="S",
                        help="wait up to S seconds for the run file to appear (default 30)")
    parser.add_argument("--once", action="store_true", help="print one snapshot (values, state, findings) and exit")


def wait_for_run(path, timeout: float, poll: float = 0.1, any_error: bool = False, say=None):
    """Open ``path`` once the writer has created it and written its header; RunFileError after
    ``timeout``. ``any_error``: retry every error until then (a restarting writer's file).
    ``say(text)`` is told once that it waits (a mistyped path is not 30 s of silence)."""
    deadline = time.monotonic() + max(0.0, timeout)
    while True:
        try:
            return open_run(path)
        except RunFileError as exc:
            if time.monotonic() >= deadline or not (any_error or any(w in str(exc) for w in WAITABLE)):
                raise
            if say is not None:
                why = str(exc).removeprefix(f"{path}: ")
                say(f"waiting up to {timeout:.0f} s for {path} ({why}); --wait S changes this")
                say = None
        time.sleep(poll)


def fmt_value(v: float) -> str:
    if not math.isfinite(v):
        return str(v)
    return f"{v:.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"


def latest(summary, name: str):
    """``(last value, its step)`` of metric ``name`` in a Run.scalar_summary(), or None."""
    try:
        i = summary.names.index(name)
    except ValueError:
        return None
    if not summary.counts[i]:
        return None
    return float(summary.last[i]), int(summary.last_steps[i]) if summary.last_steps is not None else -1


def _value_text(got, label: str, step: int) -> str:
    """``label value``, with the value's own step where it is not the line's: the gradient
    norm of step 118 on the line of step 120 read as step 120's ("" when none yet)."""
    if got is None:
        return ""
    v, own = got
    return f"{one_line(label)} {fmt_value(v)}" + (f" (step {own})" if own >= 0 and own != step else "")


def line_step(user: list, recorded: list, fallback: int) -> int:
    """The step of the values a line shows: the newest of the user's metrics (the training
    loss), else of the recorder's. Not the table's largest step: the recorder writes its values
    of a step (data wait, step time) before the user logs that step's loss, which put the header
    one ahead of every value on the line."""
    for values in (user, recorded):
        steps = [got[1] for got in values if got is not None and got[1] >= 0]
        if steps:
            return max(steps)
    return fallback


def snapshot_values(status, summary) -> tuple[int, str]:
    """``(N, "step N | user metrics | lr | grad norm")``: a terminal line but for the run's
    state. Read from the run's summary (counts and last values, no points held): memory
    independent of run length."""
    user = [n for n in summary.names if not is_sys(n)][:MAX_USER_METRICS]
    # the recorder's LR once, under its own label, when the user logs one as "lr" too
    recorded = {"lr (recorded)" if "lr" in user else "lr": SYS_LR, "grad norm": SYS_GRAD_NORM}
    user_got = [latest(summary, n) for n in user]
    recorded_got = [latest(summary, n) for n in recorded.values()]
    step = line_step(user_got, recorded_got, max(status.last_step, summary.max_step))
    parts = [f"step {step:>6}"]
    for labels, got in ((user, user_got), (list(recorded), recorded_got)):
        texts = [t for t in (_value_text(g, label, step) for g, label in zip(got, labels)) if t]
        if texts:
            parts.append("  ".join(texts))
    return step, " | ".join(parts)


def snapshot_line(run, status, summary) -> str:
    """``step N | user metrics | lr | grad norm | state``: one terminal line."""
    return f"{snapshot_values(status, summary)[1]} | {status.state}"


class FindingTracker:
    """Runs the advisor and reports each symptom once (a finding that grows is not repeated).
    Holds the other rank files of a distributed run open across passes (``close()``)."""

    def __init__(self):
        self.seen: set = set()
        self.findings: list = []
        self.error = ""
        self.siblings: dict = {}   # path -> (file identity, Run opened without kept points)

    def sibling(self, path):
        """``reuse`` for the advisor (``open_ranks``): a sibling rank file opened once and kept,
        so each pass reads only the rows added since (``Run.scalar_views`` is incremental)."""
        from ..restarts import file_identity

        identity, held = file_identity(path), self.siblings.get(str(path))
        if held is not None and held[0] == identity:
            return held[1]
        if held is not None:   # another file at that path now (a relaunch): open it afresh
            del self.siblings[str(path)]
            held[1].close()
        if identity is None:
            return None
        try:
            run = open_run(path, keep_points=False)
        except (RunFileError, OSError):
            return None   # open_ranks tries once more, else counts the rank as missing
        self.siblings[str(path)] = (identity, run)
        return run

    def close(self) -> None:
        for _, run in self.siblings.values():
            run.close()
        self.siblings.clear()

    def update(self, run) -> list:
        from trainspect.analysis import diagnose

        try:
            self.findings = list(diagnose(run, reuse=self.sibling))
        except Exception as exc:  # the advisor failing must not stop the tail
            self.close()   # a sibling read failing half-way: open the files afresh next time
            msg = f"advisor failed: {type(exc).__name__}: {exc}"
            new_error, self.error = msg != self.error, msg
            return [msg] if new_error else []
        fresh = [f for f in self.findings if (f.symptom, tuple(f.layers)) not in self.seen]
        self.seen.update((f.symptom, tuple(f.layers)) for f in fresh)
        # a symptom the run has since outgrown (a divergence whose loss came back down) is taken
        # back in a line: three warnings scrolled by, then the end said "1 finding(s)"
        gone = sorted({key[0] for key in self.seen} - {f.symptom for f in self.findings})
        self.seen = {key for key in self.seen if key[0] not in gone}    # shown again if it comes back
        return [f"no longer found: {symptom}" for symptom in gone] + fresh


def _say(text: str) -> None:
    print(text, flush=True)


def _say_err(text: str) -> None:   # progress notes that are not the run's output
    print(f"trainspect tail: {text}", file=sys.stderr, flush=True)


def tail(run, interval: float = 0.5, advisor_every: float = 5.0, once: bool = False, wait: float = 30.0) -> int:
    """Follow ``run`` until it ends; across restarts of the run at the same path (resume or
    replacement), which reopen the file (runs opened here are closed here)."""
    opened = None
    tracker = FindingTracker()
    try:
        while True:
            outcome = _follow(run, tracker, interval, advisor_every, once)
            if not isinstance(outcome, Restart):
                return outcome
            _say(outcome.message)
            tracker.close()   # the rank files are opened afresh with the run
            if outcome.replaced:
                tracker = FindingTracker()   # another run: its findings are news
            run.close()
            run = opened = wait_for_run(run.path, wait, any_error=True)
    finally:
        tracker.close()
        if opened is not None:
            opened.close()


def _follow(run, tracker, interval: float, advisor_every: float, once: bool):
    """Print updates of ``run`` until it ends (an exit code) or is restarted (a Restart)."""
    identity, sessions = file_identity(run.path), run.sessions
    status = run.status()
    _say(f"{one_line(run.name)} ({one_line(str(run.path))}): {status.describe()}")
    last_step = last_shown = None   # the step and values last printed
    last_advice = -math.inf
    paused_said = False   # "still following" said for the current pause
    dirty = True          # data changed since the advisor last looked
    seen_rows = 0
    stamp = _stamp(run.path)
    while True:
        restart = restart_of(run, identity, sessions)
        if restart is not None:
            return restart
        try:
            status = run.status()
            new_rows = run.refresh()
            summary = run.scalar_summary()   # reads only the rows added since the last look
            step = max(status.last_step, summary.max_step)
            shown_at, shown = snapshot_values(status, summary)
        except RunFileError:
            # A writer reopening the file (resume) changes it under this reader for a moment.
            restart = _wait_for_restart(run, identity, sessions, max(interval, RESTART_WAIT_S))
            if restart is None:
                raise
            return restart
        dirty = dirty or bool(new_rows) or summary.rows != seen_rows
        seen_rows = summary.rows
        now = time.monotonic()
        done = once or status.state != RunState.LIVE
        if done and not once and status.state == RunState.STALE and status.age_s < STALE_MIN_SECONDS:
            # Killed a moment ago (its lock says so at once): a scheduler restarting the run at
            # this path within the heartbeat's grace is still followed (restart detection above).
            done = False
        elif done and not once and status.state == RunState.STALE and writer_holds(run.path):
            # Its process still holds the lock: suspended (Ctrl-Z, SIGSTOP), or stalled on a slow
            # disk. tail left for good after 10 s and the run went on to finish unwatched.
            done = False
            if not paused_said:
                _say(f"{one_line(run.name)}: no heartbeat for {status.age_s:.0f} s, but its writer still holds the run "
                     "(suspended or stalled?): still following; Ctrl-C stops")
                paused_said = True
        else:
            paused_said = paused_said and status.state == RunState.STALE
        if step < 0 and not once:
            if last_step is None:
                _say("waiting for the first flush...")
                last_step = step
        elif once or shown_at != last_step or (done and shown != last_shown):
            # a line a step; and the last values, which come with the run's end at the same step
            _say(f"{shown} | {status.state}")
            last_step, last_shown = shown_at, shown
        if advisor_every > 0 and dirty and (done or now - last_advice >= advisor_every):
            for f in tracker.update(run):
                for line in ([f] if isinstance(f, str) else text_lines(f, brief=True)):
                    _say(line)
            last_advice, dirty = now, False
        if done:
            break
        stamp = wait_for_change(run.path, interval, stamp)
    if once:
        return 0
    _say(f"{one_line(run.name)}: {status.describe()}"
         + (f"; {len(tracker.findings)} finding(s)"
            + (f" ({', '.join(dict.fromkeys(f.symptom for f in tracker.findings))})" if tracker.findings else "")
            + f", details: trainspect diagnose {run.path}" if advisor_every > 0 else ""))
    newer = newer_live_run(run.path) if status.state in (RunState.STALE, RunState.CRASHED) else None
    if newer is not None:   # restarted without resume=True: the new run took the next free name
        _say(f"a new run is being written at {newer}: trainspect tail {newer}")
    return 0 if status.state == RunState.FINISHED else 1


def run(args) -> int:
    if args.interval <= 0:
        print(f"trainspect tail: --interval must be positive, got {args.interval}", file=sys.stderr)
        return 2
    from .. import remote

    follower, rank_followers = None, []
    path = args.run
    if remote.is_remote(args.run):
        # ssh:// run: a child process keeps the local mirror up to date; tail reads the mirror.
        try:
            target = remote.parse(args.run)
        except ValueError as exc:
            print(f"trainspect tail: {exc}", file=sys.stderr)
            return 2
        since = remote.mirror_stamp(target)
        follower = remote.start_follower(args.run, 0 if args.once else args.wait)
        path = remote.wait_for_mirror(target, follower, since, timeout=args.wait + 30.0)
        if path is None:
            _stop(follower)
            return 2   # the follower has printed why
    try:
        r = wait_for_run(path, 0 if args.once else args.wait, say=_say_err)
    except RunFileError as exc:
        print(f"trainspect tail: {exc}", file=sys.stderr)
        _stop(follower)
        return 2
    if follower is not None:   # a distributed remote run: the advisor reads every rank's mirror
        from trainspect.analysis.ranks import dist_info

        rank_followers = remote.start_rank_followers(target, dist_info(r), wait_s=0 if args.once else args.wait, say=_say)
    try:
        with r:
            return tail(r, args.interval, args.advisor_every, args.once, 0 if args.once else args.wait)
    except KeyboardInterrupt:
        print("", flush=True)
        return 0
    except RunFileError as exc:
        print(f"trainspect tail: {exc}", file=sys.stderr)
        return 2
    finally:
        for proc in (follower, *rank_followers):
            _stop(proc)


def _stop(proc) -> None:
    """Stop a mirror follower as Ctrl-C would: it closes its mirror (a SIGTERM'd follower left
    the file flagged as open for writing); killed if it has not ended after 10 s."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
