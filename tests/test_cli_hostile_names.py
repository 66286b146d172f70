"""Names read from a run file reach the terminal as text, never as terminal commands.

A run named ``ESC ] 0 ; pwned BEL ESC [ 2 J`` retitled and cleared the terminal of whoever ran
`trainspect info` on a file they were sent; a metric name with U+202E showed reversed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from trainspect.recorder import Recorder

RUN_NAME = "run\x1b]0;pwned\x07\x1b[2J"
METRIC = "loss\x1b[31mRED\x1b[0m\u202efdp.exe\x9b"
FORBIDDEN = ("\x1b", "\x07", "\x9b", "\u202e")


@pytest.fixture
def hostile_run(tmp_path):
    path = tmp_path / "run.h5"
    with Recorder(path, name=RUN_NAME) as rec:
        for step in range(60):
            rec.log({METRIC: 1.0 / (step + 1), "train/loss": 2.0 if step < 40 else 2.0 * 10 ** (step - 40)}, step=step)
    return path


def _cli(*args):
    out = subprocess.run([sys.executable, "-m", "trainspect.app.cli", *map(str, args)], capture_output=True, check=False,
                         timeout=120, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    return out.returncode, out.stdout.decode("utf-8"), out.stderr.decode("utf-8")


@pytest.mark.parametrize("command", [("info",), ("diagnose",), ("tail", "--once"), ("compare", "--diagnose", "--width", "0")])
def test_terminal_output_shows_control_characters_as_escapes(hostile_run, command):
    code, out, err = _cli(*command, hostile_run)
    assert code in (0, 1), err
    for bad in FORBIDDEN:
        assert bad not in out and bad not in err
    assert "run\\x1b]0;pwned\\x07\\x1b[2J" in out        # still there, readable
    if command[0] != "diagnose":
        assert "loss\\x1b[31mRED\\x1b[0m\\u202efdp.exe\\x9b" in out


def test_json_output_still_decodes_to_the_stored_names(hostile_run):
    code, out, err = _cli("diagnose", "--json", hostile_run)
    assert code in (0, 1), err
    assert not any(bad in out for bad in FORBIDDEN)
    data = json.loads(out)
    assert data["run"] == RUN_NAME


def test_a_newline_in_a_metric_name_cannot_forge_a_line(tmp_path):
    path = tmp_path / "forge.h5"
    with Recorder(path) as rec:
        for step in range(5):
            rec.log({"y\nstatus:     finished, no problems": 1.0, "loss": 2.0}, step=step)
    code, out, err = _cli("info", path)
    assert code == 0, err
    assert [line for line in out.splitlines() if line.startswith("status:")] == ["status:     finished at step 4"]
    assert "y\\nstatus:     finished, no problems" in out
    code, out, err = _cli("tail", "--once", path)
    assert "y\\nstatus:" in out and "\nstatus:     finished, no problems" not in out


def test_tail_keeps_a_run_name_with_a_newline_on_one_line(tmp_path):
    """`trainspect tail` printed a run name's newline raw (info and compare escape it)."""
    path = tmp_path / "new\nline.h5"
    with Recorder(path) as rec:
        rec.log({"train/loss": 1.0}, step=0)
    code, out, err = _cli("tail", "--once", path)
    assert code == 0, err
    assert out.splitlines()[0].startswith("new\\nline ("), out


def test_compare_keeps_its_columns_in_line_with_escaped_names(tmp_path):
    for name in ("plain", "esc\x1b]0;pwn\x07"):
        with Recorder(tmp_path / f"{len(name)}.h5", name=name) as rec:
            rec.log({"train/loss": 1.0}, step=0)
    code, out, err = _cli("compare", tmp_path)
    assert code == 0, err
    rows = [ln for ln in out.splitlines() if ln.startswith(("plain", "esc"))]
    assert len(rows) == 2 and rows[0].index("finished") == rows[1].index("finished"), out


def test_a_name_with_edge_spaces_is_told_apart_from_its_trimmed_twin(tmp_path, capsys):
    """`train/loss ` (a trailing space) was printed as a second `train/loss` in `info`."""
    from trainspect.app.cli import main
    from trainspect.recorder import Recorder

    path = tmp_path / "twins.h5"
    with Recorder(path) as rec:
        for step in range(3):
            rec.log({"train/loss": 1.0, "train/loss ": 2.0}, step=step)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "'train/loss '" in out and "  train/loss  " in out
