"""The subcommands of ``fakescope``: each imports what it needs when it runs, so a missing optional extra only
affects the command that needs it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fakescope.errors import FakescopeError


def _echo(msg: str) -> None:
    print(msg, flush=True)


def cmd_train(args: argparse.Namespace) -> int:
    from fakescope.config import load_config
    from fakescope.workflows import run_experiment

    cfg = load_config(args.config, args.overrides)
    result, evaluation = run_experiment(cfg, resume=args.resume, overwrite=args.overwrite, echo=_echo)
    if result.checkpoint is not None:
        _echo(f"run folder: {result.run_dir}")
        if evaluation:
            _echo(f"test report: {result.run_dir / 'eval' / 'report.html'}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from fakescope.config import RobustnessConfig
    from fakescope.eval.evaluate import evaluate
    from fakescope.eval.report import markdown_table, metrics_table
    from fakescope.utils.distributed import launch
    from fakescope.utils.memory import return_freed_buffers

    return_freed_buffers()

    out = Path(args.out) if args.out else (Path(args.checkpoint) / "eval" if Path(args.checkpoint).exists()
                                            else Path("eval") / args.checkpoint.replace("/", "_").replace(":", "_"))
    ranks = launch(args.devices, args.num_nodes, args.device)
    results = evaluate(args.checkpoint, args.data, out, batch_size=args.batch_size, num_workers=args.num_workers,
                       device=ranks.device, threshold=args.threshold,
                       robustness=RobustnessConfig() if args.robustness else None, echo=_echo,
                       weights_file=args.weights_file, ranks=ranks, overwrite=args.overwrite)
    if not ranks.main:
        return 0
    _echo(markdown_table(*metrics_table(results)))
    if args.table:
        from fakescope.eval.tables import get_table, write_table

        for name in args.table:
            path = write_table(get_table(name), results["sets"], out, ours=results["model"])
            _echo(path.read_text())
    for name, err in (results.get("failed_sets") or {}).items():
        print(f"fakescope eval: failed: {name}: {err}", file=sys.stderr)
    return 1 if results.get("failed_sets") else 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from fakescope.eval.calibrate import calibrate_checkpoint

    calibrate_checkpoint(args.checkpoint, args.data, batch_size=args.batch_size, num_workers=args.num_workers,
                         device=args.device, name=args.name, default_point=args.default_operating_point, echo=_echo)
    _echo(f"detect and serve now use it: fakescope detect FILES -m {args.checkpoint} (or --operating-point fpr1, "
          "fpr5, eer, or a number)")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from fakescope.prepare.synth import SynthConfig, generate

    n = args.videos_per_class
    cfg = SynthConfig(out=args.out, seed=args.seed, size=args.size, train_per_class=args.train_per_class,
                      val_per_class=args.val_per_class, test_per_class=args.test_per_class,
                      train_generator=args.train_generator,
                      videos_per_class={"train": n, "val": max(n // 4, 1), "test": max(n // 2, 1)} if n else
                      {"train": 0, "val": 0, "test": 0},
                      frames=args.frames, camera_motion=args.camera_motion, video_reals=args.video_reals)
    generate(cfg, log=_echo, overwrite=args.overwrite)
    return 0


def workers_option(value: str) -> int | str:
    """``--workers``: ``auto`` or a whole number of 0 or more."""
    if value == "auto":
        return value
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"'{value}': give a number of processes (0 or more) or auto")
    return n


def cmd_prepare(args: argparse.Namespace) -> int:
    from fakescope.prepare import AdapterOptions, auto_workers, options_from, prepare
    from fakescope.utils.console import show_progress

    workers = auto_workers() if args.workers == "auto" else args.workers
    opt = options_from(num_frames=args.num_frames, sampling=args.sampling, stride=args.stride, start=args.start,
                       faces=args.faces, crop=args.crop, size=args.size, margin=args.margin, detector=args.detector,
                       detector_weights=args.detector_weights, device=args.device,
                       detect_size=args.detect_size, decode_threads=args.decode_threads, workers=workers,
                       videos_per_worker=args.videos_per_worker, min_face=args.min_face,
                       face_search=args.face_search, verify_images=not args.no_verify, num_shards=args.num_shards,
                       shard_index=args.shard_index, retry_failed=args.retry_failed, split=args.split,
                       limit=args.limit)
    adapter = AdapterOptions(compression=args.compression, methods=tuple(args.methods or ()),
                             splits_dir=args.splits, variant=args.variant, frames_root=args.frames_root)
    progress = show_progress({"on": True, "off": False}.get(args.progress, "auto"))
    summary = prepare(args.dataset, args.root, args.out, opt, adapter, progress=progress, echo=_echo)
    return summary.exit_code


def cmd_models(args: argparse.Namespace) -> int:
    from fakescope.models import default_preprocess, list_models, model_entry

    if args.pretrained:
        return _list_pretrained(args)

    rows = []
    for name in list_models(args.pattern, args.modality):
        e = model_entry(name)
        pp = default_preprocess(name)
        rows.append({"name": name, "modality": e.modality, "input_size": pp.input_size, "policy": pp.policy,
                     "faces": pp.face is not None, "description": e.description, "paper": e.paper})
    if args.json:
        _echo(json.dumps(rows, indent=2))
    else:
        for r in rows:
            _echo(f"{r['name']:<28} {r['modality']:<6} {r['input_size']:>4}px {r['policy']:<12} {r['description']}")
    return 0


def _list_pretrained(args: argparse.Namespace) -> int:
    from fakescope.models.pretrained import list_pretrained, pretrained_entry

    rows = []
    for name in list_pretrained(args.pattern if args.pattern != "*" else "*"):
        e = pretrained_entry(name)
        rows.append({"name": name, "arch": e.arch, "paper": e.paper, "trained_on": e.trained_on,
                     "published": e.published, "licence": e.licence, "source": e.source,
                     "url": e.file.urls[0] if e.file else None, "sha256": e.file.sha256 if e.file else None})
    if args.json:
        _echo(json.dumps(rows, indent=2))
    else:
        for r in rows:
            _echo(f"{r['name']:<44} {r['licence']:<14} {r['trained_on']}")
            _echo(f"{'':<44} {r['paper']}; {r['source']}")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from fakescope.models.checkpoint import resolve
    from fakescope.models.hub import push_checkpoint

    url = push_checkpoint(resolve(args.checkpoint), args.repo, private=args.private, token=args.token)
    _echo(f"pushed {args.checkpoint} to {args.repo}: {url}")
    _echo(f"load it with: fakescope detect FILE -m hf-hub:{args.repo}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    import yaml

    from fakescope.config import load_config

    cfg = load_config(args.config, args.overrides)
    _echo(yaml.safe_dump(cfg.to_dict(), sort_keys=False).rstrip())
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from fakescope.workflows import run_quickstart

    out = Path(args.out)
    run_quickstart(data_dir=args.data or str(out / "data" / "synth"), output_dir=str(out / "runs"),
                   config=args.config, overrides=args.overrides, echo=_echo)
    return 0


def cmd_detect(args: argparse.Namespace) -> int:
    from fakescope.inference import Detector
    from fakescope.inference.stream import detect_files
    from fakescope.utils.console import show_progress
    from fakescope.utils.distributed import launch
    from fakescope.utils.memory import return_freed_buffers

    return_freed_buffers()
    _set_threads(args.threads)
    if args.out is None and args.devices * args.num_nodes > 1:
        raise FakescopeError("--devices/--num-nodes: the processes write their records to --out; give one")
    ranks = launch(args.devices, args.num_nodes, args.device)
    detector = Detector.from_pretrained(args.model, backend=args.backend, onnx=args.onnx, device=ranks.device,
                                        weights_file=args.weights_file, explain=args.explain,
                                        **_inference_options(args))
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


def _inference_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"threshold": args.threshold, "operating_point": args.operating_point, "provenance": args.provenance,
            "batch_size": args.batch_size,
            "faces": args.faces,
            "num_frames": args.num_frames, "max_clips": args.max_clips}


def cmd_export(args: argparse.Namespace) -> int:
    from fakescope.export import export_onnx

    result = export_onnx(args.checkpoint, args.out, opset=args.opset)
    _echo(result.summary())
    _echo(f"config beside it: {result.config_path}")
    return 0


def _set_threads(threads: int) -> None:
    if threads < 0:
        raise FakescopeError(f"--threads must be 0 (torch's default) or more, got {threads}")
    if threads:
        import torch

        torch.set_num_threads(threads)


def cmd_serve(args: argparse.Namespace) -> int:
    from fakescope.serve import ServeSettings, serve

    _set_threads(args.threads)
    settings = ServeSettings(max_upload_mb=args.max_upload_mb, workers=args.workers, queue=args.queue,
                             timeout_s=args.timeout, max_connections=args.max_connections,
                             header_timeout_s=args.header_timeout, idle_timeout_s=args.idle_timeout)
    settings.check()  # before the model is loaded: a bad option is a usage error, not a traceback
    serve(args.model, host=args.host, port=args.port, settings=settings, backend=args.backend, onnx=args.onnx,
          device=args.device, weights_file=args.weights_file, echo=_echo, allowed_hosts=args.allowed_hosts,
          api_key_file=args.api_key_file, no_auth=args.no_auth, **_inference_options(args))
    return 0

