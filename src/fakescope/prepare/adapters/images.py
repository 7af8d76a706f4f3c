"""Adapters of the AI-generated image benchmarks: ForenSynths, UniversalFakeDetect's diffusion set, DIRE."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from fakescope.data.layouts import label_folders
from fakescope.errors import DataError
from fakescope.media.image import is_image_file
from fakescope.prepare.adapters import SPLIT_ALIASES, SPLITS, AdapterOptions, Item, files, register_adapter


@register_adapter("forensynths", "ForenSynths / CNNDetection (train|val/<class>/0_real|1_fake, "
                                 "test/<generator>/[<class>/]0_real|1_fake)")
def forensynths(root: Path, opt: AdapterOptions) -> Iterator[Item]:
    found = False
    for split in SPLITS:
        base = root / split
        if not base.is_dir():
            continue
        found = True
        for folder, label in label_folders(base):
            rel = folder.parent.relative_to(base).parts
            # train/val hold ProGAN images by object class; test holds one folder per generator
            method = "progan" if split in ("train", "val") else (rel[0] if rel else "")
            for f in files(folder, is_image_file):
                yield Item(str(f), label, "forensynths", method, split)
    if not found:
        raise DataError(f"{root}: no train/, val/ or test/ folder (ForenSynths layout)")


UFD_REAL_PAIRS = {"guided": "imagenet"}  # every other generator pairs with laion


@register_adapter("ufd", "UniversalFakeDetect diffusion test set (<generator>/1_fake; real images in "
                         "laion/0_real and imagenet/0_real)")
def ufd(root: Path, opt: AdapterOptions) -> Iterator[Item]:
    gens = sorted(p.parent.name for p in root.glob("*/1_fake") if p.is_dir())
    if not gens:
        raise DataError(f"{root}: no <generator>/1_fake folders (UniversalFakeDetect diffusion_datasets layout)")
    for gen in gens:
        real_name = gen if (root / gen / "0_real").is_dir() else UFD_REAL_PAIRS.get(gen, "laion")
        real = root / real_name / "0_real"
        if not real.is_dir():
            raise DataError(f"{real}: the real images that {gen} is tested against are missing")
        for f in files(real, is_image_file):
            yield Item(str(f), 0, "ufd", gen, "test")
        for f in files(root / gen / "1_fake", is_image_file):
            yield Item(str(f), 1, "ufd", gen, "test")


@register_adapter("dire", "DIRE / DiffusionForensics ([images|recons|dire]/<split>/<domain>/<generator|real>)")
def dire(root: Path, opt: AdapterOptions) -> Iterator[Item]:
    base = root / opt.variant if (root / opt.variant).is_dir() else root
    splits = [s for s in sorted(base.iterdir()) if s.is_dir() and s.name.lower() in SPLIT_ALIASES] \
        if base.is_dir() else []
    if not splits:
        raise DataError(f"{base}: no train/val/test folders (DiffusionForensics layout "
                        "<images|recons|dire>/<split>/<domain>/<generator|real>)")
    for split_dir in splits:
        split = SPLIT_ALIASES[split_dir.name.lower()]
        for domain in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            gens = sorted(p for p in domain.iterdir() if p.is_dir() and p.name != "real")
            real = domain / "real"
            reals = files(real, is_image_file) if real.is_dir() else []
            for gen in gens:
                method = f"{domain.name}/{gen.name}"
                for f in reals:  # each generator is tested against its domain's real images
                    yield Item(str(f), 0, "dire", method, split)
                for f in files(gen, is_image_file):
                    yield Item(str(f), 1, "dire", method, split)

