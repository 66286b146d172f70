"""How well does the advisor name the planted symptom and its cause on the scenario suite?

Over every scenario of tests/scenarios.py in every seed and thread count (tests/scenario_runs.py
records the grid once, in parallel; reuse a cache with TRAINSPECT_SCENARIO_CACHE=DIR):

- symptom recall: the planted symptom is found, at least at the scenario's severity;
- top-1 cause accuracy: the top cause of *that* finding is the planted cause (the scenario's
  first listed cause); "accepted" also counts the scenario's alternative causes; top-3: the
  planted cause is among the first three;
- false alarms: healthy runs with any finding of warning level or worse.

    python benchmarks/advisor_accuracy.py [--seeds 0 1 2] [--threads 1 2] [--only NAME ...] [--dir DIR]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    from tests.scenario_runs import SEEDS, THREADS, ScenarioRuns, grid, source_digest
    from tests.scenarios import SCENARIOS
    from trainspect.analysis import diagnose, open_run
    from trainspect.analysis.vocab import Severity

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    ap.add_argument("--threads", type=int, nargs="+", default=list(THREADS))
    ap.add_argument("--only", nargs="+", help="scenario names (default: all)")
    ap.add_argument("--dir", help="folder of recorded runs (default: $TRAINSPECT_SCENARIO_CACHE/<digest> or a temp dir)")
    args = ap.parse_args(argv)
    names = args.only or list(SCENARIOS)
    cache = os.environ.get("TRAINSPECT_SCENARIO_CACHE")
    directory = args.dir or (Path(cache) / source_digest() if cache else tempfile.mkdtemp(prefix="trainspect-acc-"))
    runs = ScenarioRuns(directory)
    keys = grid(names, args.seeds, args.threads)
    runs.ensure(keys)

    per = defaultdict(lambda: defaultdict(int))
    for key in keys:
        sc = SCENARIOS[key.name]
        with open_run(runs.path(key.name, key.seed, key.threads)) as run:
            findings = diagnose(run)
        row = per[key.name]
        row["runs"] += 1
        if sc.symptom is None:
            row["alarm"] += any(Severity(f.severity).rank >= Severity.WARNING.rank for f in findings)
            continue
        hit = next((f for f in findings if f.symptom == sc.symptom), None)
        if hit is None or Severity(hit.severity).rank < Severity(sc.severity).rank:
            row["got"] = row.get("got") or ("missed: " + (", ".join(f.symptom for f in findings) or "nothing"))
            continue
        ranked = [c.id for c in hit.causes]
        row["symptom"] += 1
        row["top1"] += bool(ranked) and ranked[0] == sc.causes[0]
        row["accepted"] += bool(ranked) and ranked[0] in sc.causes
        row["top3"] += sc.causes[0] in ranked[:3]
        if not ranked or ranked[0] not in sc.causes:
            row["got"] = f"{sc.symptom} <- {ranked[0] if ranked else None}"

    planted = [n for n in names if SCENARIOS[n].symptom]
    healthy = [n for n in names if not SCENARIOS[n].symptom]
    print("| scenario | planted | cause | runs | symptom | top-1 | accepted | top-3 | wrong |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in planted:
        r, sc = per[n], SCENARIOS[n]
        print(f"| {n} | {sc.symptom} | {sc.causes[0]} | {r['runs']} | {r['symptom']} | {r['top1']} | "
              f"{r['accepted']} | {r['top3']} | {r.get('got', '')} |")
    for n in healthy:
        r = per[n]
        print(f"| {n} | healthy | - | {r['runs']} | false alarms: {r['alarm']} | | | | |")

    def total(field, group):
        return sum(per[n][field] for n in group)
    n_planted, n_healthy = total("runs", planted), total("runs", healthy)
    if n_planted:
        print(f"\nplanted runs: {n_planted} ({len(planted)} scenarios)")
        print(f"symptom recall:          {total('symptom', planted)}/{n_planted} = "
              f"{total('symptom', planted) / n_planted:.1%}")
        print(f"top-1 cause accuracy:    {total('top1', planted)}/{n_planted} = {total('top1', planted) / n_planted:.1%}"
              f"  (accepted alternatives: {total('accepted', planted) / n_planted:.1%}; "
              f"top-3: {total('top3', planted) / n_planted:.1%})")
    if n_healthy:
        print(f"healthy runs with a warning: {total('alarm', healthy)}/{n_healthy} ({len(healthy)} scenarios)")
    print(f"runs in {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
