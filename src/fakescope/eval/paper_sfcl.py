"""SFCL-HCMF's result tables (Qiao, Tian, Wang, arXiv 2504.17223), beside the numbers reported for it.

* ``sfcl_ffpp``: intra-dataset FF++ c23 and c40: frame accuracy, frame AUC and video AUC.
* ``sfcl_cross``: trained on FF++ c23: frame accuracy, frame AUC and video AUC on FF++ c23,
  Celeb-DF v2 and DFDC.
* ``sfcl_xmanip``: the cross-manipulation grid of spec decision A13 (train on one FF++
  manipulation, AUC on all four); one row per trained model. The paper's protocol and
  numbers were not recovered, so the table has no reference row.

Two ways to fill them:

* ``fakescope eval CKPT --data ... --table sfcl_ffpp sfcl_cross`` writes ``table_<name>.md``/``.csv``
  for the test sets given there. Test sets match a column by name, case and punctuation
  ignored (``celebdf_v2`` is ``Celeb-DF v2``).
* From training runs, without scoring anything again (the run's ``eval/metrics.json``, whose
  test sets carry the names of the recipe configs)::

      python -m fakescope.eval.paper_sfcl tables runs/sfcl_hcmf_ffpp_c23 runs/sfcl_hcmf_ffpp_c40 --out tables
      python -m fakescope.eval.paper_sfcl xmanip runs/sfcl_hcmf_xmanip_* --out tables

  ``tables`` merges the runs' test sets (c23 from one run, c40 from another) into
  ``sfcl_ffpp`` and ``sfcl_cross``; ``xmanip`` lays four (or fewer) runs out as the 4x4 grid,
  one row per training manipulation.

**Every reference number here is secondary-source** (row tag ``secondary``). The paper's PDF was
not available; the four SFCL-HCMF numbers come from a literature table of another project and
agree with independent thesis notes (spec section 1.10). The EfficientNet-B4 row is
DeepfakeBench's (its README's harmonised frame AUC, as quoted in those notes), under
DeepfakeBench's protocol, not a number of the SFCL-HCMF paper. Each reference cell also
carries a footnote saying so; none of them was measured by fakescope. Accuracy on the
cross-dataset sets and every video AUC are ours only: the sources report none.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import Any, Sequence

from fakescope.eval.tables import PaperTable, get_table, register_table, write_table

PAPER = ("Qiao, Tian, Wang, Towards Generalizable Deepfake Detection with Spatial-Frequency Collaborative Learning "
         "and Hierarchical Cross-Modal Fusion, arXiv 2504.17223, 2025")
SECONDARY = "secondary source (a literature table and thesis notes quoting the paper; the paper's table was not read)"
SFCL_ROW = "SFCL-HCMF"
B4_ROW = "EfficientNet-B4 (DeepfakeBench)"

# Reported numbers (percent), spec section 1.10: frame accuracy / frame AUC. No video AUC is reported.
REPORTED = {
    "FF++ c23": {"acc": 97.43, "auc": 99.58},
    "FF++ c40": {"acc": 91.77, "auc": 94.21},
    "Celeb-DF v2": {"acc": None, "auc": 74.68},
    "DFDC": {"acc": None, "auc": 73.71},
}
METRICS = ("acc", "auc", "video_auc")

FFPP_ALIASES = {
    "FF++ c23": ("ffpp_c23", "ff++ c23", "ffpp-c23", "c23", "ffpp_c23_test"),
    "FF++ c40": ("ffpp_c40", "ff++ c40", "ffpp-c40", "c40", "ffpp_c40_test"),
}
CROSS_ALIASES = {
    "FF++ c23": FFPP_ALIASES["FF++ c23"],
    "Celeb-DF v2": ("celebdf_v2", "celeb-df-v2", "celebdfv2", "celeb_df_v2", "cdf", "cdfv2", "celebdf"),
    "DFDC": ("dfdc", "dfdc_test", "dfdc_public_test"),
}
MANIPULATIONS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
XMANIP_ALIASES = {
    "Deepfakes": ("df", "deepfake"),
    "Face2Face": ("f2f",),
    "FaceSwap": ("fs",),
    "NeuralTextures": ("nt", "neural_textures"),
}


def _cells(method: str, columns, metrics) -> tuple[dict, dict]:
    row, notes = {}, {}
    for col in columns:
        vals = tuple(REPORTED[col].get(m) for m in metrics)
        row[col] = vals
        if any(v is not None for v in vals):
            notes[(method, col)] = SECONDARY
    return row, notes


_ffpp_row, _ffpp_notes = _cells(SFCL_ROW, ("FF++ c23", "FF++ c40"), METRICS)
SFCL_FFPP = register_table(PaperTable(
    name="sfcl_ffpp",
    title="SFCL-HCMF, FF++ intra-dataset: frame accuracy, frame AUC and video AUC",
    columns=("FF++ c23", "FF++ c40"),
    metrics=METRICS,
    aliases=FFPP_ALIASES,
    reference={SFCL_ROW: _ffpp_row},
    row_sources={SFCL_ROW: "secondary"},
    source=f"{PAPER}; numbers from a {SECONDARY}. The paper's numbers are frame level; video AUC is ours only",
    footnotes=_ffpp_notes,
))

_cross_row, _cross_notes = _cells(SFCL_ROW, ("FF++ c23", "Celeb-DF v2", "DFDC"), ("auc",))
_cross_row = {col: (None, v[0], None) for col, v in _cross_row.items()}  # the cross-dataset column reports AUC only
_cross_notes[(B4_ROW, "Celeb-DF v2")] = ("DeepfakeBench's number (its README, as quoted in thesis notes), not the "
                                         "SFCL-HCMF paper's; DeepfakeBench's protocol, not SFCL-HCMF's")
SFCL_CROSS = register_table(PaperTable(
    name="sfcl_cross",
    title="SFCL-HCMF trained on FF++ c23: frame accuracy, frame AUC and video AUC, intra- and cross-dataset",
    columns=("FF++ c23", "Celeb-DF v2", "DFDC"),
    metrics=METRICS,
    aliases=CROSS_ALIASES,
    reference={SFCL_ROW: _cross_row, B4_ROW: {"Celeb-DF v2": (None, 74.87, None)}},
    row_sources={SFCL_ROW: "secondary", B4_ROW: "secondary"},
    source=f"{PAPER}; numbers from a {SECONDARY}. The paper's cross-dataset numbers are frame AUC; accuracy "
           "and video AUC are ours only",
    footnotes=_cross_notes,
))

SFCL_XMANIP = register_table(PaperTable(
    name="sfcl_xmanip",
    title="SFCL-HCMF cross-manipulation (decision A13): trained on one FF++ c23 manipulation, frame AUC on each",
    columns=MANIPULATIONS,
    metrics=("auc",),
    aliases=XMANIP_ALIASES,
    reference={},
    source=f"{PAPER}; the paper's cross-manipulation protocol and numbers were not recovered (no reference row)",
))


# ------------------------------------------------------------ tables from training runs
def run_metrics(run: str | Path) -> dict[str, Any]:
    """``eval/metrics.json`` of a training run folder (or the file itself, or an eval folder)."""
    p = Path(run)
    for cand in (p, p / "metrics.json", p / "eval" / "metrics.json"):
        if cand.is_file():
            return json.loads(cand.read_text())
    from fakescope.errors import DataError

    raise DataError(f"{run}: no eval/metrics.json (train with eval.after_training, or run fakescope eval first)")


def run_train_sets(run: str | Path) -> list[str]:
    """Names (or file stems) of the training sets in a run folder's ``config.yaml``; [] when there is none."""
    import yaml

    p = Path(run) / "config.yaml"
    if not p.is_file():
        return []
    cfg = yaml.safe_load(p.read_text()) or {}
    out = []
    for src in (cfg.get("data") or {}).get("train") or []:
        src = {"path": src} if isinstance(src, str) else src
        out += [n for n in (src.get("name"), Path(str(src.get("path", ""))).stem) if n]
    return out


def merged_sets(runs: Sequence[str | Path]) -> tuple[dict[str, dict[str, Any]], str]:
    """The test sets of several runs in one dict (a later run's set of the same name wins), and the model name."""
    sets: dict[str, dict[str, Any]] = {}
    models = []
    for run in runs:
        m = run_metrics(run)
        sets.update(m.get("sets", {}))
        models.append(m.get("model", "?"))
    return sets, "/".join(dict.fromkeys(models))


def write_run_tables(runs: Sequence[str | Path], out_dir: str | Path,
                     names: Sequence[str] = ("sfcl_ffpp", "sfcl_cross")) -> list[Path]:
    """``table_<name>.md``/``.csv`` for each table, from the merged test sets of ``runs``."""
    sets, model = merged_sets(runs)
    return [write_table(get_table(n), sets, out_dir, ours=model) for n in names]


def training_manipulation(run: str | Path) -> str | None:
    """The FF++ manipulation a cross-manipulation run was trained on, from its config's training set."""
    for name in run_train_sets(run):
        key = name.lower().removesuffix("_train")
        col = SFCL_XMANIP.column_of(key)
        if col is not None:
            return col
    return None


def xmanip_grid(runs: Sequence[str | Path], metric: str = "auc") -> tuple[list[str], list[list[str]], list[str]]:
    """Header, rows and notes of the A13 grid: one row per run (its training manipulation), one column per
    test manipulation, plus the mean over the three unseen ones; values in percent."""
    header = ["trained on \\ tested on", *MANIPULATIONS, "mean unseen"]
    rows, notes = [], []
    for run in runs:
        trained = training_manipulation(run)
        if trained is None:
            notes.append(f"{run}: training manipulation not recognised from its config.yaml; row named by folder")
        by_col = {}
        for name, m in run_metrics(run).get("sets", {}).items():
            col = SFCL_XMANIP.column_of(name)
            if col is not None:
                by_col[col] = m.get(metric)
        cells, unseen = [], []
        for col in MANIPULATIONS:
            v = by_col.get(col)
            cells.append("n/a" if v is None else f"{100 * v:.1f}" + (" *" if col == trained else ""))
            if col != trained:
                unseen.append(v)
        ok = trained is not None and all(v is not None for v in unseen)
        mean = sum(unseen) / len(unseen) if ok else math.nan
        rows.append([trained or Path(run).name, *cells, "n/a" if not ok else f"{100 * mean:.1f}"])
    notes.insert(0, f"{metric.upper()} in percent; * marks the manipulation the row was trained on (intra). "
                    "Protocol of spec decision A13 (train on one FF++ c23 manipulation, test on all four); "
                    "the paper's cross-manipulation protocol and numbers were not recovered, so there is no "
                    "reference row")
    return header, rows, notes


def write_xmanip_grid(runs: Sequence[str | Path], out_dir: str | Path, metric: str = "auc") -> Path:
    from fakescope.eval.report import markdown_table

    header, rows, notes = xmanip_grid(runs, metric)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "table_sfcl_xmanip_grid.md"
    path.write_text("\n".join([f"# {SFCL_XMANIP.title}", "", markdown_table(header, rows)] + [f"- {n}" for n in notes])
                    + "\n")
    with open(out / "table_sfcl_xmanip_grid.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fakescope.eval.paper_sfcl",
                                 description="SFCL-HCMF tables from training runs' eval/metrics.json")
    sub = ap.add_subparsers(dest="what", required=True)
    t = sub.add_parser("tables", help="sfcl_ffpp and sfcl_cross from the c23 (and c40) runs")
    t.add_argument("runs", nargs="+")
    t.add_argument("--out", required=True)
    x = sub.add_parser("xmanip", help="the 4x4 cross-manipulation grid from the xmanip_* runs")
    x.add_argument("runs", nargs="+")
    x.add_argument("--out", required=True)
    x.add_argument("--metric", default="auc", choices=["auc", "video_auc", "acc"])
    args = ap.parse_args(argv)
    from fakescope.errors import FakescopeError

    try:
        if args.what == "tables":
            paths = write_run_tables(args.runs, args.out)
        else:
            paths = [write_xmanip_grid(args.runs, args.out, args.metric)]
    except FakescopeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for p in paths:
        print(p.read_text())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
