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
                    "detector (with no -m: the default fusion). One record per input: path, score (P(fake)), label, "
                    "per-frame scores for videos, faces found, model name and version, a fusion's member scores, "
                    "signals and reasons, and an error field for inputs that failed. Checkpoints "
                    "with a face stage get the face crops of their training data, AI-image checkpoints their own "
                    "crop policy, clip checkpoints clips. The exit status is 0 whenever the command ran, also "
                    "when inputs failed (they are counted at the end); 2 for usage errors.")
    s.add_argument("paths", nargs="+", metavar="PATH", help="image or video files, folders, glob patterns")
    s.add_argument("-m", "--model", default="default",
                   help="checkpoint folder (or training run folder), a pretrained name (fakescope models --pretrained), "
                        "hf-hub:user/name[@revision], a .onnx file, a fusion folder (fakescope fuse), py:FILE.py (your "
                        "own detector: predict(path) -> P(fake)), or default: the default fusion (NPR's released "
                        "weights, fetched and cached on first use, with the watermark and provenance signals; "
                        "docs/fusion.md)")
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
    batch = s._option_string_actions["--batch-size"]  # detect measures it by default; serve keeps a number
    batch.type, batch.default = batch_size, "auto"
    batch.help = ("model inputs per forward pass; auto: the fastest per input for this model on this machine, and "
                  "the faster memory layout, measured at first use (a few seconds) and cached")
    s.add_argument("--lanes", type=int, default=0,
                   help="on a CPU, threads that each decode, preprocess and score a share of the inputs with one "
                        "torch thread of their own (records stay in input order); 0: one per torch thread "
                        "(--threads); 1: all in one thread. Not with a face stage, --explain or --num-workers")
    s.add_argument("--bf16", action="store_true",
                   help="score in bfloat16 (PyTorch; fast on CPUs with AMX or AVX512-BF16); the first inputs are "
                        "also scored in float32 and the summary says how far apart the scores are")
    s.add_argument("--compile", action="store_true",
                   help="score with torch.compile of the model (PyTorch, float32): its first batch compiles it (a "
                        "minute or more on a CPU), later ones run faster; worth it for long runs (docs/speed.md)")
    s.add_argument("--progress", choices=["auto", "on", "off"], default="auto",
                   help="progress bar on standard error (auto: only on a terminal)")
    s.set_defaults(func=cmd_detect)


def batch_size(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': give auto or a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: a batch holds at least 1 input")
    return value


def cmd_detect(args: argparse.Namespace) -> int:
    from fakescope.inference.fusion import load_scorer
    from fakescope.inference.stream import detect_files
    from fakescope.utils.console import show_progress
    from fakescope.utils.distributed import launch
    from fakescope.utils.memory import return_freed_buffers, reuse_freed_buffers

    # with DataLoader workers each batch arrives in a new buffer, best returned; else layer outputs, best reused
    (return_freed_buffers if args.num_workers else reuse_freed_buffers)()
    set_threads(args.threads)
    if args.out is None and args.devices * args.num_nodes > 1:
        raise FakescopeError("--devices/--num-nodes: the processes write their records to --out; give one")
    ranks = launch(args.devices, args.num_nodes, args.device)
    detector = load_scorer(args.model, backend=args.backend, onnx=args.onnx, device=ranks.device,
                           weights_file=args.weights_file, explain=args.explain, lanes=args.lanes, bf16=args.bf16,
                           compile=args.compile,
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
          f"{'calibrated ' if getattr(detector, 'temperature', None) is not None else ''}P(fake), "
          f"{detector.operating_point})"
          + (f"; records in {args.out}" if args.out else "")
          + (f"; {summary.previous} record(s) were there from an earlier run and their inputs were skipped"
             if summary.previous else ""), file=sys.stderr)
    for member, why in getattr(detector, "unavailable", {}).items():
        print(f"  detector {member} could not be loaded, the verdicts rest on the rest: {why}", file=sys.stderr)
    if getattr(detector, "auto_batch", False) or getattr(detector, "lanes", 1) != 1:
        print(f"  scoring: {detector.speed_text()}", file=sys.stderr)
    if summary.bf16:
        b = summary.bf16
        print(f"  bf16: on the first {b['inputs']} model input(s), also scored in float32, the scores differ by at "
              f"most {b['max_abs_diff']:.2e} (mean {b['mean_abs_diff']:.2e})", file=sys.stderr)
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
