"""``fakescope synth``: the built-in synthetic benchmark."""

from __future__ import annotations

import argparse

from fakescope.cli.options import default, default_of, echo


def add_synth_parser(sub) -> None:
    from fakescope.synth import FAMILIES, VIDEO_REALS, SynthConfig as Y

    s = sub.add_parser("synth", help="generate the built-in synthetic benchmark (offline, deterministic)")
    for name, text in (("out", "output folder"), ("seed", "random seed"), ("size", "image side in pixels "
                       "(multiple of 4)"), ("train_per_class", "training images per class"),
                       ("val_per_class", "validation images per class"), ("test_per_class", "test images per "
                       "class and generator"), ("frames", "frames per video"), ("camera_motion", "videos: camera "
                       "pan and zoom (0: still)")):
        s.add_argument("--" + name.replace("_", "-"), type=type(default_of(Y, name)), **default(Y, name), help=text)
    s.add_argument("--train-generator", choices=FAMILIES, **default(Y, "train_generator"),
                   help="generator family of the training fakes")
    s.add_argument("--videos-per-class", type=int, default=default_of(Y, "videos_per_class")["train"],
                   help="training videos per class (0: no videos); validation and test get 1/4 and 1/2 of it")
    s.add_argument("--video-reals", choices=VIDEO_REALS, **default(Y, "video_reals"),
                   help="videos: the real videos' face region re-synthesised with noise fixed over the video "
                        "(consistent: the classes differ only in time) or left as filmed (untouched)")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=cmd_synth)


def cmd_synth(args: argparse.Namespace) -> int:
    from fakescope.synth import SynthConfig, generate

    n = args.videos_per_class
    cfg = SynthConfig(out=args.out, seed=args.seed, size=args.size, train_per_class=args.train_per_class,
                      val_per_class=args.val_per_class, test_per_class=args.test_per_class,
                      train_generator=args.train_generator,
                      videos_per_class={"train": n, "val": max(n // 4, 1), "test": max(n // 2, 1)} if n else
                      {"train": 0, "val": 0, "test": 0},
                      frames=args.frames, camera_motion=args.camera_motion, video_reals=args.video_reals)
    generate(cfg, log=echo, overwrite=args.overwrite)
    return 0
