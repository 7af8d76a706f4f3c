"""SDR against a frame-level detector of similar size on the built-in synthetic video benchmark.

    python benchmarks/sdr_synth.py [--videos 40] [--flicker 1.0] [--motion 0.25] [--reals consistent]
                                   [--out DIR] [key=value ...]

Generates the synthetic videos (a slow camera over photos shipped in packages and a
face-sized region re-synthesised by a generator: in fakes afresh in every frame, i.e.
temporal flicker; in reals with the same noise in every frame, so that the classes
differ only in time; ``--reals untouched`` gives the earlier benchmark, whose reals
have no re-synthesised region), trains ``configs/sdr/synth.yaml`` (a small SDR: FTCN layout,
K = 4 TPA branches, TRFI, L_MI, L_con) and ``configs/sdr/synth_frames.yaml`` (a CNN
of similar size on the same frames, scored per video by the mean of its frame scores),
and prints the validation and test video AUC of both. Extra ``key=value`` arguments
override the SDR config (for example ``'model.branches=[none]'``).

``--videos N`` gives N training videos per class and ``--eval-videos M`` (default
N / 4, at least 10) validation and test videos per class. Each training run uses the
GPU when there is one. The last line is SDR's test video AUC over the frame
detector's. ``--skip-frames`` trains SDR only (the frame detector does not depend on
SDR's settings). ``--views`` scores the trained SDR again on the validation and test
videos with each ``model.inference_views`` (``clean``: every branch on the clip itself,
the default; ``perturbed``: each branch's perturbation at a fixed setting, fused by TRFI).

Compare the L_MI estimators (same seed, same videos):

    python benchmarks/sdr_synth.py --seed S --views data.num_workers=0                          # InfoNCE (default)
    python benchmarks/sdr_synth.py --seed S --skip-frames data.num_workers=0 model.mi_estimator=kl  # the KL variant
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=40, help="training videos per class")
    ap.add_argument("--eval-videos", type=int, help="validation and test videos per class")
    ap.add_argument("--frames", type=int, default=16, help="frames per video")
    ap.add_argument("--size", type=int, default=64, help="frame side in pixels")
    ap.add_argument("--flicker", type=float, default=1.0, help="strength of the fake region's flicker")
    ap.add_argument("--motion", type=float, default=0.25, help="camera motion (0: a still camera; 1: the earlier default)")
    ap.add_argument("--reals", default="consistent", choices=("consistent", "untouched"),
                    help="real videos' face region: the generator with fixed noise, or no region at all")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="work folder (default: a new temporary folder)")
    ap.add_argument("--skip-frames", action="store_true", help="train SDR only, not the frame detector")
    ap.add_argument("--views", action="store_true",
                    help="also score SDR's validation and test videos with inference_views clean and perturbed")
    ap.add_argument("overrides", nargs="*", help="key=value overrides of configs/sdr/synth.yaml")
    args = ap.parse_args()

    from fakescope.config import load_config
    from fakescope.synth import SynthConfig, generate
    from fakescope.workflows import run_experiment
    from safetensors.torch import load_file

    out = Path(args.out or tempfile.mkdtemp(prefix="fakescope-sdr-synth-"))
    n_eval = args.eval_videos or max(args.videos // 4, 10)
    synth = SynthConfig(out=str(out / "synth"), seed=args.seed, size=args.size, train_per_class=8, val_per_class=8,
                        test_per_class=8, videos_per_class={"train": args.videos, "val": n_eval, "test": n_eval},
                        frames=args.frames, flicker=args.flicker, camera_motion=args.motion,
                        video_reals=args.reals)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        generate(synth, log=lambda m: None, overwrite=True)
    print(f"videos: {args.videos} train, {n_eval} val, {n_eval} test per class; {args.frames} frames of "
          f"{args.size} px; flicker {args.flicker}, camera motion {args.motion}, reals {args.reals} (in {out})")

    rows = {}
    runs = [("sdr", "sdr/synth", args.overrides)] + ([] if args.skip_frames else [("frames", "sdr/synth_frames", [])])
    for label, cfg_name, extra in runs:
        common = [f"data.root={out / 'synth' / 'videos'}", f"output_dir={out / 'runs'}", f"name={label}",
                  "trainer.progress_bar=false", f"seed={args.seed}"]
        cfg = load_config(cfg_name, overrides=[*common, *extra])
        result, _ = run_experiment(cfg, echo=lambda m: None)
        ev = json.loads((result.run_dir / "eval" / "metrics.json").read_text())["sets"]["test"]
        params = sum(t.numel() for t in load_file(str(result.run_dir / "model" / "model.safetensors")).values())
        rows[label] = ev["video_auc"]
        print(f"{label:7s} test video AUC {ev['video_auc']:.3f}  test clip/frame AUC {ev['auc']:.3f}  "
              f"epochs {result.epochs}  selected epoch {result.best.get('epoch')} (val video AUC {result.best.get('val/video_auc', float('nan')):.3f}, val loss {result.best.get('val/loss', float('nan')):.4f})  weights {params / 1e3:.0f}k")
        if label == "sdr" and args.views:
            score_views(result.run_dir / "model", out / "synth" / "videos")
    if "frames" in rows:
        print(f"SDR test video AUC / frame detector's: {rows['sdr'] / rows['frames']:.3f}")


def score_views(checkpoint: Path, videos: Path) -> None:
    """The trained SDR on the validation and test videos, with each ``inference_views`` setting."""
    from fakescope.config import DataSource
    from fakescope.eval.evaluate import score_source
    from fakescope.metrics import compute_metrics
    from fakescope.zoo.checkpoint import load

    model = load(checkpoint)
    for views in ("clean", "perturbed"):
        model.cfg.inference_views = views
        cells = []
        for split in ("val", "test"):
            sc = score_source(model, DataSource(path=str(videos / split)), batch_size=8, num_workers=0)
            m = compute_metrics(sc.labels, sc.scores, sc.video_ids)
            cells.append(f"{split} video AUC {m['video_auc']:.3f}  {split} clip AUC {m['auc']:.3f}")
        print(f"sdr inference_views={views:9s} " + "  ".join(cells))


if __name__ == "__main__":
    main()
