"""Paper tables: our results laid out in a paper's column order, beside the numbers the paper printed.

A :class:`PaperTable` names its columns (test sets, e.g. generators) in the paper's order, the
folder names that map onto each column, the metrics per column, and the reference rows. Every
reference row carries its own source tag (:data:`SOURCE_TAGS`), printed after its name:

* ``paper``: printed in the paper itself (read there);
* ``secondary``: from a summary, a literature table or another paper's table, not read in the paper;
* ``derived``: computed by us from other numbers (e.g. "SDR is 0.2 above FTCN").

A row without a tag is an error: nothing is labelled the paper's by default. Single cells that
differ from their row's source (reconstructed, unverified, lost) carry a footnote. The modules
``fakescope.eval.paper_*`` define tables with :func:`register_table` into :data:`TABLES`; the package
``fakescope.eval`` imports each of them by name.

``fakescope eval CKPT --data 'ROOT/*' --table NAME`` writes ``table_NAME.md`` and ``.csv``.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakescope.errors import ConfigError
from fakescope.registry import Registry


SOURCE_TAGS: dict[str, str] = {
    "paper": "printed in the paper itself",
    "secondary": "from a summary or another paper's table, not read in the paper",
    "derived": "computed by us from other numbers",
}


@dataclass(frozen=True)
class PaperTable:
    name: str
    title: str
    columns: tuple[str, ...]
    metrics: tuple[str, ...] = ("acc", "ap")
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    reference: dict[str, dict[str, tuple[float | None, ...]]] = field(default_factory=dict)
    # the source tag of every reference row: method -> "paper" | "secondary" | "derived" (SOURCE_TAGS)
    row_sources: dict[str, str] = field(default_factory=dict)
    source: str = ""
    # (method, column) marks every metric of the cell; (method, column, metric) marks that metric only
    footnotes: dict[tuple[str, ...], str] = field(default_factory=dict)
    mean_label: str = "Mean"

    def column_of(self, set_name: str) -> str | None:
        """The column a test set (folder name) belongs to, matched case- and punctuation-insensitively."""
        key = _norm(set_name.split("/")[-1])
        for col in self.columns:
            if key in {_norm(a) for a in (col, *self.aliases.get(col, ()))}:
                return col
        return None


TABLES: Registry[PaperTable] = Registry("paper table", error=ConfigError)


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]", "", s.lower())


def check_row_sources(table: PaperTable) -> None:
    """Every reference row has a known source tag, and every tag belongs to a row."""
    for method in table.reference:
        tag = table.row_sources.get(method)
        if tag not in SOURCE_TAGS:
            raise ValueError(f"table {table.name}: reference row {method!r} needs a source tag "
                             f"({', '.join(SOURCE_TAGS)}), got {tag!r}")
    extra = sorted(set(table.row_sources) - set(table.reference))
    if extra:
        raise ValueError(f"table {table.name}: source tags for rows that do not exist: {', '.join(extra)}")


def register_table(table: PaperTable) -> PaperTable:
    check_row_sources(table)
    for method, row in table.reference.items():
        for col, vals in row.items():
            if col not in table.columns and col != table.mean_label:
                raise ValueError(f"table {table.name}: reference row {method!r} has unknown column {col!r}")
            if len(vals) != len(table.metrics):
                raise ValueError(f"table {table.name}: {method!r}/{col!r} needs {len(table.metrics)} values")
    return TABLES.add(table.name, table, description=table.title)


def list_tables() -> list[str]:
    return TABLES.names()


def get_table(name: str) -> PaperTable:
    return TABLES.get(name)


def build_rows(table: PaperTable, sets: dict[str, dict[str, Any]], ours: str) -> tuple[list[str], list[list[str]],
                                                                                      list[str]]:
    """Header, rows (reference rows, each named with its source tag, then ours) and notes. Our metrics are shown
    in percent."""
    check_row_sources(table)
    by_col: dict[str, dict[str, Any]] = {}
    for name, m in sets.items():
        col = table.column_of(name)
        if col is not None:
            by_col[col] = m
    header = ["method"] + [f"{c} {m.upper()}" for c in (*table.columns, table.mean_label) for m in table.metrics]
    notes: list[str] = []
    marks: dict[tuple[str, ...], str] = {}
    for i, (key, text) in enumerate(sorted(table.footnotes.items()), start=1):
        marks[key] = f"[{i}]"
        where = f"{key[0]}, {key[1]}" + (f" ({key[2].upper()})" if len(key) > 2 else "")
        notes.append(f"[{i}] {where}: {text}")
    rows = []
    for method, row in table.reference.items():
        cells = [f"{method} ({table.row_sources[method]})"]
        for col in (*table.columns, table.mean_label):
            vals = row.get(col, (None,) * len(table.metrics))
            for metric, v in zip(table.metrics, vals):
                mark = marks.get((method, col, metric), "") or marks.get((method, col), "")
                cells.append(("n/a" if v is None else _printed(v)) + mark)
        rows.append(cells)
    mine = [f"{ours} (ours)"]
    means: dict[str, list[float]] = {m: [] for m in table.metrics}
    for col in table.columns:
        m = by_col.get(col)
        for metric in table.metrics:
            v = None if m is None else m.get(metric)
            if v is not None:
                means[metric].append(100 * v)
            mine.append("n/a" if v is None else f"{100 * v:.1f}")
    for metric in table.metrics:
        vals = means[metric]
        mine.append(f"{sum(vals) / len(vals):.1f}" if len(vals) == len(table.columns) else "n/a")
    rows.append(mine)
    missing = [c for c in table.columns if c not in by_col]
    if missing:
        notes.append(f"not evaluated here (no test set matched): {', '.join(missing)}; our mean is n/a then")
    unmatched = [n for n in sets if table.column_of(n) is None]
    if unmatched:
        notes.append(f"test sets outside this table: {', '.join(unmatched)}")
    tags = list(dict.fromkeys(table.row_sources[m] for m in table.reference))
    if tags:
        notes.append("row tags: " + "; ".join(f"({t}) {SOURCE_TAGS[t]}" for t in tags) + "; (ours) measured here")
    if table.source:
        notes.append(f"reference rows: {table.source}")
    return header, rows, notes


def _printed(v: float) -> str:
    """A reference number as printed: its own decimals (99.58 stays 99.58), at least one (99.0)."""
    text = f"{v:.2f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def write_table(table: PaperTable, sets: dict[str, dict[str, Any]], out_dir: str | Path, ours: str) -> Path:
    from fakescope.eval.report import markdown_table

    header, rows, notes = build_rows(table, sets, ours)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = [f"# {table.title}", "", "Values in percent.", "", markdown_table(header, rows)]
    md += [f"- {n}" for n in notes]
    path = out / f"table_{table.name}.md"
    path.write_text("\n".join(md) + "\n")
    with open(out / f"table_{table.name}.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    _cite(out, tables=[table.name], architectures=[ours], datasets=list(sets))
    return path


def _cite(out: Path, **names) -> None:
    """CITATIONS.bib beside a table: fakescope, the table's paper and those it quotes, our model, the data; the
    works of tables written earlier into the same folder are kept."""
    from fakescope.zoo.citations import FILENAME, bibtex, citations_for, cited_keys

    keys = cited_keys(out / FILENAME) + citations_for(**names)
    (out / FILENAME).write_text("% Works that produced the numbers in this folder's tables (written by fakescope)."
                                "\n\n" + bibtex(dict.fromkeys(keys)), encoding="utf-8")
