"""A recorder warning raised inside optimizer.step() names the user's line, also when trainspect
is imported through a symlinked folder (PYTHONPATH=/tmp/p with p/trainspect -> the checkout):
frames carry the link's path, and the resolved one missed them (trial 14 re-trial, N2)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import trainspect

SCRIPT = textwrap.dedent('''
    import warnings, torch
    from trainspect import Recorder
    m = torch.nn.Linear(4, 1); o = torch.optim.SGD(m.parameters(), 0.1)
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        with Recorder(RUN, overwrite=True) as rec:
            rec.watch(m, o)
            for i in range(3):
                m.eval()
                loss = m(torch.randn(8, 4)).pow(2).mean(); o.zero_grad(); loss.backward()
                o.step()   # the eval-mode warning comes from the step hook
    print([(w.filename, w.lineno) for w in ws if "eval mode" in str(w.message)][0])
''')


def test_the_eval_mode_warning_names_the_script_line_through_a_symlinked_package(tmp_path):
    link_root = tmp_path / "p"
    link_root.mkdir()
    os.symlink(Path(trainspect.__file__).resolve().parent, link_root / "trainspect")
    script = tmp_path / "train.py"
    script.write_text(f"RUN = {str(tmp_path / 'run.h5')!r}\n" + SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(link_root))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    filename, line = eval(out.stdout.strip().splitlines()[-1])
    assert Path(filename).name == "train.py", filename
