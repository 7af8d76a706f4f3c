"""``fakescope eval``: score one or more test sets with a checkpoint and write the report."""

from __future__ import annotations

import csv
import glob
import io
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Subset

from fakescope.config import DataConfig, DataSource, RobustnessConfig
from fakescope.data.datasets import ClipDataset, build_dataset, load_samples
from fakescope.metrics import compute_metrics, mean_metrics
from fakescope.data.loaders import make_loader
from fakescope.data.manifest import read_face_stage
from fakescope.errors import DataError, FakescopeError
from fakescope.eval.robustness import Perturbation
from fakescope.utils.console import show_progress
from fakescope.utils.distributed import Ranks
from fakescope.utils.paths import safe_name
from fakescope.utils.cells import csv_cell, utf8_text
from fakescope.zoo.citations import write_citations


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
    orig_sizes: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))  # image sets: [n, 2] (w, h)
    input_size: int = 0  # the model's input side: a file smaller than it was enlarged (upscaled)
    unscored_videos: list[str] = field(default_factory=list)  # videos none of whose samples could be read


def pick_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":  # fixed input sizes: cuDNN's fastest algorithms (FSSNet's SBCA runs 2x faster)
        torch.backends.cudnn.benchmark = True
    return device


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


_ROW = ("index", "score", "label", "width", "height", "error")


def _rows(path: Path) -> Iterator[list[str]]:
    """The whole rows of a partial scores file (a torn last line, from a run killed while writing it, is not)."""
    with open(path, "rb") as fh:
        next(fh, None)  # the header
        for line in fh:
            if not line.endswith(b"\n"):
                return
            row = next(csv.reader([line.decode("utf-8")]), [])
            if len(row) == len(_ROW):
                yield row


def _merge_rows(files: list[Path], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Every sample's row from ``files``, in sample order, as arrays (a few bytes a sample, however many):
    ``(indices, scores, labels, sizes [k, 2] or empty, errors of the unreadable samples)``."""
    score = np.full(n, np.nan)
    label = np.zeros(n, np.int64)
    size = np.full((n, 2), -1, np.int64)
    state = np.zeros(n, np.int8)  # 0 not scored, 1 scored, 2 unreadable
    errors: dict[int, str] = {}
    for f in files:
        for r in _rows(f):
            i = int(r[0])
            if state[i]:
                continue  # a sample scored twice (runs with different numbers of processes) counts once
            if r[5]:
                state[i], errors[i] = 2, r[5]
                continue
            state[i], score[i], label[i] = 1, float(r[1]), int(r[2])
            if r[3]:
                size[i] = (int(r[3]), int(r[4]))
    idx = np.flatnonzero(state == 1)
    sizes = size[idx] if len(idx) and (size[idx] >= 0).all() else np.zeros((0, 2), np.int64)
    return idx, score[idx], label[idx], sizes, [errors[i] for i in sorted(errors)]


def score_source(model, src: DataSource, *, batch_size: int, num_workers: int, perturb=None,
                 progress: bool = False, ranks: Ranks | None = None, partial: Path | None = None) -> Scored | None:
    """Scores of one test set; ``None`` on the processes other than 0 of a multi-process run.

    Scores are written to ``partial`` (a folder) batch by batch as they come, one file per process: a run killed
    part-way is continued by the next run with the same folder, which scores only the samples not in it. Process
    ``r`` of ``W`` scores blocks ``r, r + W, ...`` of ``batch_size`` samples (whole batches, as one process would
    batch them); process 0 merges the files in sample order, so the scores and metrics are those of one process.
    Without ``partial`` the files go to a temporary folder.
    """
    ranks = ranks or Ranks()
    samples = load_samples(src.path, src.split)
    ds = build_dataset(samples, model.preprocess, model.modality, train=False, perturb=perturb, name=src.name or "")
    key = safe_name(src.name or src.path) + (f"@{safe_name(perturb.label)}" if perturb is not None else "")
    temporary = partial is None
    if temporary:
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="fakescope-eval-")) if ranks.main else None
        folder = Path(ranks.gather_object(str(folder) if folder else None)[0])
    else:
        folder = Path(partial)
        folder.mkdir(parents=True, exist_ok=True)
    mine = folder / f"{key}.w{ranks.world}-r{ranks.rank}.csv"
    def files() -> list[Path]:
        return sorted(folder.glob(f"{glob.escape(key)}.w*-r*.csv"))

    done = np.zeros(len(ds), bool)
    for f in files():
        for r in _rows(f):
            done[int(r[0])] = True
    todo = np.flatnonzero(~done)
    todo = todo[ranks.owns(todo, batch_size)]
    _score_rows(model, ds, todo, mine, batch_size=batch_size, num_workers=num_workers, progress=progress,
                desc=src.name or "")
    ranks.barrier()  # every process's scores are on disk
    if not ranks.main:
        return None
    idx, scores, labels, sizes, skipped = _merge_rows(files(), len(ds))
    if temporary:
        shutil.rmtree(folder, ignore_errors=True)
    vids = ds.video_ids()
    paths = ds.paths()
    scored_vids = [vids[i] for i in idx]
    # a video with no usable clip (or frame) is named, not dropped silently from the video count
    seen = set(scored_vids)
    unscored = sorted({v for v in vids if v} - seen)
    padded = [ds.items[i].padded for i in idx] if isinstance(ds, ClipDataset) else []
    return Scored(src.name or src.path, src.path, scores, labels, scored_vids, [paths[i] for i in idx], skipped,
                  padded=padded, unscored_videos=unscored, orig_sizes=sizes,
                  input_size=model.preprocess.input_size)


@torch.inference_mode()
def _score_rows(model, ds, todo: np.ndarray, path: Path, *, batch_size: int, num_workers: int, progress: bool,
                desc: str) -> None:
    """Score samples ``todo`` of ``ds``, appending a row per sample to ``path`` after every batch."""
    device = next(model.parameters()).device
    fresh = not path.exists() or path.stat().st_size == 0
    with open(path, "r+b" if not fresh else "wb") as raw:
        if not fresh:  # cut a torn last row
            data = raw.read()
            raw.truncate(data.rfind(b"\n") + 1)
            raw.seek(0, 2)
        fh = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        w = csv.writer(fh)
        if fresh:
            w.writerow(_ROW)
        if not len(todo):
            fh.flush()
            return
        loader = make_loader(Subset(ds, todo), batch_size, num_workers)
        it = loader
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(loader, desc=desc, leave=False)
        for batch in it:
            for i, err in batch["skipped"]:
                w.writerow([int(i), "", "", "", "", utf8_text(" ".join(str(err).split()))])  # one line a row
            if batch["image"] is not None:
                scores = model.predict_proba(batch["image"].to(device, non_blocking=True)).float().cpu().tolist()
                sizes = batch["orig_size"].tolist() if "orig_size" in batch else [["", ""]] * len(scores)
                for i, y, sc, (wd, ht) in zip(batch["index"].tolist(), batch["label"].tolist(), scores, sizes):
                    w.writerow([i, repr(float(sc)), y, wd, ht, ""])
            fh.flush()  # this batch's scores survive a kill


def evaluate(checkpoint: str | Path, sources: Sequence[DataSource | str], out_dir: str | Path, *,
             batch_size: int = 64, num_workers: int = 2, device: str | None = None, threshold: float = 0.5,
             robustness: RobustnessConfig | None = None, echo: Callable[[str], None] = print,
             progress: bool | str = "auto", weights_file: str | Path | None = None, ranks: Ranks | None = None,
             overwrite: bool = False) -> dict[str, Any]:
    """Evaluate ``checkpoint`` (a folder, a pretrained name or a Hub id) on each source; writes
    metrics.json/.md/.csv, report.html and plots.

    A test set that cannot be read (a missing folder, an empty or malformed manifest, no readable sample) does
    not stop the others: it is named in ``failed_sets`` (and the report) with its error, and the metrics of
    every set that could be scored are written. Only when no set at all could be scored is it an error.

    Scores are written as they come to ``out_dir/scores/.partial`` (:func:`score_source`): evaluating again
    into the same folder with the same checkpoint continues a run that was stopped (``overwrite``: starts
    again); the folder is removed once the report is written. ``ranks`` (:func:`fakescope.utils.distributed
    .launch`): the processes share the samples out; process 0 writes the report and returns the results, the
    others return ``{}``."""
    from fakescope.eval import report
    from fakescope.zoo.checkpoint import load, read_config
    from fakescope.zoo.pretrained import resolve_checkpoint

    ranks = ranks or Ranks()
    if not ranks.main:
        echo = lambda msg: None  # noqa: E731  (only process 0 speaks)
    checkpoint = resolve_checkpoint(checkpoint, weights_file=weights_file)
    model = load(checkpoint, device=str(pick_device(device)))
    progress = show_progress(progress) and ranks.main
    if not sources:
        raise ValueError("no test data given")
    failed: dict[str, str] = {}
    srcs = _as_sources(sources, failed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    partial = out / "scores" / ".partial"
    if ranks.main:
        _check_partial(partial, checkpoint, overwrite, echo)
    ranks.barrier()
    scored: list[Scored] = []
    per_set: dict[str, dict] = {}
    for src in srcs:
        stage = read_face_stage(src.path)
        if stage.declared and stage.face != model.preprocess.face:
            echo(f"  warning: {src.name}: its samples were made with {stage.describe()}, but the model was trained "
                 f"on {'face stage ' + model.preprocess.face.describe() if model.preprocess.face else 'whole images'}"
                 "; the scores show how it does on data cropped otherwise")
        try:
            sc = score_source(model, src, batch_size=batch_size, num_workers=num_workers, progress=progress,
                              ranks=ranks, partial=partial)
            if sc is None:  # another process merges and reports
                continue
            if not len(sc.scores):
                shown = "; ".join(sc.skipped[:3])
                raise DataError(f"{src.path}: none of its {len(sc.skipped)} samples could be read ({shown})")
        except (FakescopeError, OSError) as exc:
            failed[src.name or src.path] = str(exc)
            echo(f"  failed: {src.name}: {exc}")
            continue
        m = compute_metrics(sc.labels, sc.scores, sc.video_ids, threshold)
        m["skipped"] = len(sc.skipped)
        if len(sc.orig_sizes):  # files smaller than the input, enlarged to fit it (their count; each in scores/)
            m["upscaled"] = int((sc.orig_sizes.min(axis=1) < sc.input_size).sum())
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
    failed = ranks.gather_object(failed)[0]  # process 0 knows which sets had no readable sample
    srcs = [s for s in srcs if (s.name or s.path) not in failed]
    if not srcs:
        raise DataError("no test set could be scored: " + "; ".join(f"{n}: {e}" for n, e in failed.items()))
    if not ranks.main:
        if robustness is not None:
            _sweep(model, srcs, {}, robustness, threshold, batch_size, num_workers, echo, ranks, partial)
        ranks.barrier()
        return {}
    cfg = read_config(checkpoint)
    results: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "model": cfg["model"]["name"],
        "fakescope_version": cfg.get("fakescope_version"),
        "threshold": threshold,
        "sets": per_set,
        "mean": mean_metrics(per_set),
        "generalisation": report.seen_unseen(per_set, (cfg.get("training") or {}).get("generators_seen") or None),
        "skipped": {sc.name: sc.skipped for sc in scored if sc.skipped},
        "skipped_videos": {sc.name: sc.unscored_videos for sc in scored if sc.unscored_videos},
        "failed_sets": failed,
    }
    if robustness is not None:
        results["robustness"] = _sweep(model, srcs, per_set, robustness, threshold, batch_size, num_workers, echo,
                                       ranks, partial)
    report.write_report(results, scored, out)
    released = [(cfg.get("pretrained") or {}).get("name")] if cfg.get("pretrained") else []
    write_citations(out, architectures=[results["model"]], pretrained=released, datasets=list(per_set))
    shutil.rmtree(partial, ignore_errors=True)  # the report holds every score now
    ranks.barrier()
    echo(f"report: {out / 'report.html'}")
    if failed:
        echo(f"warning: {len(failed)} test set(s) could not be scored (listed in metrics.json, failed_sets): "
             + ", ".join(failed))
    return results


def _sweep(model, srcs: list[DataSource], clean: dict[str, dict], levels: RobustnessConfig, threshold: float,
           batch_size: int, num_workers: int, echo: Callable[[str], None], ranks: Ranks, partial: Path
           ) -> dict[str, Any]:
    sweep: dict[str, Any] = {}
    for kind, values in levels.model_dump().items():
        rows: list[dict[str, Any]] = [{"level": None, "sets": {n: _brief(m) for n, m in clean.items()}}]
        for level in values:
            p = Perturbation(kind, float(level))
            sets = {}
            for src in srcs:
                sc = score_source(model, src, batch_size=batch_size, num_workers=num_workers, perturb=p,
                                  ranks=ranks, partial=partial)
                if sc is None:
                    continue
                sets[sc.name] = _brief(compute_metrics(sc.labels, sc.scores, sc.video_ids, threshold))
            rows.append({"level": float(level), "sets": sets})
            mean_auc = _mean([s["auc"] for s in sets.values()])
            echo(f"  robustness {p.label}: mean auc={'n/a' if mean_auc is None else f'{mean_auc:.4f}'}")
        sweep[kind] = rows
    return sweep


def _check_partial(partial: Path, checkpoint: str | Path, overwrite: bool, echo: Callable[[str], None]) -> None:
    """Keep the scores of a stopped run of this checkpoint (``partial/run.json`` names it); drop any other."""
    from fakescope.zoo.checkpoint import read_config

    cfg = read_config(checkpoint)
    weights = Path(checkpoint) / "model.safetensors"
    stamp = {"checkpoint": str(checkpoint), "config": cfg,
             "weights": [weights.stat().st_size, weights.stat().st_mtime_ns] if weights.exists() else None}
    stamp = json.loads(json.dumps(stamp, default=str))
    marker = partial / "run.json"
    if partial.exists():
        old = json.loads(marker.read_text()) if marker.exists() else None
        if overwrite or old != stamp:
            shutil.rmtree(partial)
            if not overwrite:
                echo(f"  {partial}: scores of another checkpoint (or of an unknown one) were removed")
        else:
            n = sum(1 for f in partial.glob("*.csv") for _ in _rows(f))
            echo(f"  continuing a stopped run: {n} score(s) in {partial} are kept")
    partial.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(stamp))


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
    with open(path, "w", newline="", encoding="utf-8") as fh:  # valid UTF-8; no cell a formula (utils.cells)
        w = csv.writer(fh)
        # clip sets: 'path' is a clip's first frame and 'padded' the repeated frames appended to it
        # image sets: the file's width and height, and whether it was enlarged to the model's input
        w.writerow(["path", "label", "score", "video_id"] + (["padded"] if sc.padded else [])
                   + (["width", "height", "upscaled"] if len(sc.orig_sizes) else []))
        for i, (p, y, s, v) in enumerate(zip(sc.paths, sc.labels, sc.scores, sc.video_ids)):
            extra = [sc.padded[i]] if sc.padded else []
            if len(sc.orig_sizes):
                ow, oh = (int(v) for v in sc.orig_sizes[i])
                extra += [ow, oh, int(min(ow, oh) < sc.input_size)]
            w.writerow([csv_cell(p), int(y), f"{s:.7g}", csv_cell(v or "")] + extra)


def load_results(out_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(out_dir) / "metrics.json").read_text())
