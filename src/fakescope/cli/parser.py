"""The ``fakescope`` command line: choices come from the registries, defaults from the option classes."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from typing import Any

from fakescope._version import __version__
from fakescope.cli.commands import (cmd_calibrate, cmd_config, cmd_detect, cmd_eval, cmd_export, cmd_models, cmd_prepare, cmd_push,
                                    cmd_quickstart, cmd_serve, cmd_synth, cmd_train, workers_option)


def _default(cls, name: str) -> Any:
    """The default of option ``name`` as its owner declares it: a dataclass, a typed config or a function."""
    if callable(cls) and not isinstance(cls, type):
        return inspect.signature(cls).parameters[name].default
    if dataclasses.is_dataclass(cls):
        f = {f.name: f for f in dataclasses.fields(cls)}[name]
        return f.default_factory() if f.default is dataclasses.MISSING else f.default
    return cls.model_fields[name].get_default(call_default_factory=True)



def pixel_budget(s) -> None:
    """``--max-megapixels``: the pixel budget of every decode (:mod:`fakescope.media.limits`)."""
    from fakescope.media.limits import DEFAULT_MAX_MEGAPIXELS, ENV_VAR

    s.add_argument("--max-megapixels", type=float, default=None,
                   help="pixel budget per image or video frame: larger JPEGs are decoded at reduced size, larger "
                        f"video frames scaled down, other larger images refused (default: ${ENV_VAR} or "
                        f"{DEFAULT_MAX_MEGAPIXELS:g})")


def distributed_options(s) -> None:
    """``--devices``/``--num-nodes`` of ``detect`` and ``eval`` (:mod:`fakescope.utils.distributed`)."""
    s.add_argument("--devices", type=int, default=1,
                   help="processes per machine, each scoring a share (a GPU each, or CPU processes); started "
                        "here, or by torchrun/srun with the same number")
    s.add_argument("--num-nodes", type=int, default=1, help="machines (launched by torchrun or srun)")


def _datasets_epilog() -> str:
    from fakescope.prepare.adapters import list_adapters

    rows = [f"  {name:<14} {text}" for name, text in list_adapters().items()]
    return "datasets (--root is the folder as downloaded):\n" + "\n".join(rows)


def build_parser() -> argparse.ArgumentParser:
    """The command line; choices come from the registries and defaults from the option classes."""
    from fakescope.eval.evaluate import evaluate
    from fakescope.eval.tables import list_tables
    from fakescope.faces import list_detectors
    from fakescope.inference import InferenceOptions
    from fakescope.inference.outputs import PARQUET_ROWS
    from fakescope.prepare import PrepareOptions
    from fakescope.prepare.adapters import ADAPTERS
    from fakescope.prepare.synth import FAMILIES, VIDEO_REALS, SynthConfig
    from fakescope.preprocess import FaceCropConfig
    from fakescope.serve.app import ServeSettings
    from fakescope.workflows import run_quickstart

    P, F, I, S, Y = PrepareOptions, FaceCropConfig, InferenceOptions, ServeSettings, SynthConfig

    def d(cls, name: str) -> dict[str, Any]:
        return {"default": _default(cls, name)}

    p = argparse.ArgumentParser(
        prog="fakescope",
        description="Generalizable deepfake and AI-generated image detection (SFCL-HCMF, FSSNet, SDR).",
    )
    p.add_argument("--version", action="version", version=f"fakescope {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser("train", help="train a detector from a YAML config",
                       description="Train a detector. CONFIG is a YAML file (or the name of a packaged config such "
                                   "as 'quickstart'); key=value pairs override it, e.g. optim.lr=1e-3. The test "
                                   "sets (data.test) are evaluated after training unless eval.after_training=false.")
    s.add_argument("config")
    s.add_argument("overrides", nargs="*", metavar="key=value")
    s.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    s.add_argument("--overwrite", action="store_true", help="start again in a run folder that holds a run")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("eval", help="evaluate a checkpoint on test sets and write a report",
                       description="Evaluate a checkpoint folder (or a training run folder) on one or more test "
                                   "sets. A --data path with a glob ('test/*') gives one test set per match.")
    s.add_argument("checkpoint", help="checkpoint folder, pretrained name (fakescope models --pretrained) or "
                                      "hf-hub:user/name")
    s.add_argument("--data", nargs="+", required=True, metavar="PATH",
                   help="ForenSynths-style folders or manifest CSVs")
    s.add_argument("--out", help="report folder (default: CHECKPOINT/eval, or eval/NAME for a pretrained name)")
    s.add_argument("--weights-file", help="a pretrained name's official weights file, downloaded by hand")
    s.add_argument("--robustness", action="store_true", help="also sweep JPEG, blur, downscaling and noise")
    s.add_argument("--batch-size", type=int, **d(evaluate, "batch_size"))
    s.add_argument("--num-workers", type=int, **d(evaluate, "num_workers"))
    s.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    s.add_argument("--threshold", type=float, **d(evaluate, "threshold"))
    s.add_argument("--overwrite", action="store_true",
                   help="score every set again (default: the scores a stopped run of this command wrote are kept)")
    distributed_options(s)
    pixel_budget(s)
    s.add_argument("--table", nargs="+", metavar="NAME", choices=list_tables(),
                   help=f"also lay the results out as a paper's table beside its printed numbers: "
                        f"{', '.join(list_tables())}")
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("calibrate", help="fit temperature scaling and operating points on validation data",
                       description="Score validation data with a checkpoint, fit temperature scaling, and store "
                                   "in the checkpoint the thresholds at the equal error rate and at 1% and 5% "
                                   "false-positive rate on that data, with its name and size "
                                   "(detect --operating-point fpr1|fpr5|eer).")
    s.add_argument("checkpoint", help="checkpoint folder (or training run folder)")
    s.add_argument("--data", nargs="+", required=True, metavar="PATH", help="validation folders or manifest CSVs")
    s.add_argument("--name", help="the validation data's name, as stored (default: the sets' names)")
    s.add_argument("--default-operating-point", choices=["eer", "fpr1", "fpr5"],
                   help="the operating point detect and serve use when given none (default: fpr1, or fpr5 when "
                        "the data have under 100 reals)")
    s.add_argument("--batch-size", type=int, **d(evaluate, "batch_size"))
    s.add_argument("--num-workers", type=int, **d(evaluate, "num_workers"))
    s.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    pixel_budget(s)
    s.set_defaults(func=cmd_calibrate)

    s = sub.add_parser("synth", help="generate the built-in synthetic benchmark (offline, deterministic)")
    for name, text in (("out", "output folder"), ("seed", "random seed"), ("size", "image side in pixels "
                       "(multiple of 4)"), ("train_per_class", "training images per class"),
                       ("val_per_class", "validation images per class"), ("test_per_class", "test images per "
                       "class and generator"), ("frames", "frames per video"), ("camera_motion", "videos: camera "
                       "pan and zoom (0: still)")):
        s.add_argument("--" + name.replace("_", "-"), type=type(_default(Y, name)), **d(Y, name), help=text)
    s.add_argument("--train-generator", choices=FAMILIES, **d(Y, "train_generator"),
                   help="generator family of the training fakes")
    s.add_argument("--videos-per-class", type=int, default=_default(Y, "videos_per_class")["train"],
                   help="training videos per class (0: no videos); validation and test get 1/4 and 1/2 of it")
    s.add_argument("--video-reals", choices=VIDEO_REALS, **d(Y, "video_reals"),
                   help="videos: the real videos' face region re-synthesised with noise fixed over the video "
                        "(consistent: the classes differ only in time) or left as filmed (untouched)")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=cmd_synth)

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
    g.add_argument("--num-frames", type=int, **d(P, "num_frames"),
                   help="frames per video (stride mode: at most; 0 = all)")
    g.add_argument("--sampling", choices=["even", "stride"], **d(P, "sampling"),
                   help="even: spread over the duration; stride: every --stride-th frame from --start")
    g.add_argument("--stride", type=int, **d(P, "stride"), help="stride sampling: every n-th frame")
    g.add_argument("--start", type=int, **d(P, "start"), help="stride sampling: the first frame")
    g = s.add_argument_group("faces (the face stage, stored with every model trained on the output)")
    g.add_argument("--detector", **d(F, "detector"),
                   help=f"{', '.join(list_detectors())}, or package.module:Class for your own backend")
    g.add_argument("--detector-weights", help="weights file or folder for the detector")
    g.add_argument("--detect-size", type=int, **d(F, "detect_size"),
                   help="frames are downscaled to this longest side for detection (0: full size)")
    g.add_argument("--min-face", type=int, **d(F, "min_face"), help="smallest face searched for, in detection pixels")
    g.add_argument("--faces", choices=["largest", "all"], **d(F, "select"),
                   help="largest: one face per frame, the video's main face (largest face track); "
                        "all: every face, with a track id")
    g.add_argument("--face-search", choices=["track", "full"], **d(F, "search"),
                   help="track (with --faces largest): after a video's first frame, search only for faces of at "
                        "least a third of its main face's size, and for every size where the main face is not "
                        "found or shrank (faster; on the FF++ fixture the crops of full); full: every size")
    g.add_argument("--crop", choices=["box", "align"], **d(F, "crop"),
                   help="box: square of --margin x the face box; align: DeepfakeBench's five-point alignment")
    g.add_argument("--size", type=int, **d(F, "size"), help="crop side in pixels (box: 0 keeps the native size)")
    g.add_argument("--margin", type=float, **d(F, "margin"), help="box margin, or the alignment scale")
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
    g.add_argument("--device", **d(P, "device"), help="where the detector runs: cpu, cuda, cuda:1")
    g.add_argument("--decode-threads", type=int, **d(P, "decode_threads"),
                   help="FFmpeg decoder threads per video (0: automatic)")
    g.add_argument("--workers", type=workers_option, default="auto",
                   help="worker processes for videos: a number, auto (one per CPU core, at most 8) or 0 (this "
                        "process); a worker that dies (a decoder crash) costs only its video")
    g.add_argument("--videos-per-worker", type=int, **d(P, "videos_per_worker"),
                   help="a worker process is replaced after this many videos (0: never), which bounds what a "
                        "long run can accumulate; 1 gives each video a process of its own")
    g.add_argument("--num-shards", type=int, **d(P, "num_shards"), help="split the work into this many shards")
    g.add_argument("--shard-index", type=int, **d(P, "shard_index"), help="which shard this job does (0-based)")
    g.add_argument("--retry-failed", action="store_true", help="try inputs that failed in an earlier run again")
    g.add_argument("--limit", type=int, help="process at most this many videos or image chunks")
    pixel_budget(g)
    g.add_argument("--progress", choices=["auto", "on", "off"], default="auto",
                   help="progress bar (auto: only on a terminal)")
    s.set_defaults(func=cmd_prepare)

    def inference_options(s: argparse.ArgumentParser) -> None:
        s.add_argument("--threshold", type=float, help="label is fake when score >= threshold (score: P(fake), "
                                                            "calibrated where the checkpoint is; default: the "
                                                            "checkpoint's operating point, else 0.5)")
        s.add_argument("--operating-point", metavar="POINT",
                       help="fpr1, fpr5 or eer: the threshold a calibrated checkpoint chose on its validation data "
                            "(at 1%%/5%% false-positive rate, or the equal error rate; fakescope calibrate); "
                            "a number: a fixed threshold. Default: the checkpoint's own (fakescope calibrate "
                            "--default-operating-point), else 0.5")
        s.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
        s.add_argument("--batch-size", type=int, **d(I, "batch_size"),
                       help="images, frames or clips per forward pass")
        s.add_argument("--backend", choices=["torch", "onnx"], default="torch",
                       help="onnx: onnxruntime on the model exported with `fakescope export` (image detectors)")
        s.add_argument("--onnx", help="the .onnx file for --backend onnx (default: MODEL/model.onnx)")
        s.add_argument("--faces", choices=["auto", "on", "off"], **d(I, "faces"),
                       help="face crops: auto follows the checkpoint's face stage (the one its training data "
                            "were cropped with)")
        s.add_argument("--num-frames", type=int, **d(I, "num_frames"), help="frames sampled per video "
                                                                            "(image detectors)")
        s.add_argument("--max-clips", type=int, **d(I, "max_clips"), help="clips scored per video (clip detectors)")
        s.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
        s.add_argument("--no-provenance", dest="provenance", action="store_false",
                       help="do not read C2PA manifests and generator metadata into the records' provenance")
        s.add_argument("--weights-file", help="a pretrained name's official weights file, downloaded by hand "
                                              "(checked like a download)")
        pixel_budget(s)


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

    s = sub.add_parser("export", help="export an image detector to ONNX, checked against PyTorch",
                       description="Export a checkpoint to ONNX (input: float pixels 0..255 [B, 3, S, S], "
                                   "output: P(fake) [B]) and check it against PyTorch on random inputs (max "
                                   "absolute difference at most 1e-4). The checkpoint config is copied beside it.")
    s.add_argument("checkpoint")
    s.add_argument("--format", choices=["onnx"], default="onnx")
    s.add_argument("-o", "--out", help="the .onnx file (default: CHECKPOINT/model.onnx)")
    s.add_argument("--opset", type=int, default=18)
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("serve", help="REST service and web page for a detector (FastAPI on uvicorn)",
                       description="Serve a detector: POST /v1/detect (multipart upload 'file': an image or a "
                                   "video) returns the record, GET /healthz, GET / is a web page. Binds "
                                   "127.0.0.1 unless told otherwise; uploads are decoded and scored in worker "
                                   "processes, each with the model loaded once. Requests must name an allowed "
                                   "host (Host header); listening on anything but loopback needs --api-key-file "
                                   "or an explicit --no-auth.")
    s.add_argument("model", help="checkpoint folder, pretrained name, hf-hub:user/name[@revision] or .onnx file")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s, this machine only)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--allowed-hosts", nargs="+", default=[], metavar="NAME",
                   help="host names (Host header) to answer besides 127.0.0.1, localhost, [::1] and --host; others "
                        "get a JSON 400 (a guard against DNS rebinding); '*' answers any (behind a proxy that checks)")
    s.add_argument("--api-key-file", metavar="FILE",
                   help="require the key in FILE (its first line, at least 16 characters) as 'Authorization: "
                        "Bearer KEY' on every request but GET / and GET /healthz (JSON 401 otherwise); the web page "
                        "asks for it. Needed when --host is not loopback, unless --no-auth")
    s.add_argument("--no-auth", action="store_true",
                   help="serve on a non-loopback --host without an API key (e.g. behind a proxy that authenticates)")
    s.add_argument("--max-upload-mb", type=float, **d(S, "max_upload_mb"), help="larger uploads get 413")
    s.add_argument("--workers", type=int, **d(S, "workers"),
                   help="worker processes, each scoring one upload at a time with its own copy of the model "
                        "(memory: a few hundred MB each plus the model)")
    s.add_argument("--queue", type=int, **d(S, "queue"),
                   help="requests waiting (or uploading) beyond those being scored; more get a JSON 503")
    s.add_argument("--timeout", type=float, **d(S, "timeout_s"),
                   help="seconds to read an upload (then 408), and again to score it, waiting in the queue "
                        "included (then 504: a worker still at work is killed and replaced)")
    s.add_argument("--max-connections", type=int, **d(S, "max_connections"),
                   help="open connections, idle ones included; more get a JSON 503 with Retry-After")
    s.add_argument("--header-timeout", type=float, **d(S, "header_timeout_s"),
                   help="seconds for a request's headers to arrive before the connection is closed")
    s.add_argument("--idle-timeout", type=float, **d(S, "idle_timeout_s"),
                   help="longest pause, in seconds, while an upload arrives before the connection is closed")
    inference_options(s)
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("models", help="list registered detectors, or (--pretrained) released weights by name")
    s.add_argument("pattern", nargs="?", default="*")
    s.add_argument("--modality", choices=["image", "clip"])
    s.add_argument("--pretrained", action="store_true",
                   help="list the pretrained detectors (ARCH.TAG): source, licence, training data")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("push", help="upload a checkpoint folder to the Hugging Face Hub",
                       description="Upload a checkpoint folder (config.json, model.safetensors, README.md: the model "
                                   "card becomes the repository's README) to a Hub model repository; load it "
                                   "anywhere with -m hf-hub:USER/NAME.")
    s.add_argument("checkpoint")
    s.add_argument("--repo", required=True, help="user/name")
    s.add_argument("--private", action="store_true")
    s.add_argument("--token", help="a Hugging Face token (default: the one huggingface_hub has saved)")
    s.set_defaults(func=cmd_push)

    s = sub.add_parser("config", help="print a config after layering and overrides (validates it)")
    s.add_argument("config")
    s.add_argument("overrides", nargs="*", metavar="key=value")
    s.set_defaults(func=cmd_config)

    s = sub.add_parser("quickstart", help="synthetic benchmark -> train -> cross-generator evaluation",
                       allow_abbrev=False,
                       description="The main job on the built-in synthetic benchmark: generate it (or reuse it), train "
                                   "a small NPR on one generator family, evaluate on all five. Everything goes under "
                                   "--out: the benchmark in OUT/data/synth (unless --data says where), the run in "
                                   "OUT/runs/quickstart.")
    s.add_argument("--out", default=".", help="folder for everything the job writes")
    s.add_argument("--data", help="where the benchmark is (or will be) generated (default: OUT/data/synth)")
    s.add_argument("--config", **d(run_quickstart, "config"))
    s.add_argument("overrides", nargs="*", metavar="key=value")
    s.set_defaults(func=cmd_quickstart)
    for command in sub.choices.values():  # every option's help ends with its default
        command.formatter_class = _HelpFormatter
    return p


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written; each option's default (where it has one) after its help."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, [], (), argparse.SUPPRESS) and action.option_strings and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text

