"""Pretrained detectors by name: each entry's official file format converted exactly, downloads checked and
refused, offline errors, and fakescope checkpoints through the Hugging Face Hub. Everything offline: the tests
write files in the official formats (tiny tensors where the architecture allows), and a local Hub cache."""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file
from torch import nn

from conftest import SHARED_FIXTURES
from fakescope.cli import main
from fakescope.errors import CheckpointError, WeightsUnavailableError
from fakescope.inference import Detector
from fakescope.models import create_model
from fakescope.zoo.checkpoint import read_config, save
from fakescope.zoo.convert import efficientnet_pytorch_to_hf
from fakescope.zoo.hub import RemoteFile, download_path, sha256_of
from fakescope.zoo.pretrained import (PRETRAINED, PretrainedEntry, convert, list_pretrained,
                                         pretrained_checkpoint, pretrained_entry, resolve_checkpoint)

UFD_HEAD = SHARED_FIXTURES / "weights" / "ufd_fc_weights.pth"
HAVE_EFFICIENTNET_PYTORCH = importlib.util.find_spec("efficientnet_pytorch") is not None


@pytest.fixture(autouse=True)
def fakescope_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FAKESCOPE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def tiny(name: str, **update) -> PretrainedEntry:
    """An entry converted into a tiny model of its architecture (same converter, same container)."""
    return pretrained_entry(name).model_copy(update=update)


def assert_every_tensor_arrived(official: dict, model, mapping) -> int:
    own = model.state_dict()
    n = 0
    for key, value in official.items():
        target = mapping(key)
        if target is None:
            continue
        assert torch.equal(own[target], value), key
        n += 1
    return n


# ------------------------------------------------------------------ torchvision-style reference networks
class Bottleneck(nn.Module):
    """torchvision's ResNet bottleneck (stride on the 3x3 convolution), official key names."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(inplanes, planes, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = nn.Conv2d(planes, planes * 4, 1, bias=False), nn.BatchNorm2d(planes * 4)
        self.downsample = None
        if stride != 1 or inplanes != planes * 4:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes * 4))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class TorchvisionResNet(nn.Module):
    """CNNDetection's networks/resnet.py layout at a tiny width: conv1 7x7, layer1-4, fc to one logit."""

    def __init__(self, stem: int, planes: list[int], blocks: list[int]) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, stem, 7, 2, 3, bias=False), nn.BatchNorm2d(stem)
        cin = stem
        for i, (p, n) in enumerate(zip(planes, blocks), start=1):
            layers = []
            for j in range(n):
                layers.append(Bottleneck(cin, p, 2 if (i > 1 and j == 0) else 1))
                cin = p * 4
            setattr(self, f"layer{i}", nn.Sequential(*layers))
        self.fc = nn.Linear(cin, 1)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        for i in range(1, 5):
            if hasattr(self, f"layer{i}"):
                x = getattr(self, f"layer{i}")(x)
        return self.fc(x.mean(dim=(2, 3))).squeeze(1)


class OfficialNPR(nn.Module):
    """NPR's networks/resnet.py: conv1 3x3 stride 2, layer1, layer2, fc1; input x - nearest(down, up)."""

    def __init__(self, stem: int, planes: list[int], blocks: list[int]) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, stem, 3, 2, 1, bias=False), nn.BatchNorm2d(stem)
        cin = stem
        for i, (p, n) in enumerate(zip(planes, blocks), start=1):
            layers = []
            for j in range(n):
                layers.append(Bottleneck(cin, p, 2 if (i > 1 and j == 0) else 1))
                cin = p * 4
            setattr(self, f"layer{i}", nn.Sequential(*layers))
        self.fc1 = nn.Linear(cin, 1)

    def forward(self, x):
        down = F.interpolate(x, scale_factor=0.5, mode="nearest", recompute_scale_factor=True)
        npr = x - F.interpolate(down, scale_factor=2, mode="nearest", recompute_scale_factor=True)
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(npr * 2.0 / 3.0))), 3, 2, 1)
        x = self.layer2(self.layer1(x))
        return self.fc1(x.mean(dim=(2, 3))).squeeze(1)


def randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and BatchNorm statistics that carry a signal through the network."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            m.weight.data = torch.randn(m.weight.shape, generator=g) * (2.0 / fan_out) ** 0.5
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand(m.weight.shape, generator=g) + 0.5
            m.bias.data = torch.randn(m.bias.shape, generator=g) * 0.1
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
        elif isinstance(m, nn.Linear):
            m.weight.data = torch.randn(m.weight.shape, generator=g) * 0.1
    return module.eval()


def write(obj, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


# --------------------------------------------------------------------------------------------- entries
def test_at_least_six_entries_with_source_licence_paper_and_published_numbers():
    names = list_pretrained()
    assert len(names) >= 6
    for name in names:
        e = pretrained_entry(name)
        assert e.name == name and e.licence and e.paper and e.trained_on and e.published and e.preprocessing, name
        assert e.source.startswith("https://"), name
        if e.file is not None:
            assert e.file.urls and all(u.startswith("https://") for u in e.file.urls), name
            assert e.file.source, name  # where the size and hash were read
            create_model(e.arch, **{**e.model, "pretrained": False})  # the recipe builds (no download)


@pytest.mark.parametrize("name", ["cnndetection_resnet50.blur_jpg_prob0.5", "cnndetection_resnet50.blur_jpg_prob0.1"])
def test_cnndetection_training_checkpoint_converts_exactly_and_scores_like_the_official_network(name, tmp_path):
    ref = randomise(TorchvisionResNet(8, [2, 4, 4, 8], [1, 1, 1, 1]))
    # the official container: {'model': state dict, 'optimizer': ..., 'total_steps': ...}
    path = write({"model": ref.state_dict(), "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4}]},
                  "total_steps": 270048}, tmp_path / "official.pth")
    entry = tiny(name, arch="cnndetection_tiny", model={"preprocess": {"input_size": 32, "face": None}})
    ck = convert(entry, path, tmp_path / "ck", move_aside=False)
    model = create_model("cnndetection_tiny")
    model.load_state_dict(load_file(str(ck / "model.safetensors")))
    model.eval()
    from fakescope.zoo.convert import torchvision_resnet_to_hf

    n = assert_every_tensor_arrived(ref.state_dict(), model.backbone, torchvision_resnet_to_hf)
    assert n == len(ref.state_dict()) - 2 and torch.equal(model.head.weight, ref.fc.weight)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), ref(x), atol=1e-5)
    record = read_config(ck)["pretrained"]
    assert set(record["dropped"]) == {"optimizer", "total_steps"} and record["tensors_used"] == len(ref.state_dict())


@pytest.mark.parametrize("name, wrapped", [("npr.progan_4class", True), ("npr.progan_4class_3090", False)])
def test_npr_files_convert_exactly_and_score_like_the_official_network(name, wrapped, tmp_path):
    ref = randomise(OfficialNPR(8, [4, 8], [1, 1]), seed=1)
    state = ref.state_dict()
    # NPR.pth: a training checkpoint of a DataParallel model; model_epoch_last_3090.pth: a plain state dict
    obj = {"model": {f"module.{k}": v for k, v in state.items()}, "optimizer": {"state": {}}} if wrapped else state
    path = write(obj, tmp_path / "official.pth")
    entry = tiny(name, arch="npr_tiny", model={"preprocess": {"input_size": 32, "policy": "resize", "face": None}})
    model = create_model("npr_tiny")
    model.load_state_dict(load_file(str(convert(entry, path, tmp_path / "ck", move_aside=False) / "model.safetensors")))
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), ref(x), atol=1e-5)
    assert torch.equal(model.head.weight, ref.fc1.weight)


@pytest.mark.skipif(not UFD_HEAD.is_file(), reason="needs ../shared/fixtures/weights/ufd_fc_weights.pth")
def test_the_real_universalfakedetect_head_converts_exactly(tmp_path):
    official = torch.load(UFD_HEAD, map_location="cpu", weights_only=True)
    assert sha256_of(UFD_HEAD) == pretrained_entry("univfd_clip.progan").file.sha256
    # a tiny CLIP with the real head's 768-d projection stands in for ViT-L/14 (its weights come from the Hub)
    tiny_clip = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                 "patch_size": 8, "image_size": 32, "projection_dim": 768}
    entry = tiny("univfd_clip.progan", arch="univfd_tiny",
                 model={"backbone_overrides": tiny_clip, "preprocess": {"input_size": 32, "face": None}})
    ck = convert(entry, UFD_HEAD, tmp_path / "ck", move_aside=False)
    det = Detector.from_pretrained(ck, device="cpu")
    assert torch.equal(det.model.head.weight, official["weight"]) and torch.equal(det.model.head.bias, official["bias"])
    assert read_config(ck)["pretrained"]["sha256_converted"] == pretrained_entry("univfd_clip.progan").file.sha256


def _efficientnet_pytorch_b4(plain_stem: bool, seed: int):
    from efficientnet_pytorch import EfficientNet

    torch.manual_seed(seed)
    net = EfficientNet.from_name("efficientnet-b4")  # TensorFlow 'same' padding fixed for 380 px, as released
    if plain_stem:  # DeepfakeBench's stem
        net._conv_stem = nn.Conv2d(3, 48, 3, stride=2, bias=False)
    return randomise(net, seed)


@pytest.mark.skipif(not HAVE_EFFICIENTNET_PYTORCH, reason="pip install efficientnet_pytorch (the dev extra has it)")
def test_deepfakebench_efficientnet_b4_converts_and_scores_like_the_official_network(tmp_path):
    net = _efficientnet_pytorch_b4(plain_stem=True, seed=2)
    head = nn.Linear(1792, 2)
    state = {f"backbone.efficientnet.{k}": v for k, v in net.state_dict().items() if not k.startswith("_fc.")}
    state |= {"backbone.last_layer.weight": head.weight.detach(), "backbone.last_layer.bias": head.bias.detach()}
    path = write(state, tmp_path / "effnb4_best.pth")  # a plain state dict of the whole detector
    entry = pretrained_entry("efficientnet_b4.deepfakebench_ffpp_c23")
    with pytest.warns(UserWarning, match="no published size or SHA-256"):
        ck = pretrained_checkpoint(entry.name, weights_file=path, progress=False)
    model = Detector.from_pretrained(ck, device="cpu").model
    x = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        official = torch.softmax(head(F.adaptive_avg_pool2d(net.extract_features(x), 1).flatten(1)), 1)[:, 1]
        ours = torch.sigmoid(model(x))
    assert torch.allclose(ours, official, atol=1e-5), (ours, official)
    assert model.preprocess.face.crop == "align" and model.preprocess.input_size == 256


@pytest.mark.skipif(not HAVE_EFFICIENTNET_PYTORCH, reason="pip install efficientnet_pytorch (the dev extra has it)")
def test_icpr2020_efficientnet_b4_converts_and_scores_like_the_official_network(tmp_path):
    net = _efficientnet_pytorch_b4(plain_stem=False, seed=4)
    classifier = nn.Linear(1792, 1)
    state = {f"efficientnet.{k}": v for k, v in net.state_dict().items() if not k.startswith("_fc.")}
    state |= {"classifier.weight": classifier.weight.detach(), "classifier.bias": classifier.bias.detach()}
    entry = tiny("efficientnet_b4.icpr2020_ffpp")
    ck = convert(entry, write(state, tmp_path / "icpr.pth"), tmp_path / "ck", move_aside=False)
    model = Detector.from_pretrained(ck, device="cpu").model
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        official = classifier(F.adaptive_avg_pool2d(net.extract_features(x), 1).flatten(1)).squeeze(1)
        assert torch.allclose(model(x), official, atol=1e-4)
    assert len(state) == sum(1 for k in state if efficientnet_pytorch_to_hf(k.split("efficientnet.", 1)[-1])
                             or k.startswith("classifier."))


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """A local Hugging Face cache, searched offline (HF_HUB_OFFLINE=1 is set by conftest)."""
    import huggingface_hub.constants as constants

    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_hf_classifier_loads_by_hub_name_and_revision_from_the_cache(hub_cache, tmp_path):
    from transformers import SwinConfig, SwinForImageClassification

    entry = pretrained_entry("hf_classifier.organika_sdxl_detector")
    repo, rev = entry.model["hub_name"], entry.model["revision"]
    snapshot = hub_cache / f"models--{repo.replace('/', '--')}" / "snapshots" / rev
    config = SwinConfig(image_size=32, patch_size=4, embed_dim=8, depths=[1, 1], num_heads=[1, 1], window_size=2,
                        id2label={0: "artificial", 1: "human"}, label2id={"artificial": 0, "human": 1})
    torch.manual_seed(0)
    official = SwinForImageClassification(config).eval()
    official.save_pretrained(snapshot)
    det = Detector.from_pretrained(entry.name, device="cpu", threshold=0.5)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8))
    rec = det.predict(img)
    x = det._pre(img).unsqueeze(0)
    with torch.no_grad():
        p_official = torch.softmax(official(pixel_values=det.model.normalize(x)).logits, 1)[0, 0].item()
    assert rec["score"] == pytest.approx(p_official, abs=1e-5)
    # the converted checkpoint rebuilds the network without the Hub
    ck = resolve_checkpoint(entry.name)
    assert read_config(ck)["model"]["config"]["hf_config"]["model_type"] == "swin"
    shutil_rmtree(snapshot)
    assert Detector.from_pretrained(ck, device="cpu").predict(img)["score"] == rec["score"]


def shutil_rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)


# ---------------------------------------------------------------------------------- downloads refused
@pytest.fixture
def test_entry():
    """A pretrained entry of a tiny model whose official file lies at a file:// URL (no network)."""
    added = []

    def make(path: Path, *, size=None, sha256=None, name="test") -> PretrainedEntry:
        entry = PretrainedEntry(arch="npr_tiny", tag=name, converter="npr",
                                file=RemoteFile(path.name, (path.resolve().as_uri(),), size=size, sha256=sha256),
                                model={"preprocess": {"input_size": 32, "face": None}}, licence="test",
                                paper="test", trained_on="nothing", published="nothing", preprocessing="none",
                                source="https://example.invalid/test")
        PRETRAINED.add(entry.name, entry, replace=True)
        added.append(entry.name)
        return entry

    yield make
    for name in added:
        PRETRAINED.remove(name)


def official_npr(path: Path) -> Path:
    return write(randomise(OfficialNPR(8, [4, 8], [1, 1])).state_dict(), path)


def test_a_download_is_checked_converted_once_and_reused(test_entry, tmp_path, monkeypatch):
    src = official_npr(tmp_path / "src" / "npr_tiny.pth")
    entry = test_entry(src, size=src.stat().st_size, sha256=sha256_of(src))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    det = Detector.from_pretrained(entry.name, device="cpu")
    assert download_path(entry.file).is_file() and det.name == "npr_tiny"
    ck = resolve_checkpoint(entry.name)
    assert read_config(ck)["pretrained"]["sha256"] == sha256_of(src)
    src.unlink()  # converted once: no second download
    assert resolve_checkpoint(entry.name) == ck


def test_a_wrong_hash_or_a_truncated_download_is_refused_and_moved_aside(test_entry, tmp_path):
    src = official_npr(tmp_path / "src" / "npr_tiny.pth")
    entry = test_entry(src, size=src.stat().st_size, sha256="0" * 64)
    target = download_path(entry.file)
    target.parent.mkdir(parents=True)
    target.write_bytes(src.read_bytes())
    with pytest.raises(WeightsUnavailableError, match="SHA-256 differs") as err:
        resolve_checkpoint(entry.name)
    assert "moved aside" in str(err.value) and not target.exists() and target.with_name(target.name + ".rejected").exists()
    entry = test_entry(src, size=src.stat().st_size, sha256=sha256_of(src), name="test2")
    target = download_path(entry.file)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(src.read_bytes()[:1000])  # a download that broke off
    with pytest.raises(WeightsUnavailableError, match="truncated"):
        resolve_checkpoint(entry.name)
    assert not target.exists()


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_a_pickle_that_would_run_code_is_refused_and_moved_aside(test_entry, tmp_path):
    bad = tmp_path / "src" / "evil.pth"
    bad.parent.mkdir(parents=True)
    torch.save({"model": Payload()}, bad, pickle_module=pickle)
    entry = test_entry(bad, size=bad.stat().st_size, sha256=sha256_of(bad))
    target = download_path(entry.file)
    target.parent.mkdir(parents=True)
    target.write_bytes(bad.read_bytes())
    with pytest.raises(WeightsUnavailableError, match="refused: the file is a pickle"):
        resolve_checkpoint(entry.name)
    assert not target.exists() and target.with_name(target.name + ".rejected").exists()
    # the same file given by hand is refused, and left where the user put it
    with pytest.raises(WeightsUnavailableError, match="refused"):
        Detector.from_pretrained(entry.name, weights_file=bad, device="cpu")
    assert bad.exists()


def test_offline_a_missing_file_names_the_url_and_where_to_put_it(test_entry, tmp_path):
    src = official_npr(tmp_path / "src" / "npr_tiny.pth")
    entry = test_entry(src, size=src.stat().st_size, sha256=sha256_of(src))
    with pytest.raises(WeightsUnavailableError) as err:
        Detector.from_pretrained(entry.name, device="cpu")
    text = str(err.value)
    assert entry.file.urls[0] in text and str(download_path(entry.file)) in text and "--weights-file" in text
    # nothing fell back to random weights; with the file given by hand it works
    assert Detector.from_pretrained(entry.name, weights_file=src, device="cpu").name == "npr_tiny"
    with pytest.raises(CheckpointError, match="pretrained name"):
        resolve_checkpoint("npr.no_such_tag")


# ------------------------------------------------------------------------------------------- the Hub
def test_push_and_load_a_fakescope_checkpoint_through_the_hub(hub_cache, tmp_path, monkeypatch):
    import huggingface_hub

    ck = save(create_model("simple_cnn_tiny").eval(), tmp_path / "ck")
    calls = {}

    def create_repo(self, repo_id, **kw):
        calls["create"] = repo_id

    def upload_folder(self, *, folder_path, repo_id, allow_patterns, commit_message):  # the Hub, as a local cache
        rev = "a" * 40
        snap = hub_cache / f"models--{repo_id.replace('/', '--')}" / "snapshots" / rev
        snap.mkdir(parents=True)
        for name in allow_patterns:
            (snap / name).write_bytes((Path(folder_path) / name).read_bytes())
        (snap.parent.parent / "refs").mkdir()
        (snap.parent.parent / "refs" / "main").write_text(rev)
        calls["files"] = sorted(p.name for p in snap.iterdir())
        return type("Info", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/{rev}"})()

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    assert main(["push", str(ck), "--repo", "someone/tiny-detector"]) == 0
    assert calls["create"] == "someone/tiny-detector" and calls["files"] == ["README.md", "config.json",
                                                                             "model.safetensors"]
    img = np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    local = Detector.from_pretrained(ck, device="cpu").predict(img)["score"]
    for spec in ("hf-hub:someone/tiny-detector", "hf-hub:someone/tiny-detector@" + "a" * 40):
        assert Detector.from_pretrained(spec, device="cpu").predict(img)["score"] == local
    with pytest.raises(WeightsUnavailableError, match="HF_HUB_OFFLINE"):
        Detector.from_pretrained("hf-hub:someone/not-in-the-cache", device="cpu")


def test_models_lists_the_pretrained_detectors(capsys):
    assert main(["models", "--pretrained", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) >= 6 and all(r["licence"] and r["source"] for r in rows)
    assert {"cnndetection_resnet50.blur_jpg_prob0.5", "univfd_clip.progan", "npr.progan_4class"} <= {r["name"] for r in rows}


@pytest.mark.parametrize("recipe", ["cnndetection_progan", "univfd_progan", "npr_progan", "efficientnet_b4_ffpp_c23",
                                    "xception_ffpp_c23"])
def test_baseline_recipes_validate_and_build_their_model(recipe):
    from fakescope.config import load_config
    from fakescope.models import resolve_model_config

    cfg = load_config(f"baselines/{recipe}")
    model_cfg = resolve_model_config(cfg.model.name, cfg.model.kwargs)
    # the recipe's preprocessing is what the authors trained with (no face stage for the image detectors)
    assert model_cfg.preprocess.input_size in (224, 256)
    assert (model_cfg.preprocess.face is None) == (not recipe.endswith("_ffpp_c23"))
    assert cfg.optim.name == "adam" and cfg.data.train


class CadeneSeparable(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cin, 3, 1, 1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.conv1(x))


class CadeneBlock(nn.Module):
    """The block of the PyTorch Xception port that FaceForensics++ and DeepfakeBench use."""

    def __init__(self, cin, cout, reps, stride, start_with_relu=True, grow_first=True):
        super().__init__()
        self.skip = nn.Conv2d(cin, cout, 1, stride, bias=False) if cout != cin or stride != 1 else None
        self.skipbn = nn.BatchNorm2d(cout) if self.skip is not None else None
        rep, filters = [], cin
        if grow_first:
            rep += [nn.ReLU(), CadeneSeparable(cin, cout), nn.BatchNorm2d(cout)]
            filters = cout
        for _ in range(reps - 1):
            rep += [nn.ReLU(), CadeneSeparable(filters, filters), nn.BatchNorm2d(filters)]
        if not grow_first:
            rep += [nn.ReLU(), CadeneSeparable(cin, cout), nn.BatchNorm2d(cout)]
        rep = rep if start_with_relu else rep[1:]
        if stride != 1:
            rep.append(nn.MaxPool2d(3, stride, 1))
        self.rep = nn.Sequential(*rep)

    def forward(self, x):
        return self.rep(x) + (self.skipbn(self.skip(x)) if self.skip is not None else x)


class DeepfakeBenchXception(nn.Module):
    """DeepfakeBench's Xception detector ('original' mode): backbone.* keys, a 2-way last_linear, adjust_channel."""

    def __init__(self, w):
        super().__init__()
        b = nn.Module()
        b.conv1, b.bn1 = nn.Conv2d(3, w[0], 3, 2, 0, bias=False), nn.BatchNorm2d(w[0])
        b.conv2, b.bn2 = nn.Conv2d(w[0], w[1], 3, bias=False), nn.BatchNorm2d(w[1])
        b.block1 = CadeneBlock(w[1], w[2], 2, 2, start_with_relu=False)
        b.block2 = CadeneBlock(w[2], w[3], 2, 2)
        b.block3 = CadeneBlock(w[3], w[4], 2, 2)
        b.block4 = CadeneBlock(w[4], w[4], 3, 1)
        b.block5 = CadeneBlock(w[4], w[5], 2, 2, grow_first=False)
        b.conv3, b.bn3 = CadeneSeparable(w[5], w[6]), nn.BatchNorm2d(w[6])
        b.conv4, b.bn4 = CadeneSeparable(w[6], w[7]), nn.BatchNorm2d(w[7])
        b.last_linear = nn.Linear(w[7], 2)
        b.adjust_channel = nn.Sequential(nn.Conv2d(w[7], 8, 1, 1), nn.BatchNorm2d(8))
        self.backbone = b

    def forward(self, x):
        b = self.backbone
        x = F.relu(b.bn2(b.conv2(F.relu(b.bn1(b.conv1(x))))))
        for i in range(1, 6):
            x = getattr(b, f"block{i}")(x)
        x = F.relu(b.bn4(b.conv4(F.relu(b.bn3(b.conv3(x))))))
        return torch.softmax(b.last_linear(F.relu(x).mean(dim=(2, 3))), 1)[:, 1]


def test_deepfakebench_xception_converts_and_scores_like_the_official_network(tmp_path):
    ref = randomise(DeepfakeBenchXception([4, 8, 8, 8, 8, 16, 16, 16]), seed=6)
    entry = tiny("xception.deepfakebench_ffpp_c23", arch="xception_tiny",
                 model={"preprocess": {"input_size": 32, "face": None}})
    ck = convert(entry, write(ref.state_dict(), tmp_path / "xception_best.pth"), tmp_path / "ck", move_aside=False)
    model = Detector.from_pretrained(ck, device="cpu").model
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(torch.sigmoid(model(x)), ref(x), atol=1e-5)
    dropped = read_config(ck)["pretrained"]["dropped"]
    assert sorted(dropped) == sorted(k for k in ref.state_dict() if ".adjust_channel." in k)


def test_eval_detect_and_serve_take_a_pretrained_name_from_the_command_line(test_entry, tmp_path, capsys,
                                                                           monkeypatch):
    from conftest import write_images

    src = official_npr(tmp_path / "src" / "npr_tiny.pth")
    entry = test_entry(src, size=src.stat().st_size, sha256=sha256_of(src))
    write_images(tmp_path / "data" / "0_real", 4, kind="smooth")
    write_images(tmp_path / "data" / "1_fake", 4, kind="noise", seed=1)
    out = tmp_path / "report"
    assert main(["eval", entry.name, "--data", str(tmp_path / "data"), "--weights-file", str(src), "--out", str(out),
                 "--num-workers", "0", "--device", "cpu"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "npr_tiny" and metrics["sets"]["data"]["n"] == 8
    # converted once: detect finds the checkpoint without the file
    records = tmp_path / "r.jsonl"
    assert main(["detect", str(tmp_path / "data"), "-m", entry.name, "-o", str(records), "--device", "cpu",
                 "--progress", "off"]) == 0
    assert len(records.read_text().splitlines()) == 8
    # and the service: `fakescope serve NAME` (the server itself is replaced by a client in this process)
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    import io

    from fastapi.testclient import TestClient

    import fakescope.serve.server as server

    served = {}
    monkeypatch.setattr(server, "run_server", lambda app, **kw: served.setdefault("app", app))
    assert main(["serve", entry.name, "--device", "cpu"]) == 0
    png = io.BytesIO()
    Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(png, format="PNG")
    with TestClient(served["app"]) as client:
        reply = client.post("/v1/detect", files={"file": ("x.png", png.getvalue(), "image/png")})
    assert reply.status_code == 200 and 0.0 <= reply.json()["score"] <= 1.0


def imagenet_xception_state(w, seed=0, cadene=True):
    """Xception ImageNet weights in the official layouts: Cadene's port (2-D pointwise weights, a 1000-way
    ``last_linear``, no BatchNorm counters) or timm's ``legacy_xception`` (4-D pointwise, ``fc``)."""
    net = randomise(DeepfakeBenchXception(w), seed=seed).backbone
    state = {}
    for k, v in net.state_dict().items():
        if k.startswith(("adjust_channel.", "last_linear.")) or (cadene and k.endswith("num_batches_tracked")):
            continue
        state[k] = v[:, :, 0, 0].clone() if cadene and k.endswith("pointwise.weight") else v.clone()
    torch.manual_seed(seed)
    head = "last_linear" if cadene else "fc"
    state[f"{head}.weight"], state[f"{head}.bias"] = torch.randn(1000, w[-1]), torch.randn(1000)
    return state


def test_xception_starts_from_imagenet_weights_by_hub_name_or_file(hub_cache, tmp_path):
    from safetensors.torch import save_file

    w = [4, 8, 8, 8, 8, 16, 16, 16]
    cadene = imagenet_xception_state(w, seed=1)
    torch.save(cadene, tmp_path / "xception-b5690688.pth")
    model = create_model("xception_tiny", weights=str(tmp_path / "xception-b5690688.pth"))
    own = model.state_dict()
    for k, v in cadene.items():
        if not k.startswith("last_linear."):
            assert torch.equal(own[k], v.reshape(own[k].shape)), k
    assert sorted(model.imagenet["dropped"]) == ["last_linear.bias", "last_linear.weight"]
    assert model.imagenet["random_init"] == ["head.bias", "head.weight"]

    # pretrained: true alone takes timm's port from the hub (here the offline cache)
    timm_state = imagenet_xception_state(w, seed=2, cadene=False)
    snap = hub_cache / "models--timm--legacy_xception.tf_in1k" / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    save_file(timm_state, str(snap / "model.safetensors"))
    (hub_cache / "models--timm--legacy_xception.tf_in1k" / "refs").mkdir()
    (hub_cache / "models--timm--legacy_xception.tf_in1k" / "refs" / "main").write_text("0" * 40)
    model = create_model("xception_tiny", pretrained=True)
    assert torch.equal(model.state_dict()["block2.rep.1.pointwise.weight"], timm_state["block2.rep.1.pointwise.weight"])
    assert torch.equal(model.state_dict()["bn4.running_var"], timm_state["bn4.running_var"])

    # widths that do not fit, or no file at all: errors that say so, never a random start
    with pytest.raises(CheckpointError, match="shape mismatches"):
        create_model("xception_tiny", weights=str(tmp_path / "xception-b5690688.pth"),
                               widths=[4, 8, 8, 8, 12, 16, 16, 16])
    with pytest.raises(WeightsUnavailableError, match="not found"):
        create_model("xception_tiny", weights=str(tmp_path / "missing.pth"))
