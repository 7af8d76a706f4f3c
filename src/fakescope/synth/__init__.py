"""The built-in synthetic benchmark: real crops of shipped photos, fakes from several generator families.

Generated offline and deterministically from a seed; nothing is downloaded.

Real images
    Crops (random position, scale and flip) of natural photos that installed
    packages ship: scikit-image's colour and grey photos, scikit-learn's two
    sample photos and matplotlib's ``grace_hopper.jpg``, plus procedurally
    generated dead-leaves images (occluding discs with power-law sizes, camera
    blur, sensor noise and JPEG), which share natural images' statistics.
    Every photo belongs to exactly one of train / val / test, so no test crop
    comes from a photo seen in training.

Fake images
    Each generator family keeps an image's content but re-synthesises it,
    leaving its own fingerprint, the way real generators do:

    * ``tconv``: content at 1/4 resolution decoded by two stride-2 transposed
      convolutions with random weights (the checkerboard spectrum of GAN decoders);
    * ``nearest``: nearest-neighbour upsampling then a random 3x3 convolution;
    * ``bilinear``: bilinear upsampling (one stage, 1/2 resolution) then a random convolution;
    * ``pixelshuffle``: sub-pixel convolution (a random conv to 4x channels, then pixel shuffle);
    * ``diffusion``: an SDEdit-style DDIM loop: the image is noised, then
      iteratively denoised by a fixed random denoiser (smoothing plus a random conv net).

    Every family adds a random-conv texture driven by fresh noise, so no two
    fakes share a pattern exactly.

Videos
    A slow, smooth camera path (pan and zoom) over a photo, with per-frame sensor
    noise, and a face-sized region re-synthesised by the ``bilinear`` generator.
    Fake: the region is re-synthesised independently in every frame (fresh
    texture noise and a fresh colour shift each frame), so it flickers in time,
    the temporal inconsistency of frame-by-frame face swapping. Real (the
    default, ``video_reals="consistent"``): the same generator with one noise
    field and one colour shift for the whole video, so the region changes only
    as the content under it does. Any single frame of a real video is thus drawn
    from the same distribution as a frame of a fake: the classes differ only in
    time, and a frame-level detector stays near chance. ``video_reals="untouched"``
    gives the earlier benchmark, whose real videos have no re-synthesised region
    (the fakes then also carry the generator's spatial fingerprint and, in grey
    photos, colour). ``camera_motion`` scales the pan and zoom (1.0 was the
    earlier default, 0.25 now: at 1.0 the camera moves by up to 1.6 px per frame,
    which makes every textured pixel change about as much as the flicker).

Layout (ForenSynths)::

    out/train/<category>/0_real|1_fake/*.png   categories: photo, texture
    out/val/<category>/0_real|1_fake/*.png
    out/test/<generator>/0_real|1_fake/*.png   one folder per generator family
    out/videos/<split>/0_real|1_fake/<video>/frame_000.png
    out/videos/manifest.csv                    path,label,dataset,method,split,video_id,frame_index
    out/meta.json                              parameters, counts, photo splits
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from fakescope.data.layouts import SYNTHETIC_MARK
from fakescope.data.manifest import atomic_write_text, csv_text, write_meta
from fakescope.errors import ConfigError
from fakescope.synth.generators import FAMILIES, Generator
from fakescope.synth.sources import (PHOTO_SPLITS, TEXTURE_SIZE, TEXTURES_PER_SPLIT, CropSampler, dead_leaves,
                                    load_photo)

VIDEO_REALS = ("consistent", "untouched")


# -------------------------------------------------------------------- writer
@dataclass
class SynthConfig:
    """Sizes and seeds of the synthetic benchmark (the defaults suit a 2-core CPU)."""

    out: str = "data/synth"
    seed: int = 0
    size: int = 64
    train_per_class: int = 2000
    val_per_class: int = 300
    test_per_class: int = 300
    train_generator: str = "tconv"
    test_generators: tuple[str, ...] = FAMILIES
    texture_fraction: float = 0.25
    videos_per_class: dict[str, int] = field(default_factory=lambda: {"train": 40, "val": 10, "test": 20})
    frames: int = 16
    camera_motion: float = 0.25
    flicker: float = 1.0
    fingerprint: float = 0.04
    texture: float = 0.06
    video_reals: str = "consistent"

    def validate(self) -> None:
        if self.size % 4 or self.size < 16:
            raise ConfigError(f"synth: size must be a multiple of 4 and at least 16, got {self.size}")
        for fam in (self.train_generator, *self.test_generators):
            if fam not in FAMILIES:
                raise ConfigError(f"synth: unknown generator family '{fam}' (known: {', '.join(FAMILIES)})")
        if not 0 <= self.texture_fraction <= 1:
            raise ConfigError("synth: texture_fraction must be between 0 and 1")
        if self.video_reals not in VIDEO_REALS:
            raise ConfigError(f"synth: video_reals must be one of {', '.join(VIDEO_REALS)}, got '{self.video_reals}'")


def _family_seed(seed: int, family: str) -> int:
    return seed * 1000 + FAMILIES.index(family) + 1


def _split_pools(seed: int) -> dict[str, dict[str, list[np.ndarray]]]:
    pools: dict[str, dict[str, list[np.ndarray]]] = {}
    for i, split in enumerate(("train", "val", "test")):
        rng = np.random.default_rng([seed, 7, i])
        pools[split] = {
            "photo": [load_photo(n) for n in PHOTO_SPLITS[split]],
            "texture": [dead_leaves(TEXTURE_SIZE, rng) for _ in range(TEXTURES_PER_SPLIT[split])],
        }
    return pools


def _to_tensor(batch: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float() / 255.0


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _save_png(arr: np.ndarray, path: Path) -> None:
    Image.fromarray(arr).save(path, format="PNG", compress_level=3)


def _write_pairs(out_dir: Path, n: int, sampler: CropSampler, gen: Generator, g: torch.Generator,
                 batch: int = 64) -> None:
    real_dir, fake_dir = out_dir / "0_real", out_dir / "1_fake"
    real_dir.mkdir(parents=True, exist_ok=True)
    fake_dir.mkdir(parents=True, exist_ok=True)
    for start in range(0, n, batch):
        m = min(batch, n - start)
        for j in range(m):
            _save_png(sampler.sample(), real_dir / f"{start + j:05d}.png")
        content = _to_tensor([sampler.sample() for _ in range(m)])
        for j, arr in enumerate(_to_uint8(gen(content, g))):
            _save_png(arr, fake_dir / f"{start + j:05d}.png")


def _split_counts(n: int, texture_fraction: float) -> dict[str, int]:
    n_tex = int(round(n * texture_fraction))
    return {"photo": n - n_tex, "texture": n_tex}


def _camera_path(img: Image.Image, size: int, frames: int, rng: np.random.Generator,
                 motion: float = 1.0) -> list[np.ndarray]:
    """A smooth pan-and-zoom over ``img`` (``motion`` scales it; 0 is a still camera): crops resized to ``size``."""
    w, h = img.size
    side0 = rng.uniform(1.2 * size, max(1.25 * size, 0.7 * min(w, h)))
    zoom = rng.uniform(-0.15, 0.15) * motion
    vel = rng.uniform(-0.4, 0.4, 2) * side0 / frames * motion
    cx, cy = rng.uniform(side0 / 2, w - side0 / 2), rng.uniform(side0 / 2, h - side0 / 2)
    out = []
    for t in range(frames):
        side = side0 * (1 + zoom * t / max(frames - 1, 1))
        x = np.clip(cx + vel[0] * t, side / 2, w - side / 2)
        y = np.clip(cy + vel[1] * t, side / 2, h - side / 2)
        box = (x - side / 2, y - side / 2, x + side / 2, y + side / 2)
        out.append(np.asarray(img.resize((size, size), Image.Resampling.LANCZOS, box=box)))
    return out


def _write_videos(root: Path, split: str, n: int, images: list[np.ndarray], cfg: SynthConfig,
                  rows: list[dict], seed: int) -> None:
    rng = np.random.default_rng([seed, 11, ["train", "val", "test"].index(split)])
    g = torch.Generator().manual_seed(seed * 7919 + len(split))
    gen = Generator("bilinear", _family_seed(seed, "bilinear") + 500, fingerprint=cfg.fingerprint,
                    texture=2 * cfg.texture * cfg.flicker)
    pil = [Image.fromarray(a) for a in images]
    size = cfg.size
    consistent = cfg.video_reals == "consistent"
    yy, xx = np.mgrid[0:size, 0:size]
    for label, label_dir in ((0, "0_real"), (1, "1_fake")):
        for v in range(n):
            vid = f"v{v:04d}"
            vdir = root / split / label_dir / vid
            vdir.mkdir(parents=True, exist_ok=True)
            frames = np.stack(_camera_path(pil[rng.integers(len(pil))], size, cfg.frames, rng,
                                           cfg.camera_motion)).astype(np.float32)
            frames += rng.normal(0, 1.5, frames.shape)  # per-frame sensor noise, both classes
            if label == 1 or consistent:
                # a face-sized region re-synthesised by the generator: in a fake, independently in every
                # frame (temporal flicker); in a consistent real, with its noise and colour held fixed
                r = rng.uniform(0.18, 0.25) * size
                cx, cy = rng.uniform(0.4, 0.6, 2) * size
                dist = np.sqrt(((xx - cx) / r) ** 2 + ((yy - cy) / (1.2 * r)) ** 2)
                mask = np.clip((1.0 - dist) * 4.0, 0.0, 1.0)[None, :, :, None]  # feathered ellipse
                content = _to_tensor(list(np.clip(frames, 0, 255).astype(np.uint8)))
                if label == 1:
                    synth = _to_uint8(gen(content, g)).astype(np.float32)
                    # per-frame colour drift of the swapped region
                    synth += rng.normal(0, 4.0 * cfg.flicker, (cfg.frames, 1, 1, 3))
                else:
                    # one noise field for every frame: the region changes only as the content under it does
                    noise = [torch.randn(shape[1:], generator=g).expand(shape)
                             for shape in gen.noise_shape(cfg.frames, size)]
                    synth = _to_uint8(gen(content, g, noise=noise)).astype(np.float32)
                    synth += rng.normal(0, 4.0 * cfg.flicker, (1, 1, 1, 3))  # one colour shift for the whole video
                frames = mask * synth + (1 - mask) * frames
            for t, frame in enumerate(np.clip(frames + 0.5, 0, 255).astype(np.uint8)):
                path = vdir / f"frame_{t:03d}.png"
                _save_png(frame, path)
                rows.append({"path": str(path.relative_to(root)), "label": label, "dataset": "synth-videos",
                             "method": "original" if label == 0 else "flicker", "split": split,
                             "video_id": f"{split}/{label_dir}/{vid}", "frame_index": t})


def generate(cfg: SynthConfig, log: Callable[[str], None] = print, overwrite: bool = False) -> Path:
    """Write the benchmark to ``cfg.out``; returns the folder. Deterministic for a given config."""
    cfg.validate()
    out = Path(cfg.out)
    if (out / "meta.json").exists():
        meta = json.loads((out / "meta.json").read_text())
        if meta.get("config") == _jsonable(cfg) and not overwrite:
            log(f"synthetic benchmark already present at {out} (same parameters); reusing it")
            return out
        if not overwrite:
            raise ConfigError(f"{out}: holds a synthetic benchmark made with other parameters; "
                              "pass --overwrite or choose another --out")
    if out.exists() and overwrite:
        shutil.rmtree(out)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    t0 = time.time()
    torch_threads = torch.get_num_threads()
    pools = _split_pools(cfg.seed)
    counts: dict[str, int] = {}

    def sampler(split: str, kind: str, salt: int) -> CropSampler:
        return CropSampler(pools[split][kind], cfg.size, np.random.default_rng([cfg.seed, salt]))

    gens = {f: Generator(f, _family_seed(cfg.seed, f), cfg.fingerprint, cfg.texture) for f in FAMILIES}
    for split, n in (("train", cfg.train_per_class), ("val", cfg.val_per_class)):
        for kind, k in _split_counts(n, cfg.texture_fraction).items():
            if k == 0:
                continue
            salt = 100 + 10 * ["train", "val"].index(split) + ["photo", "texture"].index(kind)
            g = torch.Generator().manual_seed(cfg.seed * 31 + salt)
            _write_pairs(tmp / split / kind, k, sampler(split, kind, salt), gens[cfg.train_generator], g)
            counts[f"{split}/{kind}"] = 2 * k
        log(f"  {split}: {2 * n} images ({cfg.train_generator} fakes)")
    for i, fam in enumerate(cfg.test_generators):
        test_pool = pools["test"]["photo"] + pools["test"]["texture"]
        s = CropSampler(test_pool, cfg.size, np.random.default_rng([cfg.seed, 200 + i]))
        g = torch.Generator().manual_seed(cfg.seed * 31 + 200 + i)
        _write_pairs(tmp / "test" / fam, cfg.test_per_class, s, gens[fam], g)
        counts[f"test/{fam}"] = 2 * cfg.test_per_class
    log(f"  test: {len(cfg.test_generators)} generators x {2 * cfg.test_per_class} images")

    rows: list[dict] = []
    for split, n in cfg.videos_per_class.items():
        if n > 0:
            _write_videos(tmp / "videos", split, n, pools[split]["photo"], cfg, rows, cfg.seed)
            counts[f"videos/{split}"] = 2 * n
    if rows:
        atomic_write_text(tmp / "videos" / "manifest.csv", csv_text(list(rows[0]), rows))
        write_meta(tmp / "videos" / "manifest.csv", None)  # whole frames: no face stage
        log(f"  videos: {sum(cfg.videos_per_class.values()) * 2} clips of {cfg.frames} frames")

    meta = {
        SYNTHETIC_MARK: True,  # models trained only on this data are demonstrations (data.layouts)
        "config": _jsonable(cfg),
        "counts": counts,
        "photo_splits": {k: list(v) for k, v in PHOTO_SPLITS.items()},
        "textures_per_split": TEXTURES_PER_SPLIT,
        "families": list(FAMILIES),
        "seconds": round(time.time() - t0, 1),
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    torch.set_num_threads(torch_threads)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)  # the finished benchmark appears at once; an interrupted run leaves only *.partial
    log(f"synthetic benchmark written to {out} in {meta['seconds']} s")
    return out


def _jsonable(cfg: SynthConfig) -> dict:
    return json.loads(json.dumps(asdict(cfg)))
