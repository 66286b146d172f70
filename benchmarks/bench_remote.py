"""ssh:// runs over loopback ssh: flush on the remote side -> visible in the local mirror, and the
bytes on the wire against the bytes of the new rows.

    python benchmarks/bench_remote.py [--flushes 200] [--rows 1,10,100,1000] [--json out.json]

A throw-away sshd on 127.0.0.1 (tests/sshd_fixture.py: own host and user keys, key login only)
stands for the GPU server; a counting TCP relay sits between ssh and sshd, so "on the wire" is
every byte of the TCP connection (key exchange, encryption, MACs, ssh packet framing, our frames).

For each batch size R: a writer process (the "remote" run) appends R rows and flushes, every
50 ms, --flushes times; each row's value is the time.time() just before its append. The local
side is what the app and ``trainspect tail`` run: ``trainspect fetch --follow ssh://...`` in a
child process keeps the mirror; this process reads the mirror (``Run.refresh()`` on a 2 ms stat
poll, the tail's reader) and notes when each row became visible.

Reported per R: latency p50 / p99 / max (seen - written, same clock), wire bytes (both
directions, the connection's set-up counted once and also shown apart), row bytes (the new
rows' own bytes: 28 per scalar row, step+tag+value+wall), and their ratio.
Goals (issue 14): p99 <= 0.5 s; wire bytes <= 2x row bytes.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

ROW_BYTES = 8 + 4 + 8 + 8      # scalars/step int64, tag int32, value float64, wall float64
WRITER = r"""
import sys, time
from trainspect.recorder.h5file import RunFileWriter
path, flushes, rows, every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
w = RunFileWriter(path)
w.start({"name": "bench-remote"}, flush_every=every)
w.add_tags(["t"])
w.flush()
print("READY", flush=True)
sys.stdin.readline()                       # the local side is following: start
step = 0
for _ in range(flushes):
    t = time.time()
    w.append_scalars(list(range(step, step + rows)), [0] * rows, [t] * rows, [t] * rows)
    step += rows
    w.flush(step - 1)
    time.sleep(every)
w.close()
"""


class CountingRelay:
    """127.0.0.1:port -> 127.0.0.1:target, counting the bytes each way."""

    def __init__(self, target: int):
        self.target = target
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.up = self.down = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(client, server, "up"), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, "down"), daemon=True).start()

    def _pipe(self, src, dst, way):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            with self.lock:
                setattr(self, way, getattr(self, way) + len(data))
            dst.sendall(data)

    @property
    def total(self) -> int:
        with self.lock:
            return self.up + self.down


def one_size(sshd, relay, work: Path, rows: int, flushes: int, every: float) -> dict:
    from trainspect.analysis import RunFileError, open_run
    from trainspect.app import remote

    src = work / f"remote-{rows}" / "run.h5"
    src.parent.mkdir(parents=True)
    env = dict(os.environ, PYTHONPATH=str(REPO.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(src), str(flushes), str(rows), str(every)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert writer.stdout.readline().strip() == "READY"
    url = f"ssh://{sshd.user}@127.0.0.1:{relay.port}{src}"
    target = remote.parse(url)
    before_connect = relay.total
    follower = subprocess.Popen(remote.follower_command(url), env=env, stdin=subprocess.DEVNULL)
    mirror = remote.mirror_path(target)
    deadline = time.monotonic() + 60
    run = None
    while run is None:
        if time.monotonic() > deadline:
            raise SystemExit("the mirror did not appear within 60 s")
        if mirror.exists():
            try:
                run = open_run(mirror)
            except RunFileError:
                pass
        time.sleep(0.01)
    run.scalar_names()
    setup_bytes = relay.total - before_connect        # key exchange, login, layout, the empty table
    writer.stdin.write("go\n")
    writer.stdin.flush()
    lat = []
    seen = 0
    total_rows = rows * flushes
    stamp = None
    deadline = time.monotonic() + flushes * every + 120
    while seen < total_rows and time.monotonic() < deadline:
        try:
            st = os.stat(mirror)
            now_stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            now_stamp = None
        if now_stamp != stamp:
            stamp = now_stamp
            if run.refresh() and "t" in run.scalar_names():
                s = run.scalar("t")
                if len(s) > seen:
                    now = time.time()
                    lat += (now - s.values[seen:]).tolist()
                    seen = len(s)
        time.sleep(0.002)
    writer.wait(timeout=60)
    follower.wait(timeout=60)     # ends with the run (status finished arrives)
    run.close()
    wire = relay.total - before_connect
    lat_ms = np.asarray(lat) * 1000
    return {"rows_per_flush": rows, "flushes": flushes, "rows_seen": seen,
            "p50_ms": round(float(np.percentile(lat_ms, 50)), 1), "p99_ms": round(float(np.percentile(lat_ms, 99)), 1),
            "max_ms": round(float(lat_ms.max()), 1),
            "wire_bytes": wire, "setup_bytes": setup_bytes, "row_bytes": seen * ROW_BYTES,
            "ratio": round(wire / max(1, seen * ROW_BYTES), 2),
            "ratio_after_setup": round((wire - setup_bytes) / max(1, seen * ROW_BYTES), 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flushes", type=int, default=200)
    ap.add_argument("--rows", default="1,10,100,1000", help="rows per flush, comma-separated")
    ap.add_argument("--every", type=float, default=0.05, help="seconds between remote flushes")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    from sshd_fixture import Sshd

    work = Path(tempfile.mkdtemp(prefix="trainspect-bench-remote-"))
    (work / "sshd_root").mkdir()
    sshd = Sshd(work / "sshd_root")
    relay = CountingRelay(sshd.port)
    with open(sshd.root / "known_hosts", "a") as fh:     # the relay's port serves the same host key
        fh.write(f"[127.0.0.1]:{relay.port} {(sshd.root / 'host_key.pub').read_text()}")
    os.environ.update(TRAINSPECT_SSH_OPTS=sshd.ssh_opts(), TRAINSPECT_REMOTE_CMD=sshd.remote_cmd(),
                      XDG_CACHE_HOME=str(work / "cache"))
    results = []
    try:
        print(f"{'rows/flush':>10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'wire B':>10} {'set-up B':>9} "
              f"{'rows B':>10} {'wire/rows':>9} {'(no set-up)':>11}")
        for rows in (int(r) for r in args.rows.split(",")):
            r = one_size(sshd, relay, work, rows, args.flushes, args.every)
            results.append(r)
            print(f"{r['rows_per_flush']:>10} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8} {r['wire_bytes']:>10} "
                  f"{r['setup_bytes']:>9} {r['row_bytes']:>10} {r['ratio']:>9} {r['ratio_after_setup']:>11}", flush=True)
    finally:
        sshd.stop()
    print("goals: p99 <= 500 ms; wire bytes <= 2x row bytes")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
