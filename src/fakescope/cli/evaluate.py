"""``fakescope eval`` and ``calibrate``: a checkpoint scored on labelled data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fakescope.cli.options import default, distributed_options, echo, pixel_budget


def add_eval_parser(sub) -> None:
    from fakescope.eval.evaluate import evaluate
    from fakescope.eval.tables import list_tables

    s = sub.add_parser("eval", help="evaluate a checkpoint on test sets and write a report",
                       description="Evaluate a checkpoint folder (or a training run folder) on one or more test "
                                   "sets. A --data path with a glob ('test/*') gives one test set per match.")
    s.add_argument("checkpoint", help="checkpoint folder, pretrained name (fakescope models --pretrained), "
                                      "hf-hub:user/name, a fusion folder (fakescope fuse), a .onnx file, or "
                                      "py:my_detector.py (a file exposing predict(path) -> float)")
    s.add_argument("--data", nargs="+", required=True, metavar="PATH",
                   help="ForenSynths-style folders or manifest CSVs")
    s.add_argument("--out", help="report folder (default: CHECKPOINT/eval, or eval/NAME for a pretrained name)")
    s.add_argument("--weights-file", help="a pretrained name's official weights file, downloaded by hand")
    s.add_argument("--robustness", action="store_true", help="also sweep JPEG, blur, downscaling and noise")
    s.add_argument("--batch-size", type=int, **default(evaluate, "batch_size"))
    s.add_argument("--num-workers", type=int, **default(evaluate, "num_workers"))
    s.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    s.add_argument("--threshold", type=float, **default(evaluate, "threshold"))
    s.add_argument("--overwrite", action="store_true",
                   help="score every set again (default: the scores a stopped run of this command wrote are kept)")
    distributed_options(s)
    pixel_budget(s)
    s.add_argument("--table", nargs="+", metavar="NAME", choices=list_tables(),
                   help=f"also lay the results out as a paper's table beside its printed numbers: "
                        f"{', '.join(list_tables())}")
    s.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from fakescope.config import RobustnessConfig
    from fakescope.eval.evaluate import evaluate
    from fakescope.eval.report import markdown_table, metrics_table
    from fakescope.inference.fusion import is_fusion
    from fakescope.utils.distributed import launch
    from fakescope.utils.memory import return_freed_buffers

    return_freed_buffers()

    out = Path(args.out) if args.out else (Path(args.checkpoint) / "eval" if Path(args.checkpoint).exists()
                                            else Path("eval") / args.checkpoint.replace("/", "_").replace(":", "_"))
    if args.checkpoint.startswith("py:") or args.checkpoint.endswith(".onnx") or is_fusion(args.checkpoint):
        from fakescope.fuse import evaluate_scorer

        results = evaluate_scorer(args.checkpoint, args.data, out, threshold=args.threshold,
                                  batch_size=args.batch_size, echo=echo)
        echo(markdown_table(*metrics_table(results)))
        return 1 if results.get("failed_sets") else 0
    ranks = launch(args.devices, args.num_nodes, args.device)
    results = evaluate(args.checkpoint, args.data, out, batch_size=args.batch_size, num_workers=args.num_workers,
                       device=ranks.device, threshold=args.threshold,
                       robustness=RobustnessConfig() if args.robustness else None, echo=echo,
                       weights_file=args.weights_file, ranks=ranks, overwrite=args.overwrite)
    if not ranks.main:
        return 0
    echo(markdown_table(*metrics_table(results)))
    if args.table:
        from fakescope.eval.tables import get_table, write_table

        for name in args.table:
            path = write_table(get_table(name), results["sets"], out, ours=results["model"])
            echo(path.read_text())
    for name, err in (results.get("failed_sets") or {}).items():
        print(f"fakescope eval: failed: {name}: {err}", file=sys.stderr)
    return 1 if results.get("failed_sets") else 0


def add_calibrate_parser(sub) -> None:
    from fakescope.eval.evaluate import evaluate

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
    s.add_argument("--batch-size", type=int, **default(evaluate, "batch_size"))
    s.add_argument("--num-workers", type=int, **default(evaluate, "num_workers"))
    s.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    pixel_budget(s)
    s.set_defaults(func=cmd_calibrate)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from fakescope.eval.calibrate import calibrate_checkpoint

    calibrate_checkpoint(args.checkpoint, args.data, batch_size=args.batch_size, num_workers=args.num_workers,
                         device=args.device, name=args.name, default_point=args.default_operating_point, echo=echo)
    echo(f"detect and serve now use it: fakescope detect FILES -m {args.checkpoint} (or --operating-point fpr1, "
         "fpr5, eer, or a number)")
    return 0
