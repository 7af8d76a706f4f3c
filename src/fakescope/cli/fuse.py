"""``fakescope fuse``: one model from several detectors and the files' own evidence."""

from __future__ import annotations

import argparse

from fakescope.cli.options import default, echo


def add_fuse_parser(sub) -> None:
    from fakescope.fuse import fuse
    from fakescope.inference.signals import SIGNALS

    s = sub.add_parser("fuse", help="fit one verdict from several detectors, watermarks and provenance",
                       description="Score labelled data (one test set per generator: ROOT/<generator>/0_real|1_fake, "
                                   "or manifests whose 'method' names it) with every member, read each file's "
                                   "signals, and fit a logistic-regression stacker, judged with each generator held "
                                   "out in turn. OUT is then a model: -m OUT in detect, eval and serve.")
    s.add_argument("-m", "--member", action="append", required=True, metavar="MODEL", dest="members",
                   help="a member (repeat): a checkpoint folder, a released name, hf-hub:user/name, a .onnx file, "
                        "or py:my_detector.py (a file exposing predict(path) -> float)")
    s.add_argument("--name", action="append", dest="names", metavar="NAME",
                   help="the members' names in records, in -m order (default: from each -m)")
    s.add_argument("--data", nargs="+", required=True, metavar="PATH",
                   help="labelled test sets, one per generator (a glob such as 'test/*' gives one per match)")
    s.add_argument("--out", required=True, help="the fusion folder to write")
    s.add_argument("--signals", nargs="*", choices=SIGNALS, default=list(SIGNALS),
                   help="the file's own evidence to weigh (none: --signals with no value)")
    s.add_argument("--batch-size", type=int, **default(fuse, "batch_size"))
    s.add_argument("-C", type=float, dest="C", **default(fuse, "C"), help="inverse L2 strength of the stacker")
    s.set_defaults(func=cmd_fuse)


def cmd_fuse(args: argparse.Namespace) -> int:
    from fakescope.eval.stacking import logo_markdown
    from fakescope.fuse import fuse

    report = fuse(args.members, args.data, args.out, signals=args.signals, names=args.names,
                  batch_size=args.batch_size, C=args.C, echo=echo)
    echo(logo_markdown(report["leave_one_generator_out"], list(report["members"])))
    return 0
