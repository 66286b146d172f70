"""Launch a script of tests/dist_workers/ under torchrun (CPU, gloo) and wait for it."""
import os
import subprocess
import sys
from pathlib import Path

WORKERS = Path(__file__).parent / "dist_workers"


def torchrun(tmp_path, script, nproc, *args, timeout=240):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(__import__("trainspect").__file__).parents[1]),
                                                     env.get("PYTHONPATH", "")) if p)
    # --local-addr: the agent advertises 127.0.0.1, not the host name, which a container or
    # chroot may not resolve (then the rendezvous waits forever: seen in a fresh Debian chroot).
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--local-addr=127.0.0.1",
           f"--nproc_per_node={nproc}",
           str(WORKERS / script), *map(str, args)]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)
    done = [r for r in range(nproc) if Path(f"{args[0]}.done{r}").exists()]   # dist_job.finish()
    assert proc.returncode == 0, f"ranks that finished: {done}\n" + proc.stdout[-3000:] + proc.stderr[-3000:]
    assert done == list(range(nproc)), f"ranks that finished: {done}"
    return proc
