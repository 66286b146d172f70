"""`trainspect diagnose RUN... [--json] [--lr-sweep SWEEP]`: the advisor's findings in a terminal (no Qt needed).

Several runs, or a directory (its ``*.h5`` files, as ``info``/``open``/``report`` read it), are
diagnosed one after the other, each under a ``== name ==`` heading, and the exit code is the worst
of theirs (the highest); with ``--json`` they print as a JSON list, one object per run (one run
prints its object alone, as before). A distributed run's rank files fold to rank 0, which reads
the other ranks beside it.

Exit code: 0 = nothing of warning level, 1 = warnings or errors, 2 = the file could not be read,
3 = the run crashed or went stale (checked first, so a CI gate catches a dead run whatever the
findings say). A run whose recording stopped (disk full: the recorder stopped, the training went
on) did not crash: it exits 1 at least, its last steps were not recorded, so not checked.
"""
from __future__ import annotations

import json
import sys

from trainspect.analysis import RunFileError, open_run
from trainspect.analysis.advisor import coverage, diagnose
from trainspect.analysis.frozen import frozen_param_names
from trainspect.analysis.lr_range import is_sweep, read_sweep
from trainspect.analysis.vocab import RunState

from ..present import earlier_fixes, text_lines
from ..terminal_text import clip
from ..vocab import name_list


def add_arguments(parser) -> None:
    parser.add_argument("runs", metavar="RUN", nargs="+",
                        help="run file (.h5), finished, crashed or live; a directory (its run files); or a "
                             "TensorBoard log directory or event file. Several: each is diagnosed under a heading "
                             "(--json: a list), the exit code is the worst")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.add_argument("--lr-sweep", metavar="SWEEP", help="an LR range test of the same model "
                        "(trainspect.lr_range_test's run file): LR fixes quote its suggested LR")


def _json_safe(value):
    """NaN/Inf are not JSON: write them as strings so any JSON parser reads the output."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _sweep(args):
    """The LR range test given with --lr-sweep, read before the run (its errors exit 2 like the run's)."""
    if not getattr(args, "lr_sweep", None):
        return None
    from trainspect.analysis.lr_range import open_sweep
    sweep = open_sweep(args.lr_sweep)
    if sweep is None:
        raise RunFileError(f"{args.lr_sweep}: not an LR range test run (trainspect.lr_range_test writes those)")
    return sweep


def ranks_of(run) -> dict | None:
    """A distributed run: which rank files the advisor read ({"read": {rank: file}, "world_size": n, ...}),
    and the rank that stopped before this file's ("first_stopped", or None)."""
    from trainspect.analysis.ranks import dist_info, open_ranks, stopped_first

    ranked = open_ranks(run, keep_points=False)   # siblings hold no points: read through bounded views
    if ranked is None:
        return None
    with ranked:
        stopped = stopped_first(ranked, int(dist_info(run)["rank"]))
        return {"read": {str(r): p.name for r, p in ranked.files().items()}, "world_size": ranked.world_size,
                "missing": ranked.missing, "other_launch": ranked.foreign, "text": ranked.describe(),
                "first_stopped": stopped}


def to_json(run, findings, covered, st=None) -> dict:
    st = st or run.status()
    out = {"run": run.name, "path": str(run.path), "status": st.state, "last_step": st.last_step,
           "error": st.error,   # why it ended early: "terminated (SIGTERM) at step N", an exception, ...
           "findings": [_json_safe(f.to_dict()) for f in findings], "warnings": list(run.warnings),
           **covered.to_dict()}
    ranks = ranks_of(run)
    if ranks is not None:
        out["ranks"] = {k: v for k, v in ranks.items() if k != "text"}
        if ranks["first_stopped"] is not None:
            out["ranks"]["first_stopped"] = {k: v for k, v in ranks["first_stopped"].items() if k != "text"}
    return out


def to_text(run, findings, covered, st=None) -> str:
    st = st or run.status()
    ranks = ranks_of(run)
    # a rank that died first is the headline: torchrun then SIGTERMs this one (trial 17, F11)
    first = ranks["first_stopped"] if ranks is not None else None
    lines = [f"{clip(run.name)}: {first['text'] if first else st.describe()}"]
    if ranks is not None:
        lines.append(f"ranks: {ranks['text']} read ({', '.join(ranks['read'].values())})")
    if st.last_step < 0 and not run.metric_names():   # closed before its first value
        lines.append("nothing was recorded in this run: nothing to check")
    elif is_sweep(run):
        sweep = read_sweep(run)
        lines.append("an LR range test (lr_range_test): its loss is meant to rise as the LR grows, it is not "
                     "judged as a training run; " + (f"suggested LR {sweep.suggested:.3g}: {sweep.reason}"
                                                      if sweep is not None and sweep.suggested is not None
                                                      else sweep.reason if sweep is not None
                                                      else "no suggestion in the file"))
        return "\n".join(lines)
    elif all(f.severity == "info" for f in findings):     # notes (info) are not problems
        notes = f"; {len(findings)} note{'s' if len(findings) > 1 else ''}:" if findings else ""
        recorded = f" in the steps recorded (up to {st.last_step})" if st.state == RunState.RECORDING_STOPPED else ""
        lines.append("no problems found" + (" among what it could check" if covered.gaps else "") + recorded + notes)
    for f, earlier in zip(findings, earlier_fixes(findings)):     # each fix listed once
        lines += [""] + text_lines(f, earlier=earlier)
    if covered.lines():
        lines += [""] + covered.lines()
    frozen = frozen_param_names(run.meta, run.params)
    if frozen:   # left out of every rule on purpose: say so, or a frozen layer reads as checked
        lines += ["", f"frozen at watch() (requires_grad=False), not judged: {name_list(frozen, 6)}"]
    return "\n".join(lines)


EXIT_HEALTHY, EXIT_WARNINGS, EXIT_UNREADABLE, EXIT_DEAD = 0, 1, 2, 3


def _one(path, args, sweep) -> tuple[int, object]:
    """(exit code, output: the text or the JSON object, None when unreadable) of one run."""
    from ..run_paths import run_file

    try:
        with open_run(run_file(path)) as r:
            st = r.settled_status()      # one look for the header and the exit code alike
            dead = RunState(st.state).dead
            stopped = st.state == RunState.RECORDING_STOPPED
            findings, covered = diagnose(r, lr_sweep=sweep), coverage(r)
            for warning in r.warnings:   # parts of the file left out: the findings may miss them
                print(f"trainspect diagnose: warning: {r.path}: {warning}", file=sys.stderr)
            out = to_json(r, findings, covered, st) if args.json else to_text(r, findings, covered, st)
    except RunFileError as exc:
        print(f"trainspect diagnose: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE, None
    except (BrokenPipeError, KeyboardInterrupt):
        raise
    except Exception as exc:   # noqa: BLE001 - one bad file of several: one line, exit 2, the others go on (trial 18 A7)
        import os

        if os.environ.get("TRAINSPECT_TRACEBACK"):
            raise
        from ..cli import internal_error_text
        from ..terminal_text import one_line

        print(f"trainspect diagnose: {one_line(str(path))}: {internal_error_text(exc)}", file=sys.stderr)
        return EXIT_UNREADABLE, None
    if dead:
        return EXIT_DEAD, out
    if stopped:   # the record ends early: a gate must not pass it as checked, nor call it a crash
        return EXIT_WARNINGS, out
    return (EXIT_WARNINGS if any(f.severity in ("warning", "error") for f in findings) else EXIT_HEALTHY), out


def run(args) -> int:
    from trainspect.analysis.ranks import fold_rank_paths

    from ..run_paths import expand_runs

    paths = fold_rank_paths(expand_runs(args.runs))   # a distributed run: rank 0 reads every rank
    if not paths:
        print("trainspect diagnose: no run files (*.h5) or TensorBoard logs in " + ", ".join(args.runs),
              file=sys.stderr)
        return EXIT_UNREADABLE
    try:
        sweep = _sweep(args)
    except RunFileError as exc:
        print(f"trainspect diagnose: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    several = len(paths) > 1
    code, objects = EXIT_HEALTHY, []
    for i, path in enumerate(paths):
        one, out = _one(path, args, sweep)
        code = max(code, one)
        if args.json:
            if out is not None:
                objects.append(out)
            elif several:     # an unreadable run keeps its place in the list
                objects.append({"path": str(path), "status": "unreadable", "findings": []})
            continue
        if several:
            print(("\n" if i else "") + f"== {clip(str(path), 1000)} ==")
        if out is not None:
            print(out)
    if args.json and (objects or several):
        print(json.dumps(objects if several else objects[0], indent=1))
    return code

