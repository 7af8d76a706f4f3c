"""``fakescope fuse``: fit a fusion of detectors and signals on labelled data, judged generator by generator.

Members are scored once on every file (kept in ``member_scores.jsonl`` as they come: a stopped run continues
where it was), the signals read, then :mod:`fakescope.eval.stacking` fits the stacker on all the data and, as the
protocol that cannot be switched off, once per generator with that generator held out. The folder written is a
model: ``-m FOLDER`` in detect, eval and serve (:class:`~fakescope.inference.fusion.FusionDetector`). Beside
``fusion.json``: ``fuse_report.md``/``.json`` (the leave-one-generator-out table) and ``CITATIONS.bib``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from fakescope.data.datasets import load_samples
from fakescope.errors import ConfigError, DataError
from fakescope.eval.stacking import fit_stacker, leave_one_generator_out, logo_markdown
from fakescope.inference.fusion import FusionSpec, Member, Stacker, load_scorer, logit
from fakescope.inference.signals import SIGNALS, read_signals
from fakescope.zoo.citations import write_citations


def expand_sources(sources: Sequence[str]) -> list[str]:
    """Test sets: a path with a glob (``test/*``) gives one per match, in sorted order."""
    import glob

    return [m for p in sources for m in (sorted(glob.glob(p)) if any(c in p for c in "*?[") else [p])]


def labelled_files(sources: Sequence[str]) -> list[tuple[str, int, str]]:
    """``(path, label, generator)`` of every sample: the generator is a manifest's ``method`` or else the test set's
    folder name (a set per generator: ``ROOT/<generator>/0_real|1_fake``)."""
    out = []
    for src in expand_sources(sources):
        name = Path(src).stem if Path(src).suffix.lower() == ".csv" else Path(src).name
        out += [(s.path, int(s.label), s.method or name) for s in load_samples(src)]
    return out


def _member_name(spec: str, taken: set[str]) -> str:
    base = Path(spec[3:] if spec.startswith("py:") else spec).stem or spec
    name, i = base, 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    return name


def _score_member(name: str, det, files: list[str], cache: Path, echo: Callable[[str], None]) -> dict[str, Any]:
    """``path -> score or None`` of one member, from the cache where a stopped run left them."""
    done: dict[str, Any] = {}
    if cache.is_file():
        for line in cache.read_text().splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue  # a line cut by a stop
            if r.get("member") == name:
                done[r["path"]] = r.get("score")
    todo = [p for p in files if p not in done]
    if done:
        echo(f"  {name}: {len(done)} score(s) kept from a stopped run")
    with open(cache, "a", encoding="utf-8") as fh:
        for rec in det.run_items([(p, p, None) for p in todo]):
            score = rec.get("score") if rec.get("error") is None else None
            done[rec["path"]] = score
            fh.write(json.dumps({"member": name, "path": rec["path"], "score": score, "error": rec.get("error")})
                     + "\n")
            fh.flush()
    return done


def fuse(members: Sequence[str], sources: Sequence[str], out: str | Path, *, signals: Sequence[str] = SIGNALS,
         names: Sequence[str] | None = None, batch_size: int = 16, C: float = 1.0,
         echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Fit and save a fusion of ``members`` (``-m`` values) with ``signals`` on the labelled ``sources``."""
    if not members:
        raise ConfigError("fuse: give at least one member (-m)")
    if not sources:
        raise DataError("fuse: give the labelled data (--data), one test set per generator")
    unknown = sorted(set(signals) - set(SIGNALS))
    if unknown:
        raise ConfigError(f"fuse: unknown signal(s) {', '.join(unknown)} (known: {', '.join(SIGNALS)})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    samples = labelled_files(sources)
    files = [p for p, _, _ in samples]
    taken: set[str] = set()
    member_names = list(names) if names else []
    for spec in members[len(member_names):]:
        member_names.append(_member_name(str(spec), taken | set(member_names)))
    loaded = {}
    for name, spec in zip(member_names, members):
        loaded[name] = load_scorer(spec, batch_size=batch_size)
        echo(f"member {name}: {spec}")
    cache = out / "member_scores.jsonl"
    scores = {name: _score_member(name, det, files, cache, echo) for name, det in loaded.items()}
    echo(f"signals of {len(files)} file(s): {', '.join(signals)}")
    read = [read_signals(p) if signals else {"features": {}} for p in files]
    X = np.array([[np.nan if scores[m].get(p) is None else logit(scores[m][p]) for m in member_names]
                  + [np.nan if r["features"].get(s) is None else float(r["features"][s]) for s in signals]
                  for p, r in zip(files, read)], dtype=np.float64).reshape(len(files), -1)
    y = np.array([lab for _, lab, _ in samples])
    gens = [g for _, _, g in samples]
    if np.isnan(X[:, :len(member_names)]).all(axis=1).any():
        bad = [p for p, row in zip(files, X) if np.isnan(row[:len(member_names)]).all()]
        echo(f"warning: {len(bad)} file(s) no member could score (their member features take the mean): "
             + ", ".join(bad[:5]))
    table = leave_one_generator_out(X, y, gens, member_names, C=C)
    fitted = fit_stacker(X, y, C=C)
    features = member_names + list(signals)
    spec = FusionSpec(
        name=out.name or "fusion",
        members=[Member(name=n, spec=_portable(str(s))) for n, s in zip(member_names, members)],
        signals=list(signals),
        stacker=Stacker(features=features, coef=fitted.coef, intercept=fitted.intercept, impute=fitted.impute),
        fit={"data": list(sources), "n": len(files), "generators": sorted(set(gens)), "C": C,
             "protocol": table["protocol"], "logo_mean": table["mean"]})
    spec.save(out)
    report = {"members": dict(zip(member_names, map(str, members))), "signals": list(signals),
              "stacker": spec.stacker.model_dump(), "leave_one_generator_out": table, "n": len(files)}
    (out / "fuse_report.json").write_text(json.dumps(report, indent=1))
    md = [f"# Fusion {spec.name}", "", f"Members: {', '.join(f'{n} (`{s}`)' for n, s in zip(member_names, members))}; "
          f"signals: {', '.join(signals) or 'none'}. {len(files)} files, {len(set(gens))} generators.", "",
          "Leave one generator out: the stacker fitted on every other generator, scored on the one held out, "
          "beside each member alone (AUC).", "", logo_markdown(table, member_names), "",
          f"The fusion beats its best member on {table['fusion_beats_best_member']} of {len(table['rows'])} "
          "held-out generators.", "",
          "Stacker (fitted on all the data): " + ", ".join(f"{f} {c:+.3f}" for f, c in zip(features, fitted.coef))
          + f", intercept {fitted.intercept:+.3f}."]
    (out / "fuse_report.md").write_text("\n".join(md) + "\n")
    archs = [getattr(d, "name", "") for d in loaded.values()]
    write_citations(out, architectures=archs, pretrained=[str(s) for s in members], datasets=sorted(set(gens)))
    echo(f"fusion: {out} (fusion.json, fuse_report.md, CITATIONS.bib)")
    return report


def _portable(spec: str) -> str:
    """A member's spec as ``fusion.json`` keeps it: an existing path made absolute."""
    body = spec[3:] if spec.startswith("py:") else spec
    p = Path(body).expanduser()
    if p.exists():
        body = str(p.resolve())
    return ("py:" + body) if spec.startswith("py:") else body



def evaluate_scorer(spec: str, sources: Sequence[str], out: str | Path, *, threshold: float | None = None,
                    batch_size: int = 16, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """``fakescope eval`` for what scores files rather than tensors: ``py:`` user detectors, fusion folders and
    ``.onnx`` files, under the same protocol and report (seen and unseen generators apart where known)."""
    from fakescope.eval import report
    from fakescope.eval.evaluate import Scored
    from fakescope.metrics import compute_metrics, mean_metrics

    det = load_scorer(spec, batch_size=batch_size)
    thr = det.threshold if threshold is None else float(threshold)
    out = Path(out)
    per_set, scored, failed, gens = {}, [], {}, []
    for src in expand_sources(sources):
        name = Path(src).stem if Path(src).suffix.lower() == ".csv" else Path(src).name
        try:
            samples = load_samples(src)
        except DataError as exc:
            failed[name] = str(exc)
            echo(f"  failed: {name}: {exc}")
            continue
        recs = list(det.run_items([(s.path, s.path, None) for s in samples]))
        ok = [(s, r) for s, r in zip(samples, recs) if r.get("error") is None and r.get("score") is not None]
        skipped = [r["error"] or f"{r['path']}: no score" for r in recs if r.get("error") or r.get("score") is None]
        if not ok:
            failed[name] = f"none of its {len(samples)} samples could be scored ({'; '.join(skipped[:3])})"
            continue
        sc = Scored(name=name, path=str(src), scores=np.array([r["score"] for _, r in ok], dtype=np.float64),
                    labels=np.array([s.label for s, _ in ok]), video_ids=[s.video_id for s, _ in ok],
                    paths=[s.path for s, _ in ok], skipped=skipped)
        m = compute_metrics(sc.labels, sc.scores, sc.video_ids, thr)
        m["skipped"] = len(skipped)
        per_set[name], _ = m, scored.append(sc)
        gens += [s.method or name for s in samples]
        echo(f"  {name}: n={m['n']} auc={'n/a' if m['auc'] is None else format(m['auc'], '.4f')}")
    if not per_set:
        raise DataError("no test set could be scored: " + "; ".join(f"{n}: {e}" for n, e in failed.items()))
    seen = (getattr(det, "spec", None).fit.get("generators") if getattr(det, "spec", None) is not None else None)
    results = {"checkpoint": str(spec), "model": det.name, "fakescope_version": None, "threshold": thr,
               "sets": per_set, "mean": mean_metrics(per_set), "generalisation": report.seen_unseen(per_set, seen),
               "skipped": {sc.name: sc.skipped for sc in scored if sc.skipped}, "skipped_videos": {},
               "failed_sets": failed}
    report.write_report(results, scored, out)
    members = [m.spec for m in det.spec.members] if getattr(det, "spec", None) is not None else [str(spec)]
    write_citations(out, architectures=[det.name], pretrained=members, datasets=list(per_set))
    echo(f"report: {out / 'report.html'}")
    return results
