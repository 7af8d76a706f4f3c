"""The ``fakescope`` command: a thin layer over the library.

Each subcommand imports what it needs when it runs, so a missing optional
extra only affects the command that needs it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from fakescope import __version__
from fakescope.errors import FakescopeError
from fakescope.utils import console


def _echo(msg: str) -> None:
    print(msg, flush=True)


# ------------------------------------------------------------------ commands
def cmd_train(args: argparse.Namespace) -> int:
    from fakescope.config import load_config
    from fakescope.train.engine import train

    cfg = load_config(args.config, args.overrides)
    result = train(cfg, resume=args.resume, overwrite=args.overwrite)
    if result.checkpoint is not None:
        _echo(f"run folder: {result.run_dir}")
        if result.evaluation:
            _echo(f"test report: {result.run_dir / 'eval' / 'report.html'}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from fakescope.config import RobustnessConfig
    from fakescope.eval.evaluate import evaluate
    from fakescope.eval.report import markdown_table, metrics_table

    out = Path(args.out) if args.out else Path(args.checkpoint) / "eval"
    results = evaluate(args.checkpoint, args.data, out, batch_size=args.batch_size, num_workers=args.num_workers,
                       device=args.device, threshold=args.threshold,
                       robustness=RobustnessConfig() if args.robustness else None, echo=_echo)
    _echo(markdown_table(*metrics_table(results)))
    if args.table:
        from fakescope.eval.tables import get_table, write_table

        for name in args.table:
            path = write_table(get_table(name), results["sets"], out, ours=results["model"])
            _echo(path.read_text())
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from fakescope.data.synth import SynthConfig, generate

    cfg = SynthConfig(out=args.out, seed=args.seed, size=args.size, train_per_class=args.train_per_class,
                      val_per_class=args.val_per_class, test_per_class=args.test_per_class,
                      train_generator=args.train_generator,
                      videos_per_class={"train": args.videos_per_class, "val": max(args.videos_per_class // 4, 1),
                                        "test": max(args.videos_per_class // 2, 1)} if args.videos_per_class else
                      {"train": 0, "val": 0, "test": 0},
                      frames=args.frames)
    generate(cfg, log=_echo, overwrite=args.overwrite)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from fakescope.models import list_models, model_entry, resolve_model_config

    rows = []
    for name in list_models(args.pattern, args.modality):
        e = model_entry(name)
        pp = resolve_model_config(name).preprocess
        rows.append({"name": name, "modality": e.modality, "input_size": pp.input_size, "policy": pp.policy,
                     "description": e.description, "paper": e.paper})
    if args.json:
        _echo(json.dumps(rows, indent=2))
    else:
        for r in rows:
            _echo(f"{r['name']:<28} {r['modality']:<6} {r['input_size']:>4}px {r['policy']:<12} {r['description']}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    import yaml

    from fakescope.config import load_config

    cfg = load_config(args.config, args.overrides)
    _echo(yaml.safe_dump(cfg.to_dict(), sort_keys=False).rstrip())
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from fakescope.quickstart import run_quickstart

    run_quickstart(data_dir=args.data, output_dir=args.output_dir, config=args.config, overrides=args.overrides,
                   echo=_echo)
    return 0


# -------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fakescope",
        description="Generalizable deepfake and AI-generated image detection (SFCL-HCMF, FSSNet, SDR).",
    )
    p.add_argument("--version", action="version", version=f"fakescope {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser("train", help="train a detector from a YAML config",
                       description="Train a detector. CONFIG is a YAML file (or the name of a packaged config such "
                                   "as 'quickstart'); key=value pairs override it, e.g. optim.lr=1e-3.")
    s.add_argument("config")
    s.add_argument("overrides", nargs="*", metavar="key=value")
    s.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    s.add_argument("--overwrite", action="store_true", help="start again in a run folder that holds a run")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("eval", help="evaluate a checkpoint on test sets and write a report",
                       description="Evaluate a checkpoint folder (or a training run folder) on one or more test "
                                   "sets. A --data path with a glob ('test/*') gives one test set per match.")
    s.add_argument("checkpoint")
    s.add_argument("--data", nargs="+", required=True, metavar="PATH",
                   help="ForenSynths-style folders or manifest CSVs")
    s.add_argument("--out", help="report folder (default: CHECKPOINT/eval)")
    s.add_argument("--robustness", action="store_true", help="also sweep JPEG, blur, downscaling and noise")
    s.add_argument("--batch-size", type=int, default=64)
    s.add_argument("--num-workers", type=int, default=2)
    s.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    s.add_argument("--threshold", type=float, default=0.5)
    s.add_argument("--table", nargs="+", metavar="NAME",
                   help="also lay the results out as a paper's table beside its printed numbers")
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("synth", help="generate the built-in synthetic benchmark (offline, deterministic)")
    s.add_argument("--out", default="data/synth")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--size", type=int, default=64, help="image side in pixels (multiple of 4)")
    s.add_argument("--train-per-class", type=int, default=2000)
    s.add_argument("--val-per-class", type=int, default=300)
    s.add_argument("--test-per-class", type=int, default=300)
    s.add_argument("--train-generator", default="tconv", help="generator family of the training fakes")
    s.add_argument("--videos-per-class", type=int, default=40, help="training videos per class (0: no videos)")
    s.add_argument("--frames", type=int, default=16)
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=cmd_synth)

    s = sub.add_parser("models", help="list registered detectors")
    s.add_argument("pattern", nargs="?", default="*")
    s.add_argument("--modality", choices=["image", "clip"])
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("config", help="print a config after layering and overrides (validates it)")
    s.add_argument("config")
    s.add_argument("overrides", nargs="*", metavar="key=value")
    s.set_defaults(func=cmd_config)

    s = sub.add_parser("quickstart", help="synthetic benchmark -> train -> cross-generator evaluation")
    s.add_argument("--data", default="data/synth", help="where the benchmark is (or will be) generated")
    s.add_argument("--output-dir", default="runs")
    s.add_argument("--config", default="quickstart")
    s.add_argument("overrides", nargs="*", metavar="key=value")
    s.set_defaults(func=cmd_quickstart)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", force=True)
    console.VERBOSE = args.verbose
    try:
        return int(args.func(args) or 0)
    except FakescopeError as exc:
        print(f"fakescope: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fakescope: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
