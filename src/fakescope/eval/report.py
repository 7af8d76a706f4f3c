"""Evaluation reports: metrics.json, a Markdown and a CSV table, plots (PNG) and an HTML page."""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fakescope.utils.paths import safe_name

COLUMNS = [("n", "n"), ("auc", "AUC"), ("ap", "AP"), ("acc", "Acc"), ("eer", "EER"), ("real_acc", "Real acc"),
           ("fake_acc", "Fake acc"), ("tpr_at_fpr1", "TPR@1%FPR"), ("tpr_at_fpr5", "TPR@5%FPR"), ("ece", "ECE"),
           ("video_auc", "Video AUC"), ("skipped", "Skipped")]


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def metrics_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows (one per test set, then the mean) of the main table."""
    sets = results["sets"]
    cols = [(k, t) for k, t in COLUMNS if any(k in m for m in sets.values())]
    header = ["test set"] + [t for _, t in cols]
    rows = [[name] + [_fmt(m.get(k)) for k, _ in cols] for name, m in sets.items()]
    mean = results.get("mean") or {}
    rows.append(["**mean**"] + [_fmt(mean.get(k)) if k not in ("skipped",) else "" for k, _ in cols])
    split = results.get("generalisation") or {}
    for part in ("seen", "unseen"):
        if split.get(part):
            m = split[f"mean_{part}"]
            rows.append([f"**mean, {part} generators**"] + [_fmt(m.get(k)) if k not in ("skipped",) else ""
                                                            for k, _ in cols])
    return header, rows


def seen_unseen(sets: dict[str, dict[str, Any]], seen: list[str] | None) -> dict[str, Any]:
    """The test sets split by whether training saw their generator (a set's name matched to the generators the
    checkpoint names, case and punctuation aside), with the mean of each part. ``seen`` None: not known."""
    from fakescope.metrics import mean_metrics

    if seen is None:
        return {"known": False, "note": "the checkpoint does not say which generators training saw"}
    norm = {"".join(c for c in g.lower() if c.isalnum()) for g in seen}
    part = {n: "seen" if "".join(c for c in n.split("/")[-1].lower() if c.isalnum()) in norm else "unseen"
            for n in sets}
    out: dict[str, Any] = {"known": True, "generators_seen": list(seen)}
    for p in ("seen", "unseen"):
        names = [n for n in sets if part[n] == p]
        out[p] = names
        out[f"mean_{p}"] = mean_metrics({n: sets[n] for n in names}) if names else None
    return out


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def robustness_table(kind: str, rows: list[dict[str, Any]], metric: str = "auc") -> tuple[list[str], list[list[str]]]:
    names = list(rows[0]["sets"])
    header = [kind] + names + ["mean"]
    out = []
    for r in rows:
        vals = [r["sets"][n].get(metric) for n in names]
        mean = float(np.mean(vals)) if all(v is not None for v in vals) else None
        out.append(["clean" if r["level"] is None else f"{r['level']:g}"] + [_fmt(v) for v in vals] + [_fmt(mean)])
    return header, out


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_roc(scored: Sequence, path: Path) -> None:
    from sklearn.metrics import auc as area_under
    from sklearn.metrics import roc_curve

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 5))
    for sc in scored:
        if np.unique(sc.labels).size == 2:
            fpr, tpr, _ = roc_curve(sc.labels, sc.scores)
            auc = float(area_under(fpr, tpr))
            # markers at the curve's corners, and axes with a margin: a perfect curve runs along the left and top
            # edges, where it would be hidden under the frame
            ax.plot(fpr, tpr, lw=1.5, marker="o", markersize=3, markevery=max(len(fpr) // 20, 1),
                    label=f"{sc.name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate (real called fake)", ylabel="true positive rate (fake caught)",
           title="ROC", xlim=(-0.02, 1.0), ylim=(0.0, 1.02))
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_histogram(sc, path: Path, threshold: float) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3))
    bins = np.linspace(0, 1, 41)
    for label, name, colour in ((0, "real", "tab:blue"), (1, "fake", "tab:red")):
        s = sc.scores[sc.labels == label]
        if s.size:
            ax.hist(s, bins=bins, alpha=0.6, color=colour, label=f"{name} (n={s.size})")
    ax.axvline(threshold, color="k", ls="--", lw=0.8)
    ax.set(xlabel="score = P(fake)", ylabel="count", title=sc.name)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_reliability(scored: Sequence, path: Path, bins: int = 15) -> None:
    """Reliability diagram: per bin of predicted P(fake), the fraction that is fake; the diagonal is perfect."""
    from fakescope.metrics.calibration import expected_calibration_error, reliability

    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="#999", lw=1, ls="--", label="perfectly calibrated")
    for sc in scored:
        conf, frac, count = reliability(sc.labels, sc.scores, bins)
        keep = count > 0
        ece = expected_calibration_error(sc.labels, sc.scores, bins)
        ax.plot(conf[keep], frac[keep], marker="o", ms=3, lw=1.2, label=f"{sc.name} (ECE {ece:.3f})")
    ax.set(xlabel="predicted P(fake)", ylabel="fraction fake", title="reliability", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_spectra(scored: Sequence, path: Path) -> bool:
    """The average log-magnitude spectrum of each test set's real and fake images (up to 256 each, centre crops of
    at most 128 px): a generator's periodic fingerprint shows as peaks. ``False`` when no set has images that large."""
    from fakescope.media.spectrum import mean_log_spectrum

    rows = []
    for sc in scored:
        paths = np.asarray(sc.paths, dtype=object)
        pair = [mean_log_spectrum(list(paths[sc.labels == k])) for k in (0, 1)]
        if any(p is not None for p in pair):
            rows.append((sc.name, pair))
    if not rows:
        return False
    plt = _plt()
    fig, axes = plt.subplots(len(rows), 2, figsize=(4.4, 2.2 * len(rows)), squeeze=False)
    for (name, pair), row in zip(rows, axes):
        for spec, ax, kind in zip(pair, row, ("real", "fake")):
            if spec is not None:
                ax.imshow(spec, cmap="magma")
            ax.set_title(f"{name}: {kind}", fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_robustness(kind: str, rows: list[dict[str, Any]], path: Path, metric: str = "auc") -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    names = list(rows[0]["sets"])
    levels = [r["level"] for r in rows[1:]]
    for n in names:
        ys = [rows[0]["sets"][n].get(metric)] + [r["sets"][n].get(metric) for r in rows[1:]]
        xs = list(range(len(ys)))
        ax.plot(xs, [np.nan if y is None else y for y in ys], marker="o", lw=1.2, label=n)
    ax.set_xticks(range(len(levels) + 1), ["clean"] + [f"{lv:g}" for lv in levels])
    ax.set(xlabel=kind, ylabel=metric.upper(), title=f"robustness: {kind}", ylim=(0, 1.02))
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8", errors="surrogateescape") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows([[c.replace("**", "") for c in r] for r in rows])


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c.replace('**', ''))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_report(results: dict[str, Any], scored: Sequence, out: Path) -> None:
    from fakescope.eval.robustness import KINDS

    out.mkdir(parents=True, exist_ok=True)
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(results, indent=2))
    header, rows = metrics_table(results)
    md = [f"# Evaluation of `{results['model']}`", "", f"Checkpoint: `{results['checkpoint']}`; "
          f"threshold {results['threshold']}.", "", markdown_table(header, rows)]
    split = results.get("generalisation") or {}
    if split.get("known"):
        md += ["", f"Generators training saw: {', '.join(split['generators_seen']) or 'none named'}; seen test sets: "
               f"{', '.join(split['seen']) or 'none'}; unseen: {', '.join(split['unseen']) or 'none'}. Figures on "
               "seen generators overstate what a detector does on unseen ones: read the unseen mean."]
    elif split:
        md += ["", f"Seen and unseen generators: not known ({split.get('note')})."]
    _write_csv(out / "metrics.csv", header, rows)

    plot_roc(scored, plots / "roc.png")
    plot_reliability(scored, plots / "reliability.png")
    spectra = plot_spectra(scored, plots / "spectra.png")
    hist_files = []
    for sc in scored:
        f = plots / f"hist_{safe_name(sc.name)}.png"
        plot_histogram(sc, f, results["threshold"])
        hist_files.append((sc.name, f.name))

    rob_html = []
    if results.get("robustness"):
        rob_dir = out / "robustness"
        rob_dir.mkdir(exist_ok=True)
        md += ["## Robustness (AUC)", ""]
        for kind, rrows in results["robustness"].items():
            h, r = robustness_table(kind, rrows)
            _write_csv(rob_dir / f"{kind}.csv", h, r)
            (rob_dir / f"{kind}.md").write_text(markdown_table(h, r))
            plot_robustness(kind, rrows, plots / f"robustness_{kind}.png")
            md += [f"### {KINDS.get(kind, kind)}", "", markdown_table(h, r)]
            rob_html.append(f"<h3>{html.escape(KINDS.get(kind, kind))}</h3>{_html_table(h, r)}"
                            f'<img src="plots/robustness_{kind}.png" alt="robustness {kind}">')
    failed = results.get("failed_sets") or {}
    if failed:
        md += ["## Test sets that could not be scored", ""] + [f"- `{n}`: {e}" for n, e in failed.items()]
    # human-readable files: a file name that is not valid UTF-8 shows as \xNN escapes
    (out / "metrics.md").write_text("\n".join(md), encoding="utf-8", errors="backslashreplace")

    skipped = results.get("skipped") or {}
    skipped_html = ""
    if skipped:
        items = "".join(f"<li>{html.escape(e)}</li>" for errs in skipped.values() for e in errs[:50])
        skipped_html = f"<h2>Skipped samples</h2><ul>{items}</ul>"
    if failed:
        items = "".join(f"<li><code>{html.escape(n)}</code>: {html.escape(e)}</li>" for n, e in failed.items())
        skipped_html = f"<h2>Test sets that could not be scored</h2><ul>{items}</ul>" + skipped_html
    hist_html = "".join(f'<figure><img src="plots/{html.escape(f)}" alt="scores {html.escape(n)}"></figure>'
                        for n, f in hist_files)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>fakescope evaluation: {html.escape(results['model'])}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}tbody tr:last-child{{font-weight:bold}}
figure{{display:inline-block;margin:4px}}img{{max-width:100%}}</style></head>
<body><h1>Evaluation of <code>{html.escape(results['model'])}</code></h1>
<p>Checkpoint <code>{html.escape(results['checkpoint'])}</code>, fakescope {html.escape(str(results.get('fakescope_version')))},
threshold {results['threshold']}. Scores are P(fake); label 1 = fake.</p>
<h2>Metrics</h2>{_html_table(header, rows)}
<h2>ROC curves</h2><img src="plots/roc.png" alt="ROC curves">
<h2>Calibration</h2><p>Per bin of predicted P(fake), the fraction of samples that are fake (ECE: expected
calibration error, 15 bins).</p><img src="plots/reliability.png" alt="reliability diagram">
<h2>Score histograms</h2>{hist_html}
{'<h2>Average spectra</h2><p>Log-magnitude Fourier spectrum averaged over each set&#39;s real and fake images '
 '(centre crops of at most 128 px): periodic generator fingerprints show as peaks.</p>'
 '<img src="plots/spectra.png" alt="average spectra">' if spectra else ''}
{"<h2>Robustness</h2>" + "".join(rob_html) if rob_html else ""}
{skipped_html}
</body></html>
"""
    (out / "report.html").write_text(page, encoding="utf-8", errors="backslashreplace")
