"""`trainspect compare RUN...`: the runs of a sweep as one table in the terminal, one row per run
(the app's Compare tab, app/run_table.py): the config keys that differ, the losses, the other
metrics' last values; `--diagnose` adds the advisor's verdict, `--csv` writes CSV for a notebook.
No Qt needed: made for a GPU machine reached over ssh."""
from __future__ import annotations

import sys

MAX_CELL_CHARS = 40     # a longer name or value is cut with "…" in the aligned table (never in --csv)
PIPED_WIDTH = 120       # the table's width when stdout is no terminal (and $COLUMNS is unset)
MAX_FIT_CONFIG = 8      # config keys that compete for the terminal's width (--columns picks others)
GAP = 2                 # spaces between two columns
MAX_LISTED = 40         # column names an error lists


def add_arguments(parser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="run files (.h5), directories holding them, or TensorBoard logs")
    parser.add_argument("--sort", metavar="COLUMN",
                        help="sort by this column (ascending; a name it starts with is enough, e.g. 'val loss b')")
    parser.add_argument("--desc", action="store_true", help="sort descending")
    parser.add_argument("--diagnose", action="store_true",
                        help="add the advisor's verdict on each run (reads every run's whole record: slower)")
    parser.add_argument("--all-config", action="store_true",
                        help="show config keys that are the same in every run too")
    parser.add_argument("--columns", metavar="NAME,...",
                        help="show these columns (after run, state, steps), in this order: config keys or metric "
                             "columns, each a name, the start of one or a glob ('lr,val*,optim.*')")
    parser.add_argument("--width", type=int, metavar="N",
                        help="fit the table in N characters (default: the terminal's width, "
                             f"{PIPED_WIDTH} when piped); 0: every column, however wide")
    parser.add_argument("--csv", action="store_true", help="write CSV (full precision, every column) instead of "
                                                           "an aligned table")


def _cell(text: str) -> str:
    # escaped here, before the widths are measured (the stream escapes again, a no-op by then):
    # a name with an escape sequence put its row 9 columns out of line
    from ..terminal_text import fit_width, one_line, visible
    return fit_width(visible(one_line(text)), MAX_CELL_CHARS)


def _number(v) -> str:
    from ..report.svgplot import fmt_value
    return "-" if v is None else fmt_value(v)


def _value(row, column: str):
    """The cell of ``row`` in ``column``."""
    if column in ("run", "state", "advisor"):
        return {"run": row.name, "state": row.state, "advisor": row.advice}[column]
    if column == "steps":
        return row.steps
    return row.values[column] if column in row.values else row.config.get(column)


def sort_rows(rows, column: str, descending: bool = False) -> list:
    """Numbers as numbers, then text; blanks and NaN last in both directions."""
    from ..run_table import sort_key
    keyed = [(sort_key(_value(r, column)), r) for r in rows]
    present = sorted((kr for kr in keyed if kr[0] is not None), key=lambda kr: kr[0], reverse=descending)
    return [r for _, r in present] + [r for k, r in keyed if k is None]


def table_lines(rows, cols, advice: bool, width: int = 0, first: str | None = None) -> list:
    """Aligned columns: text left, numbers right (the advisor's words, last, are never cut).
    ``width`` > 0: the columns of ``cols`` that fit in it (:func:`fit`), the others left out;
    ``cols.config`` and ``cols.values`` keep the columns shown."""
    from ..run_table import sort_key
    from ..run_table import row_labels
    from ..terminal_text import display_width, one_line, pad
    labels = row_labels(rows)
    fixed = [("run", [_cell(x) for x in labels]), ("state", [r.state for r in rows]),
             ("steps", ["" if r.steps is None else str(r.steps) for r in rows])]
    optional = {("config", k): (_cell(k), [_cell(r.config.get(k, "-")) for r in rows]) for k in cols.config}
    optional.update({("value", t): (_cell(t), [_number(r.values.get(t)) for r in rows]) for t in cols.values})
    if width > 0:
        keep = set(fit({key: _span(h, cells) for key, (h, cells) in optional.items()}, cols, rows, first,
                       width - sum(_span(h, c) + GAP for h, c in fixed)
                       - (GAP + max(display_width(one_line(r.advice)) for r in rows) if advice else 0)))
        cols.config[:] = [k for k in cols.config if ("config", k) in keep]
        cols.values[:] = [t for t in cols.values if ("value", t) in keep]
    shown = fixed + [optional[("config", k)] for k in cols.config] + [optional[("value", t)] for t in cols.values]
    if advice:
        shown.append(("advisor", [one_line(r.advice) for r in rows]))
    header = [h for h, _ in shown]
    body = [[cells[i] for _, cells in shown] for i in range(len(rows))]
    widths = [_span(h, cells) for h, cells in shown]
    right = {j for j in range(2, len(header))                  # numbers right, text left
             if all((k := sort_key(b[j])) is None or k[0] == 0 for b in body)}

    def line(cells):
        return (" " * GAP).join(pad(c, w, j in right) for j, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return [line(header), line(["-" * w for w in widths]), *(line(b) for b in body)]


def _span(header: str, cells) -> int:
    from ..terminal_text import display_width
    return max([display_width(header), *(display_width(c) for c in cells)])


def fit(spans: dict, cols, rows, first, room: int) -> list:
    """The optional columns that fit in ``room`` characters, the most useful first: the losses,
    then the config keys that differ (set in the most runs first, at most MAX_FIT_CONFIG: a mixed
    folder's 40 HF training_args keys are not what a sweep varies), then the other metrics. A
    column too wide for what is left is passed over for a narrower one after it. ``first``: the
    column the rows are sorted by, shown before all."""
    from ..run_table import LOWER_IS_BETTER
    losses = [("value", t) for t in cols.values if t in LOWER_IS_BETTER]
    by_presence = sorted(cols.config, key=lambda k: -sum(k in r.config for r in rows))   # stable: first seen first
    config = [("config", k) for k in by_presence][:MAX_FIT_CONFIG]
    metrics = [("value", t) for t in cols.values if t not in LOWER_IS_BETTER]
    chosen = []
    sort_key = [key for key in spans if key[1] == first][:1]
    for key in dict.fromkeys(sort_key + losses + config + metrics):
        need = spans[key] + GAP
        if need <= room:
            chosen.append(key)
            room -= need
    return chosen


def pick_columns(patterns: str, rows, cols) -> tuple[list, list, list]:
    """(config keys, metric columns, patterns that matched nothing) named by ``--columns``."""
    from fnmatch import fnmatchcase

    every = dict.fromkeys(k for r in rows for k in r.config)     # every key, past the table's limit too
    names = [("config", k) for k in every] + [("value", t) for t in cols.values]
    picked, unmatched = [], []
    for pattern in (p.strip() for p in patterns.split(",")):
        if not pattern:
            continue
        exact = [n for n in names if n[1] == pattern]
        found = exact or [n for n in names if (fnmatchcase(n[1], pattern) if any(c in pattern for c in "*?[")
                                               else n[1].startswith(pattern))]
        if not found:
            unmatched.append(pattern)
        picked += [n for n in found if n not in picked]
    return [k for kind, k in picked if kind == "config"], [t for kind, t in picked if kind == "value"], unmatched


def terminal_width(args) -> int:
    """The table's width: --width, else the terminal's ($COLUMNS first), else PIPED_WIDTH."""
    import shutil
    if args.width is not None:
        return max(0, args.width)
    return shutil.get_terminal_size((PIPED_WIDTH, 24)).columns


def run(args) -> int:
    from trainspect.analysis import RunFileError, open_run
    from trainspect.analysis.ranks import fold_rank_paths

    from ..run_paths import expand_runs, run_file
    from ..run_table import advice_text, columns, run_row, to_csv

    paths = fold_rank_paths(expand_runs(args.runs))
    if not paths:
        print("trainspect compare: no run files (*.h5) or TensorBoard logs in " + ", ".join(args.runs),
              file=sys.stderr)
        return 2
    rows, code = [], 0
    for path in paths:
        try:
            with open_run(run_file(path)) as r:
                row = run_row(r)
                if args.diagnose:
                    from trainspect.analysis import diagnose
                    row.advice = advice_text(list(diagnose(r)))[0]
                rows.append(row)
        except RunFileError as exc:
            print(f"trainspect compare: {exc}", file=sys.stderr)
            code = 2
    if not rows:
        return code
    cols = columns(rows, args.all_config)
    if args.columns:
        config, values, unmatched = pick_columns(args.columns, rows, cols)
        if unmatched:
            names = [*dict.fromkeys(k for r in rows for k in r.config), *cols.values]
            listed = ", ".join(names[:MAX_LISTED]) + (f", … and {len(names) - MAX_LISTED} more (--csv writes every "
                                                       "column)" if len(names) > MAX_LISTED else "")
            print(f"trainspect compare: no column matches {', '.join(map(repr, unmatched))}; the columns are: "
                  + listed, file=sys.stderr)
            return 2
        cols.config, cols.values = config, values
    if args.sort:
        names = ["run", "state", "steps", *cols.config, *cols.values, *(["advisor"] if args.diagnose else [])]
        column = next((n for n in names if n == args.sort), None) or next(
            (n for n in names if n.startswith(args.sort)), None)
        if column is None:
            print(f"trainspect compare: no column {args.sort!r}; the columns are: " + ", ".join(names), file=sys.stderr)
            return 2
        rows = sort_rows(rows, column, args.desc)
    if args.csv:
        sys.stdout.write(to_csv(rows, cols))
        return code
    offered = (len(cols.config), len(cols.values))
    width = 0 if args.columns else terminal_width(args)
    # the sort column first among those competing for the width: the table is read by it
    first = column if args.sort else None
    sys.stdout.write("\n".join(table_lines(rows, cols, args.diagnose, width, first)) + "\n")
    left_config, left_values = offered[0] - len(cols.config), offered[1] - len(cols.values)
    if left_config or left_values:
        what = ", ".join(part for part in (f"{left_values} metric column(s)" if left_values else "",
                                           f"{left_config} config key(s)" if left_config else "") if part)
        _note(f"({what} left out to fit {width} characters: --columns NAME,... picks columns, "
              "--width 0 shows every one, --csv writes them all)", width)
    if cols.hidden_config and not args.columns:
        _note(f"({cols.hidden_config} config key(s) not shown: "
              + ("--all-config shows them)" if not args.all_config else "past the column limit)"), width)
    return code


def _note(text: str, width: int) -> None:
    """A line under the table, wrapped to the table's width."""
    import textwrap
    print(textwrap.fill(text, width) if width > 0 else text)
