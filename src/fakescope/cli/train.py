"""``fakescope train``, ``config`` and ``quickstart``: experiments from a YAML config."""

from __future__ import annotations

import argparse
from pathlib import Path

from fakescope.cli.options import default, echo


def add_train_parser(sub) -> None:
    s = sub.add_parser("train", help="train a detector from a YAML config",
                       description="Train a detector. CONFIG is a YAML file (or the name of a packaged config such "
                                   "as 'quickstart'); key=value pairs override it, e.g. optim.lr=1e-3. The test "
                                   "sets (data.test) are evaluated after training unless eval.after_training=false.")
    s.add_argument("config")
    s.add_argument("overrides", nargs="*", metavar="key=value")
    s.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    s.add_argument("--overwrite", action="store_true", help="start again in a run folder that holds a run")
    s.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from fakescope.config import load_config
    from fakescope.workflows import run_experiment

    cfg = load_config(args.config, args.overrides)
    result, evaluation = run_experiment(cfg, resume=args.resume, overwrite=args.overwrite, echo=echo)
    if result.checkpoint is not None:
        echo(f"run folder: {result.run_dir}")
        if evaluation:
            echo(f"test report: {result.run_dir / 'eval' / 'report.html'}")
    return 0


def add_config_parser(sub) -> None:
    s = sub.add_parser("config", help="print a config after layering and overrides (validates it)")
    s.add_argument("config")
    s.add_argument("overrides", nargs="*", metavar="key=value")
    s.set_defaults(func=cmd_config)


def cmd_config(args: argparse.Namespace) -> int:
    import yaml

    from fakescope.config import load_config

    cfg = load_config(args.config, args.overrides)
    echo(yaml.safe_dump(cfg.to_dict(), sort_keys=False).rstrip())
    return 0


def add_quickstart_parser(sub) -> None:
    from fakescope.workflows import run_quickstart

    s = sub.add_parser("quickstart", help="synthetic benchmark -> train -> cross-generator evaluation",
                       allow_abbrev=False,
                       description="The main job on the built-in synthetic benchmark: generate it (or reuse it), train "
                                   "a small NPR on one generator family, evaluate on all five. Everything goes under "
                                   "--out: the benchmark in OUT/data/synth (unless --data says where), the run in "
                                   "OUT/runs/quickstart.")
    s.add_argument("--out", default=".", help="folder for everything the job writes")
    s.add_argument("--data", help="where the benchmark is (or will be) generated (default: OUT/data/synth)")
    s.add_argument("--config", **default(run_quickstart, "config"))
    s.add_argument("overrides", nargs="*", metavar="key=value")
    s.set_defaults(func=cmd_quickstart)


def cmd_quickstart(args: argparse.Namespace) -> int:
    from fakescope.workflows import run_quickstart

    out = Path(args.out)
    run_quickstart(data_dir=args.data or str(out / "data" / "synth"), output_dir=str(out / "runs"),
                   config=args.config, overrides=args.overrides, echo=echo)
    return 0
