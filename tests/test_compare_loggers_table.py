"""benchmarks/compare_loggers.py --table: the README table of peers, rendered from the JSON-lines
file a (possibly interrupted) benchmark run appended its figures to."""
import importlib.util
import json
import random
import statistics
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "compare_loggers", Path(__file__).resolve().parents[1] / "benchmarks" / "compare_loggers.py")
compare_loggers = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(compare_loggers)

SMALL, BIG = 20_000, 1_000_000


def write_jsonl(path, figs):
    path.write_text("".join(json.dumps(f) + "\n" for f in figs))


def row(table: str, name: str) -> list[str]:
    line = next(x for x in table.splitlines() if x.startswith(f"| {name} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def figures(rng):
    """Three rounds of every figure for trainspect and TensorBoard; the 4 x 1 M pass finished
    for trainspect and timed out for TensorBoard."""
    figs = [{"logger": "-", "figure": "machine", "cpus": 2, "load": [7.5, 6.0, 5.0], "python": "3.11",
             "versions": {"torch": "2"}, "date": "2026-12-02"}]
    truth = {}
    for r in range(3):
        for name, slow in (("trainspect", 1.0), ("tensorboard", 40.0)):
            us = rng.uniform(0.4, 0.6) * slow
            write = rng.uniform(0.1, 0.2) * slow
            figs += [
                {"logger": name, "figure": "us", "round": r, "us": us, "cpu_us": us / 2},
                {"logger": name, "figure": "loss+lr", "round": r, "wall": rng.uniform(1, 1.3), "cpu": 1.1,
                 "bare_ms": 3.0},
                {"logger": name, "figure": "grad norms", "round": r, "wall": rng.uniform(1, 2), "cpu": 1.2,
                 "bare_ms": 3.0},
                {"logger": name, "figure": "write", "round": r, "steps": SMALL, "wall_s": write, "cpu_s": write,
                 "mb": 2.0 * slow},
                {"logger": name, "figure": "read", "round": r, "steps": SMALL, "wall_s": write / 3,
                 "cpu_s": write / 3, "complete": True, "values_read": 4 * SMALL},
                {"logger": name, "figure": "live", "round": r, "sent": 100, "seen": 100,
                 "p50": rng.uniform(1, 5) * slow, "p90": 9.0 * slow, "p99": rng.uniform(10, 20) * slow},
            ]
            for f in figs[-6:]:
                truth.setdefault((name, f["figure"]), []).append(f)
    figs += [{"logger": "trainspect", "figure": "write", "round": "big", "steps": BIG, "wall_s": 8.5, "cpu_s": 8.0,
              "mb": 110.0},
             {"logger": "trainspect", "figure": "read", "round": "big", "steps": BIG, "wall_s": 0.4, "cpu_s": 0.3,
              "complete": True, "values_read": 4 * BIG},
             {"logger": "tensorboard", "figure": "write", "round": "big", "steps": BIG, "timeout_s": 900}]
    return figs, truth


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_medians_spreads_ratios_and_scaled_figures(tmp_path, seed):
    figs, truth = figures(random.Random(seed))
    write_jsonl(tmp_path / "f.jsonl", figs)
    table = compare_loggers.render_table(tmp_path / "f.jsonl")
    num = compare_loggers._num

    ts, tb = row(table, "trainspect"), row(table, "tensorboard")
    us = [f["us"] for f in truth["trainspect", "us"]]
    cpu = [f["cpu_us"] for f in truth["trainspect", "us"]]
    assert ts[1] == (f"{num(statistics.median(us))} [{num(min(us))}–{num(max(us))}]; "
                     f"CPU {num(statistics.median(cpu))} [{num(min(cpu))}–{num(max(cpu))}]")
    ratios = [b["us"] / a["us"] for a, b in zip(truth["trainspect", "us"], truth["tensorboard", "us"])]
    assert f"(×{num(statistics.median(ratios))} [{num(min(ratios))}–{num(max(ratios))}])" in tb[1]
    walls = [f["wall"] for f in truth["tensorboard", "grad norms"]]
    assert tb[3].startswith(f"×{statistics.median(walls):.2f} [×{min(walls):.2f}–×{max(walls):.2f}]")
    # trainspect's 4 x 1 M pass finished: its own figure, no scaling mark
    assert ts[4] == "8.5 s; CPU 8 s" and ts[5] == "110 MB" and ts[6] == "0.4 s; CPU 0.3 s"
    # TensorBoard's timed out: the 4 x 20 k figures scaled x50, marked, and the timeout noted
    writes = [f["wall_s"] * BIG / SMALL for f in truth["tensorboard", "write"]]
    assert tb[4].startswith(f"≈{num(statistics.median(writes))} [") and "†" in tb[4]
    assert tb[5] == f"≈{num(80.0 * 50)} MB†"
    assert "scaled ×50 per value" in table
    assert "tensorboard write at 4 × 1,000,000: timed out after 900 s\n" in table
    p50 = [f["p50"] for f in truth["trainspect", "live"]]
    assert ts[7].startswith(f"{num(statistics.median(p50))} [")
    assert "load average at start 7.5" in table


def test_a_partial_run_gives_a_partial_table(tmp_path):
    """The run was stopped after the first figures: what was measured is shown, the rest is '–'."""
    write_jsonl(tmp_path / "f.jsonl", [
        {"logger": "trainspect", "figure": "us", "round": 0, "us": 0.5, "cpu_us": 0.3},
        {"logger": "aim", "figure": "us", "round": 0, "us": 150.0, "cpu_us": 100.0},
        {"logger": "aim", "figure": "loss+lr", "round": 0, "error": "RuntimeError: boom"},
        {"logger": "aim", "figure": "write", "round": 0, "steps": SMALL, "wall_s": 40.0, "cpu_s": 20.0, "mb": 16.0},
        {"logger": "aim", "figure": "live", "round": 0, "sent": 100, "seen": 90, "p50": 500.0, "p90": 900.0,
         "p99": 2000.0},
    ])
    table = compare_loggers.render_table(tmp_path / "f.jsonl")
    ts, aim = row(table, "trainspect"), row(table, "aim")
    assert ts[1] == "0.5; CPU 0.3" and ts[2:] == ["–"] * 6
    assert aim[1] == "150; CPU 100 (×300)" and aim[2] == "–"
    assert aim[4:6] == ["40 s; CPU 20 s", "16 MB"], "no 4 x 1 M pass yet: the size measured, not scaled"
    assert "write 4 × 20,000 values" in table
    assert aim[7] == "500 / 2,000 (90 of 100 values seen)"
    assert "†" not in table
