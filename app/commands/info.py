"""`trainspect info RUN`: a plain-text summary of a run file (no Qt needed)."""
from __future__ import annotations

import sys

from trainspect.analysis.advisor.coverage import instruments_off_step
from trainspect.analysis.optimizer_settings import optimizer_settings

MAX_CONFIG_KEYS = 16   # an HF Trainer's TrainingArguments are ~150 keys: one screen line is not a dump


def config_text(config: dict) -> str:
    """The run's config as ``key=value`` pairs, nested dicts as dotted keys, at most
    MAX_CONFIG_KEYS of them (``--config`` lists every key)."""
    from ..report.content import flatten

    from ..terminal_text import clip

    pairs = flatten(config)
    text = ", ".join(clip(f"{k}={v}") for k, v in pairs[:MAX_CONFIG_KEYS])
    more = len(pairs) - MAX_CONFIG_KEYS
    return text + (f", … and {more} more (trainspect info RUN --config lists them)" if more > 0 else "")


CONFIG_LINE_CHARS = 2000   # --config: one key a line, a value cut past this
MAX_CHANGED_KEYS = 6   # a resumed session's config changes shown on its line


def session_changes(run) -> list:
    """[(session number, first step, [(key, value, earlier value)])] of a resumed run's later
    sessions whose config differs from the session before (the file's metadata is the first
    session's; segments/meta holds the others', FORMAT.md)."""
    from ..report.content import flatten

    out, before = [], dict(flatten(run.config))
    for i, seg in enumerate(run.segments()[1:], 2):
        config = seg.get("config")
        if not isinstance(config, dict):   # resumed by an older trainspect: not known
            continue
        now = dict(flatten(config))
        changed = [(k, now.get(k, "(unset)"), before.get(k, "(unset)"))
                   for k in dict.fromkeys([*now, *before]) if now.get(k) != before.get(k)]
        if changed:
            out.append((i, seg["first_step"], changed))
        before = now
    return out


def run_line(run) -> str:
    from ..terminal_text import clip

    # the path too: a newline in a file name forged a line of its own (trial 18 A12)
    return f"run:        {clip(run.name)}  ({clip(str(run.path), 1000)})"


def config_lines(run) -> list:
    """Every key of the run's config, ``dotted.key=value``, one a line."""
    from ..report.content import flatten
    from ..terminal_text import clip

    def one_line(text):   # every key, but not a 10 MB value in full (trial 18 A5)
        return clip(text, CONFIG_LINE_CHARS)

    lines = [one_line(f"{k}={v}") for k, v in flatten(run.config)] or ["no config recorded"]
    for i, first, changed in session_changes(run):   # a resumed run: what each later session changed
        at = f" from step {first}" if first is not None else ""
        lines.append(f"# session {i} (resumed{at}) changed:")
        lines += [one_line(f"{k}={v}") for k, v, _ in changed]
    return lines


def add_arguments(parser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run file(s) (.h5), directories holding them, or TensorBoard logs")
    parser.add_argument("--config", action="store_true",
                        help="print the run's whole config instead: one dotted.key=value a line")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def summarize(run) -> str:
    return "\n".join(summary_lines(run))


def summary_lines(run):
    """The summary, line by line: a run with 1 M metrics prints without holding 1 M lines."""
    from trainspect.analysis.frozen import frozen_numel
    from trainspect.analysis.vocab import RunState

    from ..report.content import run_duration
    from ..terminal_text import clip, one_line
    from ..vocab import SYS_PREFIX, steps_text

    st = run.settled_status()   # a writer clock behind ours: looked at twice, not "stopped responding"
    summary = run.scalar_summary()   # one pass, one block at a time: memory independent of run length
    names, counts, last = summary.names, summary.counts.tolist(), summary.last.tolist()   # lists: 1 M lines fast
    # A metric with no points (watch()'s input statistics of token ids) is not one to count.
    user = [i for i, n in enumerate(names) if counts[i] and not n.startswith(SYS_PREFIX)]   # is_sys, inlined
    n_sys = sum(1 for c in counts if c) - len(user)
    max_step = max(st.last_step, summary.max_step)
    beyond = None
    if RunState(st.state).final and 0 <= st.last_step < summary.max_step:
        # a closed run's rows cannot hold a step past the last one the writer recorded: one
        # flipped bit read "finished at step 59" over "steps: 4137" (trial 18 A6)
        beyond, max_step = summary.max_step, st.last_step
    lines = [
        run_line(run),
        f"status:     {st.describe()}",
        f"steps:      {steps_text(summary.min_step, max_step)}"
        + (f" (a row holds step {beyond:,}, beyond the run's last step {st.last_step:,}: "
           "out of order, damaged file?)" if beyond is not None else ""),
        f"duration:   {run_duration(run, st)}",
        f"file size:  {_size(run.file_size)}",
    ]
    segments = run.segments()
    changes = {i: changed for i, _, changed in session_changes(run)}
    for i, seg in enumerate(segments[1:], 2):   # a resumed run: how each writer session began
        at = f"from step {seg['first_step']}" if seg["first_step"] is not None else "nothing written yet"
        line = f"resumed:    session {i} ({at}) after {seg['note'] or 'the previous session'}"
        changed = changes.get(i, [])
        if changed:
            line += "; config: " + ", ".join(f"{k}={v} (was {old})" for k, v, old in changed[:MAX_CHANGED_KEYS])
            more = len(changed) - MAX_CHANGED_KEYS
            line += f", … and {more} more (--config lists them)" if more > 0 else ""
        lines.append(clip(line, 1000))
    meta = run.meta
    versions = meta.get("versions") or {}
    if versions:
        lines.append(clip("versions:   " + ", ".join(f"{k} {v}" for k, v in versions.items() if v), 1000))
    model = meta.get("model") or {}
    if model:
        frozen = frozen_numel(meta, run.params)
        lines.append(f"model:      {len(run.modules)} leaf modules, {len(run.params)} parameter tensors, "
                     f"{model.get('n_params', sum(p.numel for p in run.params)):,} parameters"
                     + (f" ({frozen:,} frozen)" if frozen else ""))
    opt = meta.get("optimizer") or {}
    if opt:
        hp_text = ", ".join(f"{k}={v}" for k, v in optimizer_settings(opt)[:6])
        lines.append(clip(f"optimizer:  {opt.get('type', '?')}" + (f" ({hp_text})" if hp_text else ""), 1000))
    amp = _amp_line(names, counts, last)
    if amp:
        lines.append(amp)
    if run.config:
        lines.append("config:     " + config_text(run.config))
    lines.append(f"metrics:    {len(user)} logged" + (f" + {n_sys} recorded by watch()" if n_sys else ""))
    yield from lines
    lines = []
    bad = summary.first_nonfinite.tolist()
    names = [one_line(n) for n in names]
    # + 0.0: a last value of -0.0 (cross_entropy over one logit) prints as 0, not -0
    yield from (f"  {names[i]:<32} {counts[i]:>9} points  last {last[i] + 0.0:.6g}"
                + (f"  (NaN/Inf from step {bad[i]})" if bad[i] >= 0 else "") for i in user)
    inst = run.instruments()
    off = instruments_off_step(run)
    if inst:
        lines.append("instruments: " + ", ".join(f"{g} ({n} records)" for g, n in inst.items())
                     + (f"; switched off at step {off} after a failure" if off is not None else ""))
    else:
        model = (run.meta or {}).get("model")
        why = ("watch() was not called" if not isinstance(model, dict) else
               "the watched model has no parameters" if model.get("n_params") == 0 else
               f"they failed at step {off} and were switched off; the training printed why" if off is not None else
               "watch() was called; no optimizer step was recorded")
        lines.append(f"instruments: none ({why})")
    if run.dropped_records:
        lines.append(f"warning:    the writer dropped {run.dropped_records} records (queue full)")
    if st.error:
        lines.append(f"error:      {clip(st.error, 1000)}")
    lines += [f"warning:    {clip(w, 1000)}" for w in run.warnings]
    lines += rank_lines(run)
    yield from lines


def write_lines(lines, batch: int = 10_000) -> None:
    """Print ``lines`` a batch at a time (one write per line costs more than the line)."""
    chunk = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= batch:
            sys.stdout.write("\n".join(chunk) + "\n")
            chunk = []
    if chunk:
        sys.stdout.write("\n".join(chunk) + "\n")


def rank_lines(run) -> list:
    """A distributed run: every rank's file, state, loss and step time (one line each)."""
    from trainspect.analysis.ranks import open_ranks, stopped_first, summaries

    ranked = open_ranks(run, keep_points=False)   # siblings hold no points: read through bounded views
    if ranked is None:
        return []
    with ranked:
        this_rank = run.meta['distributed']['rank']
        lines = [f"ranks:      {ranked.describe()} (rank {this_rank} is this file)"]
        first = stopped_first(ranked, this_rank)
        if first is not None:      # the rank to look at when a job died, as diagnose heads with it
            lines.append(f"            {first['text']}")
        for s in summaries(ranked):
            loss = f"{s.loss} {s.last_loss + 0.0:.6g}" if s.loss else "no loss logged"
            step_time = f"step {s.median_step_time * 1000:.1f} ms" if s.median_step_time == s.median_step_time else ""
            bad = f", non-finite from step {s.first_nonfinite}" if s.first_nonfinite is not None else ""
            lines.append(f"  rank {s.rank:<3} {s.path.name:<28} {s.status}; {loss}; {step_time}{bad}")
    return lines


def run(args) -> int:
    from trainspect.analysis import RunFileError, open_run
    from trainspect.analysis.ranks import fold_rank_paths

    from ..run_paths import expand_runs, run_file

    paths = fold_rank_paths(expand_runs(args.runs))   # a distributed run: rank 0's summary lists every rank
    if not paths:
        print("trainspect info: no run files (*.h5) or TensorBoard logs in " + ", ".join(args.runs),
              file=sys.stderr)
        return 2
    code = 0
    for i, path in enumerate(paths):
        if i:
            print()
        try:
            with open_run(run_file(path)) as r:
                if args.config and len(paths) > 1:
                    print(run_line(r))
                write_lines(config_lines(r) if args.config else summary_lines(r))
        except RunFileError as exc:
            print(f"trainspect info: {exc}", file=sys.stderr)
            code = 2
    return code


def _amp_line(names, counts, last) -> str | None:
    """"AMP: the GradScaler skipped 400 of 400 optimizer steps; loss scale now 0": a run whose every
    step was skipped (an fp16 forward that overflows) told nothing of it (trial 18 U3)."""
    from trainspect.recorder.format import SYS_AMP_SKIPPED, SYS_LOSS_SCALE

    names = list(names)
    try:
        i = names.index(SYS_LOSS_SCALE)
    except ValueError:
        return None
    steps = counts[i]
    if not steps:
        return None
    skipped = counts[names.index(SYS_AMP_SKIPPED)] if SYS_AMP_SKIPPED in names else 0
    return (f"AMP:        the GradScaler skipped {skipped:,} of {steps:,} optimizer steps; "
            f"loss scale now {last[i] + 0.0:.3g}")

