"""The symptom tables of analysis/ADVISOR.md and README.md, generated from the registry.

    python -m trainspect.analysis.advisor.docs           # rewrite the tables in both files
    python -m trainspect.analysis.advisor.docs --check   # exit 1 if a file drifted from the registry

Each file holds the table between ``BEGIN`` and ``END`` markers; tests/test_advisor_docs.py fails
when a table differs from ``symptom_table()``, so a new symptom (or a changed threshold text)
reaches the docs through this script, never by hand.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .registry import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "analysis" / "ADVISOR.md", ROOT / "README.md")
BEGIN = "<!-- symptom table: generated from analysis/advisor/registry.py by `python -m trainspect.analysis.advisor.docs` -->"
END = "<!-- end of generated symptom table -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def symptom_table() -> str:
    rows = ["| symptom | looks at | fires when (keyword default; source) | usual causes (prior) |",
            "|---|---|---|---|"]
    for spec in REGISTRY:
        causes = ", ".join(f"`{c}`" for c, _ in sorted(spec.priors.items(), key=lambda kv: -kv[1])[:3])
        rows.append(f"| `{spec.id}` | {_cell(spec.looks_at)} | {_cell(spec.fires_when)} | {causes} |")
    return "\n".join(rows)


def with_table(text: str, path: Path | str = "") -> str:
    """``text`` with the block between the markers replaced by the current table."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"{path}: no generated-table markers ({BEGIN!r} ... {END!r})")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{symptom_table()}\n{END}{tail}"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    drifted = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        new = with_table(text, path)
        if new != text:
            drifted.append(path)
            if "--check" not in argv:
                path.write_text(new, encoding="utf-8")
    verb = "drifted from the registry" if "--check" in argv else "rewritten"
    for path in drifted:
        print(f"{path}: {verb}")
    return 1 if drifted and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main())
