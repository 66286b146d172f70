"""What a report contains, gathered once from the runs and rendered by html.py and pdf.py.

Everything is read through ``analysis`` (no h5py here). Plots are SVG text from svgplot.py;
all other fields are plain strings and numbers that the renderers escape.
"""
from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from trainspect.analysis import RunFileError, open_run
from trainspect.analysis.frozen import frozen_numel, frozen_param_names
from trainspect.analysis.labels import LayerLabels
from trainspect.analysis.optimizer_settings import optimizer_settings
from trainspect.analysis.run import fmt

from ..lod import RowPooler
from ..short_names import short_labels
from ..vocab import (ACTS, LAYER_STAT_SPECS, LAYER_STATS, SNAPS, SYS_GRAD_NORM, SYS_LR, RunState, is_lr, is_sys,
                     lr_groups, name_list, same_series, stat_label, step_count, steps_text)

from . import svgplot
from .svg_scatter import sweep_svg
from ..run_colours import run_color
from .svgplot import PALETTE, Line, PlotSpec

MAX_OTHER_METRICS = 6        # user metrics beyond the losses that get their own plot
MAX_SIDE_BY_SIDE = 6         # more runs than this: one row per run and a column per field that differs
                             # (a column per run made 8 runs' cells a word wide on an A4 page)
BRIEF_FROM_RUNS = 4          # this many runs or more: each run's detail is brief (summary, loss plot, its
                             # warnings' evidence): the full detail of 12 runs was 35 pages
BRIEF_LEAVES_OUT = frozenset({"started", "host", "versions", "metrics"})   # summary rows of a brief section
BRIEF_PLOT_HEIGHT = 170     # the plots of a brief section: a run on about one page
NAMED_IN_TITLE = 3           # more runs than this: the title counts them (12 names took 4 lines of 24 pt)
# What sorts a comparison, the first any run has, lowest first (the app's Compare: val loss best,
# else train loss end); runs without it, or NaN, come last
SORT_KEYS = (("val_best",), ("train_end", "train_last"))
MAX_FINDING_LAYERS = 6       # layers drawn in a finding's layer-statistic plot
HEATMAP_STATS = (            # (stat, title); only those the run has, over the modules where they mean something
    ("grad_norm", "Gradient norm per parameter"),
    ("update_ratio", "Update / weight ratio per parameter"),
    ("act_dead_frac", "Dead units per module (fraction)"),
    ("act_frac_saturated", "Saturated activations per module (fraction)"),
)
IMPORTED_KEY = fmt.CONFIG_IMPORTED_FROM    # set by the importers: the file's times are the import's
SUMMARY_LOSS_WINDOW = 10     # the end level of a long loss series = median of its last 10 points (one noisy
                             # batch is not the result); "last" is only ever the last value


@dataclass
class Figure:
    title: str
    svg: str
    caption: str = ""
    plot: dict | None = None     # a line plot's drawn data (svgplot.drawn_data): the HTML's hover and zoom


def plot_figure(title: str, lines: list, spec: PlotSpec, caption: str = "") -> Figure:
    """A line plot as a Figure: its SVG (HTML and PDF) and what it drew (the HTML's hover and zoom)."""
    svg, plot = svgplot.line_plot_drawn(lines, spec)
    return Figure(title, svg, caption, plot)


@dataclass
class RunSection:
    name: str
    path: str
    summary: list                       # [(label, value text)]
    config: list                        # [(key, value text)]
    findings: list                      # [Finding]
    figures: list                       # [Figure] key plots
    finding_figures: dict = field(default_factory=dict)   # finding index -> [Figure]
    metrics: dict = field(default_factory=dict)           # numbers for the comparison
    not_checked: list = field(default_factory=list)       # what the advisor could not check (coverage)
    read_from_logs: str = ""                              # logged metrics it read in place of sys/ series
    brief: bool = False                 # one of many runs: summary, loss plot, warnings in full, infos a line each


@dataclass
class Comparison:
    header: list                        # ["", run1, run2, ...]; by_run: ["run", label1, label2, ...]
    rows: list                          # [(label, [cell texts], differs: bool)]; by_run: [(run, [cells], False)]
    figures: list
    by_run: bool = False                # one row per run, a column per field that differs (many runs)
    bold: set = field(default_factory=set)      # (row, cell) of each loss's best value
    notes: list = field(default_factory=list)   # what a short column header stands for
    shared: list = field(default_factory=list)  # [(config key, value)] every run has alike (many runs)
    not_checked: list = field(default_factory=list)   # what the advisor could check in none of the runs
    brief: bool = False                 # the runs' sections below are brief (RunSection.brief)


@dataclass
class Report:
    title: str
    created: str
    runs: list                          # [RunSection]
    comparison: Comparison | None = None


class Progress:
    """Counts steps and forwards them to ``progress(done, total, text)`` if given."""

    def __init__(self, callback, total: int):
        self.callback = callback
        self.total = total
        self.done = 0

    def step(self, text: str) -> None:
        self.done = min(self.done + 1, self.total)
        if self.callback is not None:
            self.callback(self.done, self.total, text)


# ------------------------------------------------------------------ helpers
def value_text(v) -> str:
    """A config/meta value as one line of text (escaping is the renderer's job)."""
    if isinstance(v, float):
        return svgplot.fmt_value(v)
    if isinstance(v, (list, tuple)) and len(v) > 12:
        return "[" + ", ".join(value_text(x) for x in v[:12]) + f", … ({len(v)} items)]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {value_text(x)}" for k, x in v.items()) + "}"
    return str(v)


def flatten(d: dict, prefix: str = "") -> list:
    """Nested config dicts as dotted keys, in insertion order."""
    out = []
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.extend(flatten(v, key + "."))
        else:
            out.append((key, value_text(v)))
    return out


def duration_text(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "unknown"
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else (f"{m}m {s:02d}s" if m else f"{seconds:.1f} s")


def imported(run) -> bool:
    """A run imported from a TensorBoard/CSV log: its file's times are the import's, not the training's."""
    return IMPORTED_KEY in (run.config or {})


def run_duration(run, status) -> str:
    """How long the run trained (``status``: ``run.status()``), as ``trainspect info`` and the
    report say it. An imported log's file times are the import's ("0.1 s"): a TensorBoard log's
    events carry their own times, a CSV log none."""
    if imported(run):
        span = _logged_time_span(run)
        return (f"{duration_text(span)} (the log's times)" if span is not None
                else "unknown (imported: the log kept no times)")
    end = status.heartbeat if status.state != RunState.LIVE else time.time()
    return duration_text(end - run.start_time)


def _log_times_kept(run) -> bool:
    """An imported TensorBoard log keeps its events' times (a CSV log has none)."""
    return (run.config or {}).get(fmt.CONFIG_IMPORT_FORMAT) == fmt.IMPORT_FORMAT_TENSORBOARD


def _logged_time_span(run) -> float | None:
    """Seconds from the first to the last event of an imported TensorBoard log's main metric."""
    if not _log_times_kept(run):
        return None
    names = [n for n in loss_names(run) if n] or run.scalar_names()[:1]
    wall = run.scalar(names[0]).wall if names else np.zeros(0)
    wall = wall[np.isfinite(wall)]
    return float(wall.max() - wall.min()) if len(wall) >= 2 else None


def loss_names(run) -> tuple:
    """(training loss name or None, validation loss name or None): the run's loss roles."""
    roles = run.loss_roles()
    return roles.get("train"), roles.get("val")


def _last(values: np.ndarray) -> float:
    """The last value logged (NaN/Inf included: a run that ended there, ended there)."""
    return float(values[-1]) if len(values) else math.nan


def _end_level(values: np.ndarray, points: int | None = None) -> float | None:
    """``values``: the series, or its last points of ``points`` in all (a long series' tail).
    Median of the last SUMMARY_LOSS_WINDOW points, NaN (or inf) when most of them are not
    finite: a run that blew up ends non-finite, not at the healthy level of long before (the
    finite points alone made it look as good as a healthy run in the comparison table). A
    stray NaN among finite points is left out. None for a series no longer than the window (a
    handful of validation points: the last value says it, a median would blur it)."""
    if (values.size if points is None else points) <= SUMMARY_LOSS_WINDOW:
        return None
    last = values[-SUMMARY_LOSS_WINDOW:]
    finite = np.isfinite(last)
    if 2 * int(finite.sum()) > last.size:
        return float(np.median(last[finite]))
    return math.nan if np.isnan(last).any() else float(np.median(last))


def _best(values: np.ndarray) -> float:
    fin = values[np.isfinite(values)]
    return float(fin.min()) if fin.size else math.nan


def series_points(run, name: str):
    """A metric as the report reads it (``.steps``, ``.values``, ``.points``): the run's bounded
    view (``Run.scalar_views``: every point up to 131,072, beyond that a sample plus each
    bucket's smallest and largest point, the first and last points and the first NaN), read in
    blocks: what the advisor reads, so its evidence lies on the plotted curve. A plot draws
    each pixel column's min and max, which the view keeps; the full columns were read into
    memory (~170 B a row: 840 MB for a 20 M-row run, trial14 A6). None for no such metric."""
    if not hasattr(run, "scalar_views"):           # a stand-in run of tests: its whole series
        try:
            s = run.scalar(name)
        except KeyError:
            return None
        return SimpleNamespace(steps=np.asarray(s.steps), values=np.asarray(s.values, float), points=len(s))
    return run.scalar_views([name]).get(name)


def read_all_views(run) -> None:
    """Read every metric's bounded view in one pass over the scalar table (the first view of a
    metric not yet read starts a pass of its own)."""
    if hasattr(run, "scalar_views"):
        names = run.metric_names() if hasattr(run, "metric_names") else run.scalar_names()
        run.scalar_views(names)


def tail_values(run, name: str, view, n: int) -> np.ndarray:
    """The last ``n`` values of a metric exactly (a view keeps a long series' last point, not its
    last ``n``): read from the end of the scalar table in growing windows, nothing kept."""
    if len(view.steps) >= view.points or not hasattr(run, "scalar_rows"):
        return np.asarray(view.values[-n:], float)
    rows, width = run.scalar_rows_seen, 1 << 16
    while True:
        start = max(0, rows - width)
        got = run.scalar_rows([name], start, rows, latest=True).get(name)
        values = got[1].values if got is not None else np.empty(0)
        if len(values) >= n or start == 0:
            return np.asarray(values[-n:], float)
        width *= 8


def _series_line(run, name, color, label=None, **kw) -> Line | None:
    s = series_points(run, name)
    if s is None or not len(s.steps):
        return None
    return Line(s.steps, s.values, label if label is not None else name, color, **kw)


# ------------------------------------------------------------------ per run
def clock_text(t) -> str:
    """A unix time as local date and time; "" for none, or one no clock shows (1e308 in a
    file's metadata: an OverflowError took the whole report, and a sweep's comparison, down)."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(t)))
    except (TypeError, ValueError, OverflowError, OSError):
        return ""


def run_summary(run) -> tuple[list, dict]:
    st = run.status()
    meta = run.meta or {}
    rows = [("file", str(run.path)), ("status", st.describe()),
            ("steps", steps_text(run.scalar_summary().min_step, run.max_step))]
    # a CSV log's start is the import's; a TensorBoard log's, its first event's
    started = "" if imported(run) and not _log_times_kept(run) else clock_text(meta.get("start_time"))
    if started:
        rows.append(("started", started))
    rows.append(("duration", run_duration(run, st)))
    if meta.get("host"):
        rows.append(("host", value_text(meta["host"])))
    model = meta.get("model") or {}
    if model or run.params:
        n_params = model.get("n_params", sum(p.numel for p in run.params))
        n_text = f"{n_params:,}" if isinstance(n_params, int) else value_text(n_params)
        frozen = frozen_numel(run.meta, run.params)
        rows.append(("model", f"{len(run.modules)} leaf modules, {len(run.params)} parameter tensors, {n_text} parameters"
                     + (f" ({frozen:,} frozen)" if frozen else "")))
    opt = meta.get("optimizer") or {}
    if opt:
        hp = optimizer_settings(opt)
        rows.append(("optimizer", value_text(opt.get("type", "?")) +
                     (" (" + ", ".join(f"{k}={value_text(v)}" for k, v in hp) + ")" if hp else "")))
    versions = meta.get("versions") or {}
    if versions:
        rows.append(("versions", ", ".join(f"{k} {value_text(v)}" for k, v in versions.items() if v)))
    train, val = loss_names(run)
    metrics = {"state": st.state, "steps": step_count(run.scalar_summary().min_step, run.max_step)}
    for role, name in (("train", train), ("val", val)):
        if name:
            view = series_points(run, name)
            # the view keeps the last point and each bucket's smallest: last and best as read whole
            v = np.asarray(view.values, float) if view is not None else np.empty(0)
            metrics[f"{role}_last"], metrics[f"{role}_best"] = _last(v), _best(v)
            end = (_end_level(tail_values(run, name, view, SUMMARY_LOSS_WINDOW), view.points)
                   if view is not None and len(v) else None)
            if end is not None:
                metrics[f"{role}_end"] = end
            rows.append((f"{role} loss ({name})", f"last {svgplot.fmt_value(metrics[f'{role}_last'])}"
                         + (f" (median of the last {SUMMARY_LOSS_WINDOW}: {svgplot.fmt_value(end)})" if end is not None else "")
                         + f", best {svgplot.fmt_value(metrics[f'{role}_best'])}"))
    summary = run.scalar_summary()        # metrics with points, as `trainspect info` counts them
    filled = [n for n, count in zip(summary.names, summary.counts.tolist()) if count]
    user = [n for n in filled if not is_sys(n)]
    rows.append(("metrics", f"{len(user)} logged, {len(filled) - len(user)} recorded by watch()"))
    if st.error:
        rows.append(("error", st.error))
    rows += [("warning", w) for w in getattr(run, "warnings", ())]   # parts of the file left out
    return rows, metrics


def key_figures(run, brief: bool = False) -> list:
    """Losses, other metrics, learning rate, gradient norm and layer heatmaps; the losses only
    when ``brief`` (one of many runs: the comparison overlays the runs' learning rates and
    gradient norms)."""
    names = run.scalar_names()
    figs = []
    train, val = loss_names(run)
    losses = [n for n in (train, val) if n] + [n for n in names if "loss" in n.lower()
                                                and not is_sys(n) and n not in (train, val)]
    lines = [ln for i, n in enumerate(losses[:len(PALETTE)]) if (ln := _series_line(run, n, PALETTE[i])) is not None]
    if lines:
        figs.append(plot_figure("Losses", lines, PlotSpec(title="Losses", ylabel="loss",
                                                          height=BRIEF_PLOT_HEIGHT if brief else 240),
                                "raw values; every spike is kept (min/max per pixel column)"))
    if brief:
        return figs
    lrs = lr_groups(names)
    others = [n for n in names if not is_sys(n) and n not in losses and not _lr_copy(run, n, lrs)][:MAX_OTHER_METRICS]
    for n in others:
        ln = _series_line(run, n, PALETTE[2])
        if ln is not None:
            figs.append(plot_figure(n, [ln], PlotSpec(title=n, height=200)))
    lines = [ln for i, n in enumerate(lrs[:len(PALETTE)])
             if (ln := _series_line(run, n, PALETTE[i], "group 0" if n == SYS_LR else "group " + n.rsplit("/", 1)[-1]))]
    if lines:
        if len(lines) == 1:
            lines[0].label = ""
        title = stat_label(SYS_LR).capitalize()
        figs.append(plot_figure(title, lines, PlotSpec(title=title, height=200)))
    gn = _series_line(run, SYS_GRAD_NORM, PALETTE[4], "")
    if gn is not None:
        title = stat_label(SYS_GRAD_NORM).capitalize()
        figs.append(plot_figure(title, [gn], PlotSpec(title=title, height=200)))
    have = set(run.layer_stat_names())
    for stat, title in HEATMAP_STATS:
        if stat not in have:
            continue
        rows, which = meaningful_rows(run, stat)
        if rows is None or rows:      # no module where the statistic means something: no heatmap
            figs.append(layer_heatmap(run, stat, title, rows, which))
    return [f for f in figs if f is not None]


def _lr_copy(run, name: str, lrs: list) -> bool:
    """A learning rate the script logged that is a recorded one again (``lr`` beside ``sys/lr``):
    one curve, plotted once as the learning rate. One that differs keeps its own plot."""
    return is_lr(name) and any(same_series(series_points(run, name), series_points(run, g)) for g in lrs
                               if g != name)


def meaningful_rows(run, stat: str) -> tuple:
    """(the modules whose ``stat`` means something, the words for them), as the advisor judges
    them (``judged_columns``); (None, "") for every row. A healthy Linear, LayerNorm, Dropout or
    logit output has many units <= 0 for a whole batch (nanoGPT: 0.47-0.69): its bright
    dead-units row read as an alarm."""
    from trainspect.analysis.advisor.functional_acts import judged_columns, weight_shapes

    if stat not in ("act_dead_frac", "act_frac_saturated"):
        return None, ""
    layers = run.layer_stat(stat, 0, 0).layers
    type_of = {m.name: m.type for m in run.modules or ()}
    cols, which = judged_columns(stat, [type_of.get(n, "") for n in layers], layers, weight_shapes(run.params))
    return {layers[j] for j in cols}, which


def layer_labels(run, layers: list) -> list:
    """Layers get their type ("layer 3 (ReLU)"): bare indices say little in a heatmap."""
    label = LayerLabels.for_run(run)
    return [label(n) for n in layers]


def heatmap_labels(run, layers: list) -> list:
    """Row labels that fit the axis, modules named as the gradient heatmap names parameters:
    without the dotted prefix every parameter name shares ("transformer."). A module outside it
    (nanoGPT's lm_head, whose weight is wte's) left the modules no common prefix, and their
    rows were cut from the front ("…rmer.h.0.attn.c_attn (Linear)")."""
    labels = layer_labels(run, layers)
    params = [p.name for p in run.params or ()]
    common = os.path.commonprefix(params) if len(params) > 1 else ""
    prefix = common[:common.rfind(".") + 1]
    if prefix and any(len(label) > svgplot.MAX_LABEL_CHARS for label in labels):
        labels = [label[len(prefix):] if label.startswith(prefix) else label for label in labels]
    return short_labels(labels, svgplot.MAX_LABEL_CHARS)


def pooled_layer_stat(run, stat: str, n_columns: int):
    """A layer statistic max-pooled to at most ``n_columns`` record buckets, read block by block:
    ``(pooled [buckets x layers], first step of each bucket, last step, layers, finite min, max)``.
    Memory is the pooled table plus one block, not the records x layers table."""
    n = run.record_count(LAYER_STATS[stat][0])
    layers = run.layer_stat(stat, 0, 0).layers
    pooler = RowPooler(n, len(layers), n_columns)
    steps, lo, hi, at = [], math.inf, -math.inf, 0
    for block in run.layer_stat_chunks(stat, 0, n):
        pooler.add(at, block.values)
        at += len(block.steps)
        steps.append(block.steps)
        lo, hi = _finite_range(block.values, lo, hi)
    steps = np.concatenate(steps) if steps else np.empty(0, np.int64)
    # Fewer rows than counted (a resumed run's superseded records): drop the unfilled buckets.
    keep = pooler.edges[:-1] < at
    pooled, first = pooler.result()[keep], steps[pooler.edges[:-1][keep]]
    return pooled, first, steps[-1] if len(steps) else None, layers, lo, hi


def _finite_range(values, lo: float, hi: float) -> tuple[float, float]:
    """(lo, hi) widened by the finite values of ``values``, without a copy in the usual case."""
    if values.size == 0:
        return lo, hi
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)      # an all-NaN block
        a, b = float(np.nanmin(values)), float(np.nanmax(values))
    if not (math.isfinite(a) and math.isfinite(b)):          # Inf (or only NaN) in the block
        finite = values[np.isfinite(values)]
        if not finite.size:
            return lo, hi
        a, b = float(finite.min()), float(finite.max())
    return min(lo, a), max(hi, b)


def layer_heatmap(run, stat: str, title: str | None = None, rows: set | None = None, which: str = "") -> Figure | None:
    """``rows``: the layers to draw (None: all), ``which`` the words for them in the caption."""
    pooled, first, last, layers, lo, hi = pooled_layer_stat(run, stat, svgplot.MAX_HEATMAP_COLUMNS)
    if not len(pooled) or not pooled.shape[1]:
        return None
    # parameters frozen on purpose (a LoRA base) have no gradient and no update: rows left out
    frozen = frozen_param_names(run.meta, run.params) if LAYER_STATS[stat][0] != ACTS else None
    wanted = [j for j, name in enumerate(layers) if rows is None or name in rows]
    uncalled = _never_called(run, pooled, layers) if LAYER_STATS[stat][0] == ACTS else set()
    uncalled &= {layers[j] for j in wanted}
    shown = [j for j in wanted if (not frozen or layers[j] not in frozen) and layers[j] not in uncalled] or wanted
    hidden = len(wanted) - len(shown) - len(uncalled)
    if len(shown) < len(layers):
        pooled, layers = pooled[:, shown], [layers[j] for j in shown]
        finite = pooled[np.isfinite(pooled)]   # the colour range of what is shown
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (lo, hi)
    title = title or stat_label(stat)
    vrange = (0.0, 1.0) if LAYER_STAT_SPECS[stat].fraction else None
    # The axis spans the first to the last record (the last column starts at its bucket's first step).
    x = np.append(first[:-1], last) if len(first) > 1 else first
    log = False if vrange else bool(lo > 0 and hi / lo > 100)   # decided on every record, not the maxima
    svg = svgplot.heatmap(pooled, x, heatmap_labels(run, layers), title=title, vrange=vrange, log=log)
    return Figure(title, svg, f"layer statistic {stat}; columns keep the maximum of the records they cover"
                  + (f"; only {which}: elsewhere it means nothing" if which else "")
                  + (f"; {hidden} frozen parameters (requires_grad=False) not shown" if hidden else "")
                  + (f"; not shown, never called as modules (no activations to record): {name_list(uncalled)}"
                     if uncalled else ""))


def _never_called(run, pooled, layers) -> set:
    """Leaf modules whose forward never ran as a module call (a spare head; in files recorded
    before MultiheadAttention became a leaf, its out_proj, whose weights it uses directly):
    every activation field NaN at every record. Their rows read
    as NaN/Inf, an alarm, in the heatmaps. A layer whose outputs are NaN still counts its
    x <= 0 (NaN is not), so its act_frac_nonpos is finite: it stays."""
    candidates = [j for j in range(pooled.shape[1]) if not np.isfinite(pooled[:, j]).any()]
    if not candidates:
        return set()
    nonpos = pooled_layer_stat(run, "act_frac_nonpos", svgplot.MAX_HEATMAP_COLUMNS)[0]
    return {layers[j] for j in candidates if j < nonpos.shape[1] and np.isnan(nonpos[:, j]).all()}


def _on_curve(markers, x, y) -> list:
    """Evidence points that lie on the plotted curve (evidence may mix values of several stats)."""
    keep = []
    for mx, my in markers:
        i = int(np.searchsorted(x, mx))
        if i < len(x) and x[i] == mx and (y[i] == my or abs(y[i] - my) <= 1e-3 * max(abs(my), 1e-12)):
            keep.append((mx, my))
    return keep


def finding_figures(run, finding, height: int | None = None) -> list:
    """The plots a finding's evidence refers to, with its span shaded and its points circled."""
    figs, seen = [], set()
    names = set(run.scalar_names())
    stats = set(run.layer_stat_names())
    first, last = finding.first_step, finding.last_step
    first = last if first is None else first      # a finding may give one end only (as the app reads it)
    span = [] if first is None else [(first, first if last is None else last)]
    for ev in finding.evidence:
        key = (ev.series, ev.layer)
        if key in seen:
            continue
        seen.add(key)
        if ev.series in names and finding.ranks:
            fig = _rank_evidence_figure(run, finding, ev, span, height) or _scalar_evidence_figure(run, ev, span, height)
        elif ev.series in names:
            fig = _scalar_evidence_figure(run, ev, span, height)
        elif ev.series in stats:
            fig = _layer_evidence_figure(run, finding, ev, span, height)
        elif ev.series == "snapshots":
            fig = _snapshot_figure(run, ev.layer or (finding.layers[0] if finding.layers else None), ev.text)
        else:
            fig = None
        if fig is not None:
            figs.append(fig)
    return figs


def step_ranges(steps) -> str:
    """96, 97, 98, 99, 100, 150 -> "96–100, 150"; many groups: "from step a to b"."""
    steps = sorted({int(s) for s in steps})
    groups, start = [], steps[0]
    for prev, nxt in zip(steps, steps[1:] + [None]):
        if nxt != prev + 1:
            groups.append((start, prev))
            start = nxt
    if len(groups) > 6:
        return f"from {svgplot.fmt_step(steps[0], tick=False)} to {svgplot.fmt_step(steps[-1], tick=False)}"
    return ", ".join(svgplot.fmt_step(a, tick=False) if a == b else
                     f"{svgplot.fmt_step(a, tick=False)}–{svgplot.fmt_step(b, tick=False)}" for a, b in groups)


def marker_caption(text: str, markers: list, span: list) -> str:
    """An evidence plot's caption: the evidence line, then which points are circled, by their
    steps ("the 5 values before" circled steps 96–100 for a NaN at 150, unexplained)."""
    if not markers:
        return text
    steps = [x for x, _ in markers]
    n = len(set(steps))
    first = span[0][0] if span else None
    if first is not None and max(steps) < first:
        note = (f"Circled: the last {n} value{'s' if n > 1 else ''} recorded before step "
                f"{svgplot.fmt_step(first, tick=False)} (step{'s' if n > 1 else ''} {step_ranges(steps)}).")
    else:
        note = f"Circled: the evidence value{'s' if n > 1 else ''} at step{'s' if n > 1 else ''} {step_ranges(steps)}."
    if not text:
        return note
    return f"{text} {note}" if text.rstrip().endswith((".", "!", "?")) else f"{text}. {note}"


def _markers(ev) -> list:
    return [(float(s), float(v)) for s, v in zip(ev.steps, ev.values)
            if isinstance(v, (int, float)) and isinstance(s, (int, float))]


def _scalar_evidence_figure(run, ev, span, height=None) -> Figure | None:
    ln = _series_line(run, ev.series, PALETTE[0], "")
    if ln is None:
        return None
    spec = PlotSpec(title=ev.series, height=height or 200, spans=span, markers=_on_curve(_markers(ev), ln.x, ln.y)[:200])
    return plot_figure(ev.series, [ln], spec, marker_caption(ev.text, spec.markers, span))


def _rank_evidence_figure(run, finding, ev, span, height=None) -> Figure | None:
    """A finding about ranks (a straggler, a rank whose loss went apart) plots the series of
    every rank, the named ones first: rank 0's alone was drawn under 'rank 1's median wait is
    10 ms', its 10 ms marker dropped for not lying on that curve."""
    from trainspect.analysis.ranks import open_ranks

    ranked = open_ranks(run)
    if ranked is None:
        return None
    try:
        m = ranked.matrix(ev.series)
    finally:
        ranked.close()
    named = [r for r in finding.ranks if r in m.ranks]
    order = named + [r for r in m.ranks if r not in named]
    lines = [Line(m.steps, m.row(r), f"rank {r}" + (" (named)" if r in named else ""),
                  PALETTE[k % len(PALETTE)]) for k, r in enumerate(order[:len(PALETTE)])]
    markers = _on_curve(_markers(ev), m.steps, m.row(named[0])) if named else []
    spec = PlotSpec(title=f"{ev.series}, every rank", height=height or 210, spans=span, markers=markers[:200])
    return plot_figure(ev.series, lines, spec, marker_caption(ev.text, spec.markers, span))


def _layer_evidence_figure(run, finding, ev, span, height=None) -> Figure | None:
    all_layers = run.layer_stat(ev.series, 0, 0).layers
    wanted = [ev.layer] if ev.layer else list(finding.layers)
    idx = [all_layers.index(n) for n in wanted if n in all_layers][:MAX_FINDING_LAYERS]
    if not idx:       # no layer named: show all layers as a heatmap
        fig = layer_heatmap(run, ev.series)
        return Figure(fig.title, fig.svg, ev.text) if fig is not None else None
    ls = run.layer_columns(ev.series, idx)      # only the plotted layers, read block by block
    lines = [Line(ls.steps, ls.values[:, k], ls.layers[k], PALETTE[k % len(PALETTE)]) for k in range(len(idx))]
    on_curve = _on_curve(_markers(ev), ls.steps, ls.values[:, 0].astype(float)) if len(idx) == 1 else []
    spec = PlotSpec(title=f"{ev.series}", height=height or 210, spans=span, markers=on_curve[:200])
    return plot_figure(ev.series, lines, spec, marker_caption(ev.text, spec.markers, span))


def _snapshot_figure(run, layer, caption) -> Figure | None:
    n = run.record_count(SNAPS)
    snaps = run.snapshots(n - 1, n) if n else run.snapshots(0, 0)     # the last record only
    if not len(snaps.steps) or not snaps.layers:
        return None
    slot = snaps.layers.index(layer) if layer in snaps.layers else 0
    rows, cols = (int(v) for v in snaps.shapes[slot])
    mat = snaps.data[-1, slot, :rows, :cols]          # rows = output units
    title = f"weights of {snaps.layers[slot]} at step {int(snaps.steps[-1])} (downsampled, rows = units)"
    svg = svgplot.heatmap(mat, np.arange(rows), [f"col {c}" for c in range(cols)], title=title, log=False,
                          xlabel="unit (row)")
    return Figure("weight snapshot", svg, caption)


def serious(finding) -> bool:
    return finding.severity in ("warning", "error")


def build_run_section(run, diagnose_fn, progress: Progress | None = None, brief: bool = False) -> RunSection:
    """``brief``: one of many runs: the loss plot only, and evidence plots for warnings and errors."""
    step = progress.step if progress else (lambda text: None)
    read_all_views(run)
    summary, metrics = run_summary(run)
    if brief:
        summary = [(k, v) for k, v in summary if k not in BRIEF_LEAVES_OUT]
    findings = diagnose_fn(run)
    metrics["warnings"] = sum(serious(f) for f in findings)
    metrics["symptoms"] = ", ".join(dict.fromkeys(f.symptom for f in findings)) or "none"
    step(f"{run.name}: summary and advisor")
    figures = key_figures(run, brief)
    step(f"{run.name}: plotting losses" + ("" if brief else ", learning rate, gradient norms, layer heatmaps"))
    # brief: a warning's first evidence plot (the one its first evidence line names)
    ff = {i: finding_figures(run, f, BRIEF_PLOT_HEIGHT if brief else None)[:1 if brief else None]
          for i, f in enumerate(findings) if not brief or serious(f)}
    step(f"{run.name}: plotting the evidence of {len(findings)} finding(s)")
    from trainspect.analysis.advisor import coverage

    covered = coverage(run)
    return RunSection(run.name, str(run.path), summary, flatten(run.config), findings, figures, ff, metrics,
                      [g.text for g in covered.gaps], covered.stand_in_text(), brief)


# ------------------------------------------------------------------ several runs
# (metrics key, row label with the runs side by side, column header with a row per run): the
# results first, validation before training, as the app's Compare
RESULTS = (
    ("val_best", "best val loss", "val best"),
    ("val_last", "last val loss", "val last"),
    ("val_end", f"val loss, median of last {SUMMARY_LOSS_WINDOW}", "val end"),
    ("train_end", f"train loss, median of last {SUMMARY_LOSS_WINDOW}", "train end"),
    ("train_last", "last train loss", "train last"),
    ("train_best", "best train loss", "train best"),
)
MAX_CELL_CHARS = 40          # a long config value (a list, a path) is cut in the table: the run's section has it


def sort_order(sections) -> list[int]:
    """Indices of ``sections`` best first (``sorted_by``), ties and runs without it in file order."""
    keys = sorted_by(sections)
    if keys is None:
        return list(range(len(sections)))
    values = [next((s.metrics[k] for k in keys if k in s.metrics), math.nan) for s in sections]
    return sorted(range(len(sections)), key=lambda i: (not math.isfinite(values[i]),
                                                       values[i] if math.isfinite(values[i]) else 0.0))


def sorted_by(sections) -> tuple | None:
    """The metrics keys that order the runs: the first of SORT_KEYS a run has a finite value of
    (lowest first; runs without it, or NaN, last); None when no run has any."""
    for keys in SORT_KEYS:
        if any(math.isfinite(s.metrics[k]) for s in sections for k in keys if k in s.metrics):
            return keys
    return None


def cell_text(text: str) -> str:
    text = str(text)
    return text if len(text) <= MAX_CELL_CHARS else text[:MAX_CELL_CHARS - 1] + "…"


def _lowest(values: list) -> int | None:
    """Index of the lowest finite value, when there are two or more to choose from."""
    finite = [(v, i) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    return min(finite)[1] if len(finite) > 1 else None


def build_comparison(runs, sections) -> Comparison:
    """The runs best first (``sort_order``): a column each, or with many runs a row each and a
    column per field that differs, under short headers."""
    order = sort_order(sections)
    ordered = [sections[i] for i in order]
    rows = []        # (label, short header, cells, differs, lowest cell or None)

    def add(label, short, cells, values=None, cut=False):
        rows.append((label, short, [cell_text(c) for c in cells] if cut else cells, len(set(cells)) > 1,
                     _lowest(values) if values else None))

    for key, label, short in RESULTS:
        if any(key in s.metrics for s in ordered):
            add(label, short, [svgplot.fmt_value(s.metrics[key]) if key in s.metrics else "–" for s in ordered],
                [s.metrics.get(key) for s in ordered])
    configs = [dict(s.config) for s in ordered]
    config_keys = list(dict.fromkeys(k for c in configs for k in c))
    result_headers = {short for _, _, short in RESULTS} | {"status", "steps", "warnings", "findings", "run"}
    for key in config_keys:
        add(f"config: {key}", key if key not in result_headers else f"config: {key}",
            [c.get(key, "–") for c in configs], cut=True)
    add("findings", "findings", [s.metrics.get("symptoms", "") for s in ordered])
    add("warnings", "warnings", [str(s.metrics.get("warnings", 0)) for s in ordered])
    add("status", "status", [s.metrics.get("state", "") for s in ordered])
    add("steps", "steps", [str(s.metrics.get("steps", "")) for s in ordered])
    by_run = len(sections) > MAX_SIDE_BY_SIDE
    shared, notes = [], []
    if by_run:
        shown = [r for r in rows if r[3] or r[0] in {label for _, label, _ in RESULTS}]
        header = ["run", *(short for _, short, _, _, _ in shown)]
        table = [(sec.name, [cells[i] for _, _, cells, _, _ in shown], False) for i, sec in enumerate(ordered)]
        bold = {(lowest, j) for j, (*_, lowest) in enumerate(shown) if lowest is not None}
        shared = [(key, configs[0].get(key, "–")) for key in config_keys
                  if len({c.get(key, "–") for c in configs}) == 1]
        if any(short.endswith(" end") for short in header):
            notes.append(f"end: median of the last {SUMMARY_LOSS_WINDOW} values")
    else:
        header = ["", *[s.name for s in ordered]]
        table = [(label, cells, differs) for label, _, cells, differs, _ in rows]
        bold = {(i, lowest) for i, (*_, lowest) in enumerate(rows) if lowest is not None}
    if bold:
        notes.append("bold: the lowest loss")
    keys = sorted_by(sections)
    if keys is not None:
        label = next(short for key, _, short in RESULTS if key == keys[0])
        notes.insert(0, f"best first, by {label} (lowest)")
    figs = []
    colors = {id(r): run_color(i) for i, r in enumerate(runs)}      # the app's colour of each run
    sweep = sweep_svg(sections, [colors[id(r)] for r in runs])     # first: which setting trained best
    if sweep is not None:
        figs.append(Figure(*sweep))
    best_first = [runs[i] for i in order]                           # the legends list the best run first
    for title, pick in (("Training loss", lambda r: loss_names(r)[0]),
                        ("Validation loss", lambda r: loss_names(r)[1]),
                        (stat_label(SYS_LR).capitalize(), lambda r: SYS_LR if SYS_LR in r.scalar_names() else None),
                        (stat_label(SYS_GRAD_NORM).capitalize(), lambda r: SYS_GRAD_NORM if SYS_GRAD_NORM in r.scalar_names() else None)):
        lines = []
        for r in best_first:
            name = pick(r)
            if name and (ln := _series_line(r, name, colors[id(r)], r.name)) is not None:
                lines.append(ln)
        if lines:
            figs.append(plot_figure(title, lines, PlotSpec(title=title, height=230)))
    return Comparison(header, table, figs, by_run, bold, notes, shared)


def share_not_checked(comparison, sections) -> None:
    """What the advisor could check in none of the runs, said once in the comparison (a sweep's
    runs are recorded alike: 12 copies of one paragraph)."""
    first = sections[0].not_checked
    if first and all(s.not_checked == first for s in sections):
        comparison.not_checked = list(first)
        for s in sections:
            s.not_checked = []


def default_title(sections) -> str:
    """The run names, or for many runs their number and their folder ("12 runs in sweep/")."""
    if len(sections) <= NAMED_IN_TITLE:
        return "trainspect report: " + ", ".join(s.name for s in sections)
    folders = {os.path.dirname(os.path.abspath(s.path)) for s in sections}
    common = os.path.commonpath(list(folders)) if folders else ""
    where = os.path.basename(common) if len(folders) == 1 or common not in ("", os.sep) else ""
    prefix = os.path.commonprefix([s.name for s in sections])
    prefix = prefix[:max(prefix.rfind(c) for c in "_-/ ") + 1] if prefix else ""
    return (f"trainspect report: {len(sections)} runs" + (f" in {where}/" if where else "")
            + (f" ({prefix}…)" if len(prefix) >= 3 else ""))


def progress_total(n_runs: int) -> int:
    """Steps reported by build_report for ``n_runs`` runs, plus one for writing the file."""
    return 3 * n_runs + (1 if n_runs > 1 else 0) + 1


def build_report(runs, progress=None, title: str | None = None, diagnose_fn=None) -> Report:
    """Gather everything a report shows from open runs (``analysis.Run``)."""
    if diagnose_fn is None:
        from trainspect.analysis import diagnose as diagnose_fn
    prog = progress if isinstance(progress, Progress) else Progress(progress, progress_total(len(runs)))
    brief = len(runs) >= BRIEF_FROM_RUNS
    sections = [build_run_section(r, diagnose_fn, prog, brief) for r in runs]
    comparison = None
    if len(runs) > 1:
        comparison = build_comparison(runs, sections)
        prog.step("comparing runs side by side")
        sections = [sections[i] for i in sort_order(sections)]     # the runs' detail in the table's order
        if brief:
            comparison.brief = True
            share_not_checked(comparison, sections)
    title = title or default_title(sections)
    return Report(title, time.strftime("%Y-%m-%d %H:%M:%S"), sections, comparison)


def open_runs(paths) -> list:
    """Open every path; RunFileError names the first file that cannot be read (others closed)."""
    runs = []
    try:
        for p in paths:
            runs.append(open_run(Path(p), keep_points=False))   # plots read bounded views (series_points)
    except RunFileError:
        for r in runs:
            r.close()
        raise
    return runs
