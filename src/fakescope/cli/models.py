"""``fakescope models`` and ``push``: the registered detectors and released weights, and publishing one."""

from __future__ import annotations

import argparse
import json

from fakescope.cli.options import echo


def add_models_parser(sub) -> None:
    s = sub.add_parser("models", help="list registered detectors, or (--pretrained) released weights by name")
    s.add_argument("pattern", nargs="?", default="*")
    s.add_argument("--modality", choices=["image", "clip"])
    s.add_argument("--pretrained", action="store_true",
                   help="list the pretrained detectors (ARCH.TAG): source, licence, training data")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_models)


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
        echo(json.dumps(rows, indent=2))
    else:
        for r in rows:
            echo(f"{r['name']:<28} {r['modality']:<6} {r['input_size']:>4}px {r['policy']:<12} {r['description']}")
    return 0


def _list_pretrained(args: argparse.Namespace) -> int:
    from fakescope.zoo.pretrained import list_pretrained, pretrained_entry

    rows = []
    for name in list_pretrained(args.pattern if args.pattern != "*" else "*"):
        e = pretrained_entry(name)
        rows.append({"name": name, "arch": e.arch, "paper": e.paper, "trained_on": e.trained_on,
                     "published": e.published, "licence": e.licence, "source": e.source,
                     "url": e.file.urls[0] if e.file else None, "sha256": e.file.sha256 if e.file else None})
    if args.json:
        echo(json.dumps(rows, indent=2))
    else:
        for r in rows:
            echo(f"{r['name']:<44} {r['licence']:<14} {r['trained_on']}")
            echo(f"{'':<44} {r['paper']}; {r['source']}")
    return 0


def add_push_parser(sub) -> None:
    s = sub.add_parser("push", help="upload a checkpoint folder to the Hugging Face Hub",
                       description="Upload a checkpoint folder (config.json, model.safetensors, README.md: the model "
                                   "card becomes the repository's README) to a Hub model repository; load it "
                                   "anywhere with -m hf-hub:USER/NAME.")
    s.add_argument("checkpoint")
    s.add_argument("--repo", required=True, help="user/name")
    s.add_argument("--private", action="store_true")
    s.add_argument("--token", help="a Hugging Face token (default: the one huggingface_hub has saved)")
    s.set_defaults(func=cmd_push)


def cmd_push(args: argparse.Namespace) -> int:
    from fakescope.zoo.checkpoint import resolve
    from fakescope.zoo.hub import push_checkpoint

    url = push_checkpoint(resolve(args.checkpoint), args.repo, private=args.private, token=args.token)
    echo(f"pushed {args.checkpoint} to {args.repo}: {url}")
    echo(f"load it with: fakescope detect FILE -m hf-hub:{args.repo}")
    return 0
