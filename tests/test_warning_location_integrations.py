"""The warning that a path already holds a run ("this run is recorded to x-2.h5") names the
script's line, also when a framework integration creates the recorder: it pointed at
integrations/recorder_session.py:43 (trial 17, F7), a line of library code that tells a user
nothing about which of their runs went to the new file."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SESSION_SCRIPT = textwrap.dedent('''
    import warnings
    from trainspect import Recorder
    from trainspect.integrations.recorder_session import RecorderSession
    Recorder(RUN).close()                        # an earlier run at that path
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        session = RecorderSession(RUN)
        session.open({"lr": 0.1})  # the user's line
        session.close()
    w = [w for w in ws if "already holds a run" in str(w.message)][0]
    print(repr((w.filename, w.lineno)))
''')

LIGHTNING_SCRIPT = textwrap.dedent('''
    import warnings, torch, lightning as L
    from trainspect.integrations.lightning import TrainspectLogger

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(4, 1)
        def training_step(self, batch, i):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss)
            return loss
        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), 0.1)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(32, 4), torch.randn(32, 1)), batch_size=8)
    def fit():
        trainer = L.Trainer(max_epochs=1, logger=TrainspectLogger(RUN), enable_progress_bar=False,
                            enable_model_summary=False, enable_checkpointing=False, accelerator="cpu")
        trainer.fit(Tiny(), data)  # the user's line
        trainer.logger.close()
    fit()
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        fit()
    w = [w for w in ws if "already holds a run" in str(w.message)][0]
    print(repr((w.filename, w.lineno)))
''')


def _run(tmp_path, body: str):
    script = tmp_path / "train.py"
    script.write_text(f"RUN = {str(tmp_path / 'run.h5')!r}\n" + body)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    filename, line = eval(out.stdout.strip().splitlines()[-1])
    assert Path(filename) == script, f"the warning names {filename}:{line}, not the script"
    return script.read_text().splitlines()[line - 1]


def test_the_new_path_warning_of_an_integration_names_the_script_line(tmp_path):
    assert "the user's line" in _run(tmp_path, SESSION_SCRIPT)


def test_the_new_path_warning_under_lightning_names_the_fit_call(tmp_path):
    pytest.importorskip("lightning")
    assert "the user's line" in _run(tmp_path, LIGHTNING_SCRIPT)
