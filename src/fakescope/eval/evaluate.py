"""``fakescope eval``: score one or more test sets with a checkpoint and write the report."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from fakescope.config import DataConfig, DataSource, RobustnessConfig
from fakescope.data.datasets import ClipDataset, build_dataset, load_samples
from fakescope.metrics import compute_metrics, mean_metrics
from fakescope.data.loaders import make_loader
from fakescope.data.manifest import read_face_stage
from fakescope.errors import DataError, FakescopeError
from fakescope.eval.robustness import Perturbation
from fakescope.utils.console import show_progress
from fakescope.utils.paths import safe_name


@dataclass
class Scored:
    """Scores of one test set."""

    name: str
    path: str
    scores: np.ndarray
    labels: np.ndarray
    video_ids: list[str | None]
    paths: list[str]
    skipped: list[str] = field(default_factory=list)
    padded: list[int] = field(default_factory=list)  # clip sets: repeated frames appended to each scored clip
    orig_sizes: list[tuple[int, int]] = field(default_factory=list)  # image sets: (w, h) of each scored file
    input_size: int = 0  # the model's input side: a file smaller than it was enlarged (upscaled)
    unscored_videos: list[str] = field(default_factory=list)  # videos none of whose samples could be read


def pick_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":  # fixed input sizes: cuDNN's fastest algorithms (FSSNet's SBCA runs 2x faster)
        torch.backends.cudnn.benchmark = True
    return device


@torch.inference_mode()
def score_dataset(model, dataset, *, batch_size: int = 64, num_workers: int = 2, progress: bool = False,
                  desc: str = "", sizes: list | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """P(fake) for every readable item: ``(scores, labels, item indices, skipped errors)``.

    ``sizes``, when given, receives the original ``(w, h)`` of every scored image, in the same order.
    """
    device = next(model.parameters()).device
    loader = make_loader(dataset, batch_size, num_workers)
    scores, labels, index, skipped = [], [], [], []
    it = loader
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(loader, desc=desc, leave=False)
    for batch in it:
        skipped.extend(err for _, err in batch["skipped"])
        if batch["image"] is None:
            continue
        scores.append(model.predict_proba(batch["image"].to(device)).float().cpu())
        labels.append(batch["label"])
        index.append(batch["index"])
        if sizes is not None and "orig_size" in batch:
            sizes.extend(tuple(int(v) for v in wh) for wh in batch["orig_size"].tolist())
    if not scores:
        return np.zeros(0), np.zeros(0, int), np.zeros(0, int), skipped
    return (torch.cat(scores).numpy().astype(np.float64), torch.cat(labels).numpy(), torch.cat(index).numpy(),
            skipped)


def _as_sources(sources: Sequence[DataSource | str], failed: dict[str, str] | None = None) -> list[DataSource]:
    """The test sets; with ``failed``, a source that cannot be resolved goes there (name -> error) instead of
    raising, so that the others are still evaluated."""
    data = DataConfig()
    out: list[DataSource] = []
    for s in sources:
        src = s if isinstance(s, DataSource) else DataSource.model_validate(s)
        try:
            out.extend(data.resolve(src))
        except FakescopeError as exc:
            if failed is None:
                raise
            failed[src.name or src.path] = str(exc)
    names = [s.name for s in out]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:  # disambiguate equal basenames by their parent folder
        out = [DataSource(path=s.path, split=s.split,
                          name=f"{Path(s.path).parent.name}/{s.name}" if s.name in dupes else s.name) for s in out]
    return out


def score_source(model, src: DataSource, *, batch_size: int, num_workers: int, perturb=None,
                 progress: bool = False) -> Scored:
    samples = load_samples(src.path, src.split)
    ds = build_dataset(samples, model.preprocess, model.modality, train=False, perturb=perturb, name=src.name or "")
    sizes: list[tuple[int, int]] = []
    s, y, idx, skipped = score_dataset(model, ds, batch_size=batch_size, num_workers=num_workers,
                                       progress=progress, desc=src.name or "", sizes=sizes)
    vids = ds.video_ids()
    paths = ds.paths()
    scored_vids = [vids[i] for i in idx]
    # a video with no usable clip (or frame) is named, not dropped silently from the video count
    seen = set(scored_vids)
    unscored = sorted({v for v in vids if v} - seen)
    padded = [ds.items[i].padded for i in idx] if isinstance(ds, ClipDataset) else []
    return Scored(src.name or src.path, src.path, s, y, scored_vids, [paths[i] for i in idx], skipped,
                  padded=padded, unscored_videos=unscored, orig_sizes=sizes, input_size=model.preprocess.input_size)


def evaluate(checkpoint: str | Path, sources: Sequence[DataSource | str], out_dir: str | Path, *,
             batch_size: int = 64, num_workers: int = 2, device: str | None = None, threshold: float = 0.5,
             robustness: RobustnessConfig | None = None, echo: Callable[[str], None] = print,
             progress: bool | str = "auto", weights_file: str | Path | None = None) -> dict[str, Any]:
    """Evaluate ``checkpoint`` (a folder, a pretrained name or a Hub id) on each source; writes
    metrics.json/.md/.csv, report.html and plots.

    A test set that cannot be read (a missing folder, an empty or malformed manifest, no readable sample) does
    not stop the others: it is named in ``failed_sets`` (and the report) with its error, and the metrics of
    every set that could be scored are written. Only when no set at all could be scored is it an error."""
    from fakescope.eval import report
    from fakescope.models.checkpoint import load, read_config
    from fakescope.models.pretrained import resolve_checkpoint

    checkpoint = resolve_checkpoint(checkpoint, weights_file=weights_file)
    model = load(checkpoint, device=str(pick_device(device)))
    progress = show_progress(progress)
    if not sources:
        raise ValueError("no test data given")
    failed: dict[str, str] = {}
    srcs = _as_sources(sources, failed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scored: list[Scored] = []
    per_set: dict[str, dict] = {}
    for src in srcs:
        stage = read_face_stage(src.path)
        if stage.declared and stage.face != model.preprocess.face:
            echo(f"  warning: {src.name}: its samples were made with {stage.describe()}, but the model was trained "
                 f"on {'face stage ' + model.preprocess.face.describe() if model.preprocess.face else 'whole images'}"
                 "; the scores show how it does on data cropped otherwise")
        try:
            sc = score_source(model, src, batch_size=batch_size, num_workers=num_workers, progress=progress)
            if not len(sc.scores):
                shown = "; ".join(sc.skipped[:3])
                raise DataError(f"{src.path}: none of its {len(sc.skipped)} samples could be read ({shown})")
        except (FakescopeError, OSError) as exc:
            failed[src.name or src.path] = str(exc)
            echo(f"  failed: {src.name}: {exc}")
            continue
        m = compute_metrics(sc.labels, sc.scores, sc.video_ids, threshold)
        m["skipped"] = len(sc.skipped)
        if sc.orig_sizes:  # files smaller than the input, enlarged to fit it (their count; each in scores/)
            m["upscaled"] = sum(1 for w, h in sc.orig_sizes if min(w, h) < sc.input_size)
        _video_counts(m, sc)
        per_set[sc.name] = m
        scored.append(sc)
        _write_scores(out / "scores" / f"{safe_name(sc.name)}.csv", sc)
        auc = "n/a" if m["auc"] is None else f"{m['auc']:.4f}"
        acc = "n/a" if m["acc"] is None else f"{m['acc']:.4f}"
        echo(f"  {sc.name}: n={m['n']} auc={auc} acc={acc}" + (f" ({len(sc.skipped)} skipped)" if sc.skipped else ""))
        if sc.unscored_videos:
            shown = ", ".join(sc.unscored_videos[:10]) + (" ..." if len(sc.unscored_videos) > 10 else "")
            echo(f"  warning: {sc.name}: {len(sc.unscored_videos)} of {m['n_videos']} videos have no usable clip "
                 f"and no score (video_auc covers the other {m['videos_scored']}): {shown}")
    if not scored:
        raise DataError("no test set could be scored: " + "; ".join(f"{n}: {e}" for n, e in failed.items()))
    srcs = [s for s in srcs if (s.name or s.path) not in failed]
    cfg = read_config(checkpoint)
    results: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "model": cfg["model"]["name"],
        "fakescope_version": cfg.get("fakescope_version"),
        "threshold": threshold,
        "sets": per_set,
        "mean": mean_metrics(per_set),
        "skipped": {sc.name: sc.skipped for sc in scored if sc.skipped},
        "skipped_videos": {sc.name: sc.unscored_videos for sc in scored if sc.unscored_videos},
        "failed_sets": failed,
    }
    if robustness is not None:
        results["robustness"] = _sweep(model, srcs, per_set, robustness, threshold, batch_size, num_workers, echo)
    report.write_report(results, scored, out)
    echo(f"report: {out / 'report.html'}")
    if failed:
        echo(f"warning: {len(failed)} test set(s) could not be scored (listed in metrics.json, failed_sets): "
             + ", ".join(failed))
    return results


def _sweep(model, srcs: list[DataSource], clean: dict[str, dict], levels: RobustnessConfig, threshold: float,
           batch_size: int, num_workers: int, echo: Callable[[str], None]) -> dict[str, Any]:
    sweep: dict[str, Any] = {}
    for kind, values in levels.model_dump().items():
        rows: list[dict[str, Any]] = [{"level": None, "sets": {n: _brief(m) for n, m in clean.items()}}]
        for level in values:
            p = Perturbation(kind, float(level))
            sets = {}
            for src in srcs:
                sc = score_source(model, src, batch_size=batch_size, num_workers=num_workers, perturb=p)
                sets[sc.name] = _brief(compute_metrics(sc.labels, sc.scores, sc.video_ids, threshold))
            rows.append({"level": float(level), "sets": sets})
            mean_auc = _mean([s["auc"] for s in sets.values()])
            echo(f"  robustness {p.label}: mean auc={'n/a' if mean_auc is None else f'{mean_auc:.4f}'}")
        sweep[kind] = rows
    return sweep


def _brief(m: dict) -> dict:
    return {k: m.get(k) for k in ("auc", "ap", "acc", "video_auc") if k in m}


def _mean(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals and len(vals) == len(values) else None


def _video_counts(m: dict[str, Any], sc: Scored) -> None:
    """Video counts of a set: ``n_videos`` counts every video, scored or not; clips padded to full length."""
    if "n_videos" not in m and not sc.unscored_videos:
        return
    scored = int(m.get("n_videos", 0))
    m["videos_scored"] = scored
    m["videos_skipped"] = len(sc.unscored_videos)
    m["n_videos"] = scored + len(sc.unscored_videos)
    if sc.padded:
        m["padded_clips"] = sum(1 for p in sc.padded if p > 0)


def _write_scores(path: Path, sc: Scored) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8", errors="surrogateescape") as fh:  # file names as on disk
        w = csv.writer(fh)
        # clip sets: 'path' is a clip's first frame and 'padded' the repeated frames appended to it
        # image sets: the file's width and height, and whether it was enlarged to the model's input
        w.writerow(["path", "label", "score", "video_id"] + (["padded"] if sc.padded else [])
                   + (["width", "height", "upscaled"] if sc.orig_sizes else []))
        for i, (p, y, s, v) in enumerate(zip(sc.paths, sc.labels, sc.scores, sc.video_ids)):
            extra = [sc.padded[i]] if sc.padded else []
            if sc.orig_sizes:
                ow, oh = sc.orig_sizes[i]
                extra += [ow, oh, int(min(ow, oh) < sc.input_size)]
            w.writerow([p, int(y), f"{s:.6f}", v or ""] + extra)


def load_results(out_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(out_dir) / "metrics.json").read_text())
