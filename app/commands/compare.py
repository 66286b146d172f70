"""`trainspect compare RUN...`: the runs of a sweep as one table in the terminal, one row per run
(the app's Compare tab, app/run_table.py): the config keys that differ, the losses, the other
metrics' last values; `--diagnose` adds the advisor's verdict, `--csv` writes CSV for a notebook.
No Qt needed: made for a GPU machine reached over ssh."""
from __future__ import annotations

import sys

MAX_CELL_CHARS = 40     # a longer name or value is cut with "…" in the aligned table (never in --csv)


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
    parser.add_argument("--csv", action="store_true", help="write CSV (full precision) instead of an aligned table")


def _cell(text: str) -> str:
    # escaped here, before the widths are measured (the stream escapes again, a no-op by then):
    # a name with an escape sequence put its row 9 columns out of line
    from ..terminal_text import one_line, visible
    text = visible(one_line(text))
    return text if len(text) <= MAX_CELL_CHARS else text[:MAX_CELL_CHARS - 1] + "…"


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


def table_lines(rows, cols, advice: bool) -> list:
    """Aligned columns: text left, numbers right (the advisor's words, last, are never cut)."""
    from ..terminal_text import one_line
    header = ["run", "state", "steps", *cols.config, *cols.values, *(["advisor"] if advice else [])]
    body = [[_cell(r.name), r.state, "" if r.steps is None else str(r.steps),
             *(_cell(r.config.get(k, "-")) for k in cols.config),
             *(_number(r.values.get(t)) for t in cols.values), *([one_line(r.advice)] if advice else [])]
            for r in rows]
    widths = [max(len(h), *(len(b[j]) for b in body)) if body else len(h) for j, h in enumerate(header)]
    from ..run_table import sort_key
    right = {j for j in range(2, len(header))                  # numbers right, text left
             if all((k := sort_key(b[j])) is None or k[0] == 0 for b in body)}

    def line(cells):
        return "  ".join(c.rjust(w) if j in right else c.ljust(w) for j, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return [line(header), line(["-" * w for w in widths]), *(line(b) for b in body)]


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
    else:
        sys.stdout.write("\n".join(table_lines(rows, cols, args.diagnose)) + "\n")
        if cols.hidden_config:
            print(f"({cols.hidden_config} config key(s) not shown: "
                  + ("--all-config shows them)" if not args.all_config else "past the column limit)"))
    return code
