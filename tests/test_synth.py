from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fakescope.data.datasets import scan_folder
from fakescope.synth import FAMILIES, PHOTO_SPLITS, Generator, SynthConfig, generate, load_photo
from fakescope.errors import ConfigError


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "meta.json":
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def small(out: Path, seed: int = 0, **kw) -> SynthConfig:
    base = dict(out=str(out), seed=seed, size=16, train_per_class=6, val_per_class=4, test_per_class=3,
                videos_per_class={"train": 1, "val": 1, "test": 1}, frames=3)
    base.update(kw)
    return SynthConfig(**base)


def test_layout_is_forensynths_like(tiny_synth):
    root = tiny_synth
    assert sorted(p.name for p in (root / "test").iterdir()) == sorted(FAMILIES)
    for fam in FAMILIES:
        samples = scan_folder(root / "test" / fam)
        assert sum(s.label == 0 for s in samples) == 16 and sum(s.label == 1 for s in samples) == 16
    train = scan_folder(root / "train")
    assert len(train) == 96 and {s.method for s in train} == {"photo", "texture"}
    meta = json.loads((root / "meta.json").read_text())
    assert meta["counts"]["test/tconv"] == 32
    assert not any(p.name.endswith(".partial") for p in root.parent.iterdir())


def test_photo_splits_are_disjoint():
    seen: dict[str, str] = {}
    for split, names in PHOTO_SPLITS.items():
        for n in names:
            assert n not in seen, f"{n} is in both {seen.get(n)} and {split}"
            seen[n] = split
            img = load_photo(n)
            assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    # a stereo pair counts as one photo: both frames in the same split
    assert seen["motorcycle_left"] == seen["motorcycle_right"]


def test_deterministic_by_seed(tmp_path):
    a = generate(small(tmp_path / "a"), log=lambda m: None)
    b = generate(small(tmp_path / "b"), log=lambda m: None)
    c = generate(small(tmp_path / "c", seed=1), log=lambda m: None)
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)


def test_rerun_reuses_and_refuses_other_parameters(tmp_path):
    cfg = small(tmp_path / "x")
    generate(cfg, log=lambda m: None)
    msgs: list[str] = []
    generate(cfg, log=msgs.append)
    assert any("reusing" in m for m in msgs)
    with pytest.raises(ConfigError, match="other parameters"):
        generate(small(tmp_path / "x", seed=5), log=lambda m: None)


def test_bad_parameters(tmp_path):
    with pytest.raises(ConfigError, match="multiple of 4"):
        generate(small(tmp_path / "y", size=30), log=lambda m: None)
    with pytest.raises(ConfigError, match="unknown generator"):
        generate(small(tmp_path / "y", train_generator="stylegan"), log=lambda m: None)


def test_generator_families_have_different_fingerprints():
    """Each family's mean residual spectrum differs from the others' and from the real images'."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(32, 3, 32, 32, generator=g)
    x = torch.nn.functional.avg_pool2d(x, 3, 1, 1)  # smooth-ish content

    def spectrum(batch: torch.Tensor) -> torch.Tensor:
        gray = batch.mean(1)
        f = torch.fft.fft2(gray - gray.mean((1, 2), keepdim=True)).abs().mean(0)
        return f / f.sum()

    specs = {fam: spectrum(Generator(fam, seed=i + 1)(x, g)) for i, fam in enumerate(FAMILIES)}
    specs["real"] = spectrum(x)
    names = list(specs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            dist = (specs[a] - specs[b]).abs().sum().item()
            assert dist > 0.05, f"{a} and {b} have nearly the same spectrum ({dist:.3f})"
    # transposed convolutions leave energy at the Nyquist frequency (checkerboard)
    nyq = lambda s: s[16, :].sum() + s[:, 16].sum()  # noqa: E731
    assert nyq(specs["tconv"]) > 2 * nyq(specs["bilinear"])


def test_fakes_keep_the_content():
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.interpolate(torch.rand(4, 3, 8, 8, generator=g), size=32, mode="bilinear")
    for fam in FAMILIES:
        y = Generator(fam, seed=3)(x, g)
        assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
        corr = np.corrcoef(x.flatten().numpy(), y.flatten().numpy())[0, 1]
        assert corr > 0.6, f"{fam} fakes lost the content (corr {corr:.2f})"


def test_videos_and_manifest(tiny_synth):
    manifest = tiny_synth / "videos" / "manifest.csv"
    rows = list(csv.DictReader(open(manifest)))
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    vids = {r["video_id"] for r in rows}
    assert len(vids) == 2 * (4 + 2 + 2)
    assert all((tiny_synth / "videos" / r["path"]).is_file() for r in rows)
    per_video = {}
    for r in rows:
        per_video.setdefault(r["video_id"], []).append(int(r["frame_index"]))
    assert all(sorted(v) == list(range(6)) for v in per_video.values())


def test_fake_videos_flicker(tmp_path):
    """With a still camera, only the re-synthesised region of a fake video changes beyond sensor noise."""
    from PIL import Image

    root = generate(small(tmp_path / "still", size=32, train_per_class=2, val_per_class=2, test_per_class=1,
                          videos_per_class={"train": 3, "val": 0, "test": 0}, frames=5, camera_motion=0.0),
                    log=lambda m: None)

    def flicker(label: str) -> float:
        vals = []
        for vid in sorted((root / "videos" / "train" / label).iterdir()):
            frames = [np.asarray(Image.open(p), np.float32) for p in sorted(vid.iterdir())]
            per_pixel = np.mean([np.abs(b - a).mean(-1) for a, b in zip(frames, frames[1:])], axis=0)
            vals.append(np.percentile(per_pixel, 95))  # the region covers ~15% of the frame
        return float(np.mean(vals))

    real, fake = flicker("0_real"), flicker("1_fake")
    assert real < 3.0  # sensor noise only (sigma 1.5 per frame)
    assert fake > 2 * real


def test_video_options_from_the_command_line(tmp_path):
    """`fakescope synth --camera-motion 0 --video-reals untouched`: a still camera over untouched reals."""
    from PIL import Image

    from fakescope.cli import main

    out = tmp_path / "s"
    assert main(["synth", "--out", str(out), "--size", "32", "--train-per-class", "2", "--val-per-class", "1",
                 "--test-per-class", "1", "--videos-per-class", "2", "--frames", "3", "--camera-motion", "0",
                 "--video-reals", "untouched"]) == 0
    cfg = json.loads((out / "meta.json").read_text())["config"]
    assert (cfg["camera_motion"], cfg["video_reals"]) == (0.0, "untouched")
    for vid in (out / "videos" / "train" / "0_real").iterdir():  # still camera, nothing re-synthesised
        frames = [np.asarray(Image.open(p), np.float32) for p in sorted(vid.iterdir())]
        assert np.abs(frames[1] - frames[0]).mean() < 3.0
