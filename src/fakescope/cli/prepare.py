"""``fakescope prepare``: a dataset as its authors ship it -> face crops and manifests."""

from __future__ import annotations

import argparse

from fakescope.cli.options import default, echo, pixel_budget


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


def _datasets_epilog() -> str:
    from fakescope.prepare.adapters import list_adapters

    rows = [f"  {name:<14} {text}" for name, text in list_adapters().items()]
    return "datasets (--root is the folder as downloaded):\n" + "\n".join(rows)


def add_prepare_parser(sub) -> None:
    from fakescope.faces import list_detectors
    from fakescope.prepare import PrepareOptions as P
    from fakescope.prepare.adapters import ADAPTERS
    from fakescope.preprocess import FaceCropConfig as F

    s = sub.add_parser(
        "prepare", help="videos or images of a benchmark -> face crops and manifests",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Turn a dataset, laid out as its authors ship it, into samples for training and evaluation: "
                    "sampled video frames, face crops (PNG) and manifest CSVs, each with the face stage that made "
                    "it beside it (a model trained on them stores it and crops faces the same way at inference). "
                    "Re-running skips finished videos. Exit status 1 when any input failed (listed in "
                    "OUT/failures.csv).",
        epilog=_datasets_epilog())
    s.add_argument("dataset", choices=ADAPTERS.names(), metavar="DATASET", help=", ".join(ADAPTERS.names()))
    s.add_argument("--root", required=True, help="the dataset's folder (csv and deepfakebench: the CSV/JSON file)")
    s.add_argument("--out", required=True, help="output folder (crops, manifest.csv, sets/, failures.csv)")
    g = s.add_argument_group("frames")
    g.add_argument("--num-frames", type=int, **default(P, "num_frames"),
                   help="frames per video (stride mode: at most; 0 = all)")
    g.add_argument("--sampling", choices=["even", "stride"], **default(P, "sampling"),
                   help="even: spread over the duration; stride: every --stride-th frame from --start")
    g.add_argument("--stride", type=int, **default(P, "stride"), help="stride sampling: every n-th frame")
    g.add_argument("--start", type=int, **default(P, "start"), help="stride sampling: the first frame")
    g = s.add_argument_group("faces (the face stage, stored with every model trained on the output)")
    g.add_argument("--detector", **default(F, "detector"),
                   help=f"{', '.join(list_detectors())}, or package.module:Class for your own backend")
    g.add_argument("--detector-weights", help="weights file or folder for the detector")
    g.add_argument("--detect-size", type=int, **default(F, "detect_size"),
                   help="frames are downscaled to this longest side for detection (0: full size)")
    g.add_argument("--min-face", type=int, **default(F, "min_face"),
                   help="smallest face searched for, in detection pixels")
    g.add_argument("--faces", choices=["largest", "all"], **default(F, "select"),
                   help="largest: one face per frame, the video's main face (largest face track); "
                        "all: every face, with a track id")
    g.add_argument("--face-search", choices=["track", "full"], **default(F, "search"),
                   help="track (with --faces largest): after a video's first frame, search only for faces of at "
                        "least a third of its main face's size, and for every size where the main face is not "
                        "found or shrank (faster; on the FF++ fixture the crops of full); full: every size")
    g.add_argument("--crop", choices=["box", "align"], **default(F, "crop"),
                   help="box: square of --margin x the face box; align: DeepfakeBench's five-point alignment")
    g.add_argument("--size", type=int, **default(F, "size"),
                   help="crop side in pixels (box: 0 keeps the native size)")
    g.add_argument("--margin", type=float, **default(F, "margin"), help="box margin, or the alignment scale")
    g = s.add_argument_group("dataset")
    g.add_argument("--compression", default="c23", help="FF++ (and DeepfakeBench JSON): raw, c23 or c40")
    g.add_argument("--methods", nargs="+", metavar="METHOD", help="keep the fakes of these methods only")
    g.add_argument("--splits", help="FF++: folder with train.json/val.json/test.json ('none': no splits)")
    g.add_argument("--split", help="prepare only this split (train, val or test)")
    g.add_argument("--variant", default="images", help="DIRE: images, recons or dire")
    g.add_argument("--frames-root", help="DeepfakeBench: folder its frame paths are relative to "
                                         "(default: the JSON's folder)")
    g.add_argument("--no-verify", action="store_true", help="image datasets: do not decode each image once")
    g = s.add_argument_group("running")
    g.add_argument("--device", **default(P, "device"), help="where the detector runs: cpu, cuda, cuda:1")
    g.add_argument("--decode-threads", type=int, **default(P, "decode_threads"),
                   help="FFmpeg decoder threads per video (0: automatic)")
    g.add_argument("--workers", type=workers_option, default="auto",
                   help="worker processes for videos: a number, auto (one per CPU core, at most 8) or 0 (this "
                        "process); a worker that dies (a decoder crash) costs only its video")
    g.add_argument("--videos-per-worker", type=int, **default(P, "videos_per_worker"),
                   help="a worker process is replaced after this many videos (0: never), which bounds what a "
                        "long run can accumulate; 1 gives each video a process of its own")
    g.add_argument("--num-shards", type=int, **default(P, "num_shards"), help="split the work into this many shards")
    g.add_argument("--shard-index", type=int, **default(P, "shard_index"),
                   help="which shard this job does (0-based)")
    g.add_argument("--retry-failed", action="store_true", help="try inputs that failed in an earlier run again")
    g.add_argument("--limit", type=int, help="process at most this many videos or image chunks")
    pixel_budget(g)
    g.add_argument("--progress", choices=["auto", "on", "off"], default="auto",
                   help="progress bar (auto: only on a terminal)")
    s.set_defaults(func=cmd_prepare)


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
    summary = prepare(args.dataset, args.root, args.out, opt, adapter, progress=progress, echo=echo)
    return summary.exit_code
