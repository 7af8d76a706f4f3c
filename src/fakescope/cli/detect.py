"""``fakescope detect`` and ``export``: a checkpoint put to use on files, or exported for onnxruntime."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fakescope.cli.options import distributed_options, echo, inference_kwargs, inference_options, set_threads
from fakescope.errors import FakescopeError


def add_detect_parser(sub) -> None:
    from fakescope.inference.outputs import PARQUET_ROWS

    s = sub.add_parser(
        "detect", help="score images and videos with a trained detector (JSON lines or CSV)",
        description="Score image and video files, folders (searched recursively) and glob patterns with a "
                    "checkpoint. One record per input: path, score (P(fake)), label, per-frame scores for videos, "
                    "faces found, model name and version, and an error field for inputs that failed. Checkpoints "
                    "with a face stage get the face crops of their training data, AI-image checkpoints their own "
                    "crop policy, clip checkpoints clips. The exit status is 0 whenever the command ran, also "
                    "when inputs failed (they are counted at the end); 2 for usage errors.")
    s.add_argument("paths", nargs="+", metavar="PATH", help="image or video files, folders, glob patterns")
    s.add_argument("-m", "--model", required=True, help="checkpoint folder (or training run folder), a pretrained "
                   "name (fakescope models --pretrained), hf-hub:user/name[@revision], or a .onnx file")
    s.add_argument("-o", "--out", help="write records here as they come (default: standard output). An --out that "
                   "holds records of an earlier run of the same model is continued: its inputs are skipped")
    s.add_argument("--format", choices=["jsonl", "csv", "parquet"],
                   help="default: csv for an --out ending in .csv, parquet (a folder of shards of "
                        f"{PARQUET_ROWS:,} records; needs pyarrow) for one ending in .parquet, else jsonl")
    s.add_argument("--overwrite", action="store_true", help="replace --out instead of continuing it")
    s.add_argument("--explain", metavar="DIR", help="write a Grad-CAM overlay PNG per input (and a score timeline "
                                                    "per video) into DIR; the record's explanation lists them")
    s.add_argument("--num-workers", type=int, default=0,
                   help="DataLoader worker processes that decode, crop faces and preprocess while the model "
                        "scores (0: all in the main process)")
    distributed_options(s)
    inference_options(s)
    s.add_argument("--progress", choices=["auto", "on", "off"], default="auto",
                   help="progress bar on standard error (auto: only on a terminal)")
    s.set_defaults(func=cmd_detect)


def cmd_detect(args: argparse.Namespace) -> int:
    from fakescope.inference import Detector
    from fakescope.inference.stream import detect_files
    from fakescope.utils.console import show_progress
    from fakescope.utils.distributed import launch
    from fakescope.utils.memory import return_freed_buffers

    return_freed_buffers()
    set_threads(args.threads)
    if args.out is None and args.devices * args.num_nodes > 1:
        raise FakescopeError("--devices/--num-nodes: the processes write their records to --out; give one")
    ranks = launch(args.devices, args.num_nodes, args.device)
    detector = Detector.from_pretrained(args.model, backend=args.backend, onnx=args.onnx, device=ranks.device,
                                        weights_file=args.weights_file, explain=args.explain,
                                        **inference_kwargs(args))
    skipped: list[str] = []
    bar = None
    if ranks.main and show_progress({"on": True, "off": False}.get(args.progress, "auto")):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        # inputs are streamed: the count grows as they are scored (no total known in advance)
        bar = Progress(TextColumn("detect"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       console=Console(stderr=True), transient=True)
        task = bar.add_task("detect", total=None)
        bar.start()
    try:
        summary = detect_files(detector, args.paths, args.out, args.format, ranks=ranks, overwrite=args.overwrite,
                               num_workers=args.num_workers, skipped=skipped,
                               on_record=None if bar is None else (lambda rec: bar.advance(task)))
    finally:
        if bar is not None:
            bar.stop()
    if not ranks.main:
        return 0
    print(f"fakescope detect: {summary.total} input(s): {summary.fake} fake, {summary.real} real, "
          f"{summary.failed} failed (model {detector.name}, threshold {detector.threshold:.4g} on the "
          f"{'calibrated ' if detector.temperature is not None else ''}P(fake), {detector.operating_point})"
          + (f"; records in {args.out}" if args.out else "")
          + (f"; {summary.previous} record(s) were there from an earlier run and their inputs were skipped"
             if summary.previous else ""), file=sys.stderr)
    if detector.demonstration:
        print(f"  note: model {detector.name} is {detector.demonstration_note}", file=sys.stderr)
    for err in summary.errors:
        print(f"  failed: {err}", file=sys.stderr)
    if summary.failed > len(summary.errors):
        print(f"  ... and {summary.failed - len(summary.errors)} more (see the error field of the records)",
              file=sys.stderr)
    if skipped:
        from collections import Counter

        kinds = Counter(Path(f).suffix.lower() or "(no extension)" for f in set(skipped))
        print(f"  skipped {len(set(skipped))} file(s) in the folders given that are not images, videos or sound by "
              f"their name, or that no decoder here reads: {', '.join(f'{k} x{n}' for k, n in kinds.most_common(8))}"
              + (f"; {summary.skipped} record(s) with kind \"skipped\" say which and why" if summary.skipped else ""),
              file=sys.stderr)
    return 0


def add_export_parser(sub) -> None:
    s = sub.add_parser("export", help="export an image detector to ONNX, checked against PyTorch",
                       description="Export a checkpoint to ONNX (input: float pixels 0..255 [B, 3, S, S], "
                                   "output: P(fake) [B]) and check it against PyTorch on random inputs (max "
                                   "absolute difference at most 1e-4). The checkpoint config is copied beside it.")
    s.add_argument("checkpoint")
    s.add_argument("--format", choices=["onnx"], default="onnx")
    s.add_argument("-o", "--out", help="the .onnx file (default: CHECKPOINT/model.onnx)")
    s.add_argument("--opset", type=int, default=18)
    s.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from fakescope.export import export_onnx

    result = export_onnx(args.checkpoint, args.out, opset=args.opset)
    echo(result.summary())
    echo(f"config beside it: {result.config_path}")
    return 0
