"""A disk that takes longer than close()'s wait per flush (a congested NFS, an overlay being
snapshotted): close() gave up after 60 s without a word, the process exited with the writer
mid-flush, and the run read "writer stopped responding at step 0" over its 300 stored steps."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from trainspect.analysis import open_run

SCRIPT = textwrap.dedent("""
    import sys, time, warnings
    from trainspect.recorder import Recorder, h5file, recorder
    recorder.CLOSE_TIMEOUT = 1.0
    warnings.simplefilter("always")
    rec = Recorder(sys.argv[1])
    for step in range(300):
        rec.log({"train/loss": 1.0 / (step + 1)}, step=step)
    rec.flush()                        # these are on disk
    slow = h5file.RunFileWriter.flush
    def stuck(self, *a, **k):          # from here on every flush takes 5 s
        time.sleep(5.0)
        return slow(self, *a, **k)
    h5file.RunFileWriter.flush = stuck
    for step in range(300, 320):
        rec.log({"train/loss": 1.0 / (step + 1)}, step=step)
    rec.close()
    print("closed", flush=True)
    import os; os._exit(0)             # the interpreter exits with the writer mid-flush
""")


def test_close_on_a_stuck_disk_warns_and_the_run_reads_its_stored_steps(tmp_path):
    path = tmp_path / "run.h5"
    script = tmp_path / "slow.py"
    script.write_text(SCRIPT)
    out = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True, timeout=120)
    assert "closed" in out.stdout, out.stderr
    assert "still being written after 1 s" in out.stderr
    with open_run(path) as run:
        status = run.status()
        assert status.state == "stale"          # never marked finished: the writer was cut off
        stored = run.scalar("train/loss").steps
        assert len(stored) >= 300 and status.last_step == int(stored.max())   # the steps stored
