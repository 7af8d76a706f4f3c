"""What several subcommands share: option defaults taken from their owners, the option groups that recur, and
the help layout."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from typing import Any

from fakescope.errors import FakescopeError


def echo(msg: str) -> None:
    print(msg, flush=True)


def default_of(cls, name: str) -> Any:
    """The default of option ``name`` as its owner declares it: a dataclass, a typed config or a function."""
    if callable(cls) and not isinstance(cls, type):
        return inspect.signature(cls).parameters[name].default
    if dataclasses.is_dataclass(cls):
        f = {f.name: f for f in dataclasses.fields(cls)}[name]
        return f.default_factory() if f.default is dataclasses.MISSING else f.default
    return cls.model_fields[name].get_default(call_default_factory=True)


def default(cls, name: str) -> dict[str, Any]:
    """``add_argument`` keywords: the declared default of ``cls``'s option ``name``."""
    return {"default": default_of(cls, name)}


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


def inference_options(s: argparse.ArgumentParser) -> None:
    """The options of ``detect`` and ``serve`` that set up the :class:`~fakescope.inference.Detector`."""
    from fakescope.inference import InferenceOptions as I

    s.add_argument("--threshold", type=float, help="label is fake when score >= threshold (score: P(fake), "
                                                        "calibrated where the checkpoint is; default: the "
                                                        "checkpoint's operating point, else 0.5)")
    s.add_argument("--operating-point", metavar="POINT",
                   help="fpr1, fpr5 or eer: the threshold a calibrated checkpoint chose on its validation data "
                        "(at 1%%/5%% false-positive rate, or the equal error rate; fakescope calibrate); "
                        "a number: a fixed threshold. Default: the checkpoint's own (fakescope calibrate "
                        "--default-operating-point), else 0.5")
    s.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    s.add_argument("--batch-size", type=int, **default(I, "batch_size"),
                   help="images, frames or clips per forward pass")
    s.add_argument("--backend", choices=["torch", "onnx"], default="torch",
                   help="onnx: onnxruntime on the model exported with `fakescope export` (image detectors)")
    s.add_argument("--onnx", help="the .onnx file for --backend onnx (default: MODEL/model.onnx)")
    s.add_argument("--faces", choices=["auto", "on", "off"], **default(I, "faces"),
                   help="face crops: auto follows the checkpoint's face stage (the one its training data "
                        "were cropped with)")
    s.add_argument("--num-frames", type=int, **default(I, "num_frames"), help="frames sampled per video "
                                                                               "(image detectors)")
    s.add_argument("--max-clips", type=int, **default(I, "max_clips"), help="clips scored per video (clip "
                                                                             "detectors)")
    s.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    s.add_argument("--no-provenance", dest="provenance", action="store_false",
                   help="do not read C2PA manifests and generator metadata into the records' provenance")
    s.add_argument("--weights-file", help="a pretrained name's official weights file, downloaded by hand "
                                          "(checked like a download)")
    pixel_budget(s)


def inference_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """What :func:`inference_options` parsed, as keywords of ``Detector.from_pretrained``."""
    return {"threshold": args.threshold, "operating_point": args.operating_point, "provenance": args.provenance,
            "batch_size": args.batch_size,
            "faces": args.faces,
            "num_frames": args.num_frames, "max_clips": args.max_clips}


def set_threads(threads: int) -> None:
    if threads < 0:
        raise FakescopeError(f"--threads must be 0 (torch's default) or more, got {threads}")
    if threads:
        import torch

        torch.set_num_threads(threads)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written; each option's default (where it has one) after its help."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (action.default not in (None, False, [], (), argparse.SUPPRESS) and action.option_strings
                and "%(default)" not in text):
            text += " (default: %(default)s)"
        return text
