"""Training augmentations for prepared samples: off by default, colour jitter, one draw per clip."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from fakescope.config import AugmentConfig, load_config
from fakescope.data.transforms import Preprocessor, color_jitter
from fakescope.errors import ConfigError
from fakescope.models import PreprocessConfig

PP = PreprocessConfig(input_size=32, policy="resize")


def photo(seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(30, 220, (8, 8, 3), dtype=np.uint8)
    return Image.fromarray(base).resize((32, 32), Image.Resampling.BILINEAR)


def test_only_the_flip_is_on_by_default():
    a = AugmentConfig()
    assert a.hflip and a.blur_prob == a.jpeg_prob == a.jitter_prob == 0.0
    img = photo()
    train = Preprocessor(PP, train=True, augment=a)
    plain = Preprocessor(PP, train=False)(img)
    for seed in range(6):  # every output is the image or its mirror: no photometric change
        out = train(img, random.Random(seed))
        assert torch.equal(out, plain) or torch.equal(out, plain.flip(-1))


def test_color_jitter_changes_colours_as_asked():
    img = photo()
    arr = np.asarray(img, dtype=float)
    assert np.asarray(color_jitter(img)).tolist() == np.asarray(img).tolist()  # neutral parameters
    brighter = np.asarray(color_jitter(img, brightness=1.3), dtype=float)
    assert brighter.mean() > arr.mean() * 1.2
    grey = np.asarray(color_jitter(img, saturation=0.0), dtype=float)
    assert np.abs(grey[..., 0] - grey[..., 1]).max() <= 1  # no saturation: grey
    flat = np.asarray(color_jitter(img, contrast=0.0), dtype=float)
    assert flat.std() < 2
    shifted = np.asarray(color_jitter(img, hue=0.25), dtype=float)
    assert np.abs(shifted - arr).mean() > 10 and abs(shifted.mean() - arr.mean()) < 25


def test_a_clip_gets_one_draw_for_all_its_frames():
    aug = AugmentConfig(hflip=True, jitter_prob=1.0, blur_prob=1.0, jpeg_prob=1.0)
    pre = Preprocessor(PP, train=True, augment=aug)
    img = photo(3)
    for seed in range(4):
        clip = pre.clip([img, img.copy(), img.copy()], random.Random(seed))
        assert torch.equal(clip[0], clip[1]) and torch.equal(clip[0], clip[2])
    # and different clips get different draws
    a = pre.clip([img], random.Random(0))
    b = pre.clip([img], random.Random(1))
    assert not torch.equal(a, b)


def test_jitter_is_configured_in_yaml_and_validated():
    cfg = load_config(data={"model": {"name": "simple_cnn_tiny"}},
                      overrides=["data.augment.jitter_prob=0.5", "data.augment.hue=0.1"])
    assert cfg.data.augment.jitter_prob == 0.5 and cfg.data.augment.hue == 0.1
    with pytest.raises(ConfigError, match="hue"):
        load_config(data={"model": {"name": "simple_cnn_tiny"}}, overrides=["data.augment.hue=0.9"])
    with pytest.raises(ConfigError, match="blur_sigma"):
        load_config(data={"model": {"name": "simple_cnn_tiny"}}, overrides=["data.augment.blur_sigma=[3, 1]"])


@pytest.mark.parametrize("balance", ["none", "classes"])
def test_class_balancing_draws_real_and_fake_equally_often(tmp_path, balance):
    """A manifest with 40 real and 8 fake frames: ``data.balance: classes`` samples both about equally."""
    from fakescope.models import resolve_model_config
    from fakescope.train.data import DetectorDataModule

    rows = ["path,label,split"]
    for i in range(48):
        label = int(i >= 40)
        photo(i).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png,{label},{'train' if i % 6 else 'val'}")
    rows += ["0.png,0,val", "47.png,1,val"]  # both classes in validation
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    cfg = load_config(data={
        "model": {"name": "simple_cnn_tiny"}, "output_dir": str(tmp_path / "runs"),
        "data": {"train": {"path": str(tmp_path / "m.csv"), "split": "train"},
                 "val": {"path": str(tmp_path / "m.csv"), "split": "val"},
                 "batch_size": 8, "num_workers": 0, "balance": balance}})
    dm = DetectorDataModule(cfg, resolve_model_config("simple_cnn_tiny").preprocess, "image")
    dm.setup()
    torch.manual_seed(0)
    labels = [int(y) for _ in range(30) for batch in dm.train_dataloader() for y in batch["label"]]
    share = sum(labels) / len(labels)
    truth = sum(s.label for s in dm.train_dataset.samples) / len(dm.train_dataset)  # 7 of 40
    if balance == "classes":
        assert 0.4 < share < 0.6
    else:
        assert abs(share - truth) < 0.02
