"""Parity of every pretrained entry and every weights converter at the released network's real depth and width.

For each release, the test builds the authors' network (upstream code where a package provides it and imports
without torchvision; otherwise a reference written here from the upstream source, named beside it), gives it
random weights, writes its state dict in the exact file layout of the release (training-checkpoint wrappers,
``module.`` prefixes, ``torch.save`` of a dict), converts or loads it with fakescope's own loading path, and
requires the same outputs on the same preprocessed input. Both networks are compared in float64, so the
tolerance does not hang on the order of float sums (CPU kind, thread count); the float32 difference is measured
too and bounded by 1e-4. At depth 1 per stage a key map that orders blocks wrongly still passes: here every stage
has its real number of blocks, and ``tests/mutation_check.py`` shows that such a map fails.

Tensors saved on a GPU (the released files were) cannot be made on a CPU-only machine: the files written here
hold CPU tensors; ``torch.load(map_location="cpu")`` is what reads both.

Each ``parity_*`` function returns ``(float64 max abs diff, float32 max abs diff)``; the mutation check calls
them with a converter deliberately broken.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fakescope.inference import Detector
from fakescope.models import create_model
from fakescope.zoo.pretrained import convert, pretrained_entry

TOL64 = 1e-9   # float64: both networks compute the same sums up to rounding at ~1e-16 relative
TOL32 = 1e-4   # float32: absolute for logits, relative to the output's scale for feature maps larger than 1
# the release fixture, and a fakescope home per test (autouse), as in the conversion tests
from test_pretrained import HAVE_EFFICIENTNET_PYTORCH, UFD_HEAD, fakescope_home  # noqa: E402,F401


# --------------------------------------------------------------------------------------------- helpers
def randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and BatchNorm statistics that carry a signal through a deep network (eval mode)."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            fan_out = m.weight[0].numel() * m.out_channels // m.in_channels
            m.weight.data = torch.randn(m.weight.shape, generator=g) * (2.0 / fan_out) ** 0.5
            if m.bias is not None:
                m.bias.data = torch.randn(m.bias.shape, generator=g) * 0.1
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            m.weight.data = torch.rand(m.weight.shape, generator=g) * 0.5 + 0.5
            m.bias.data = torch.randn(m.bias.shape, generator=g) * 0.1
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.num_batches_tracked.fill_(1000)
        elif isinstance(m, nn.Linear):
            m.weight.data = torch.randn(m.weight.shape, generator=g) * m.in_features ** -0.5
            if m.bias is not None:
                m.bias.data = torch.randn(m.bias.shape, generator=g) * 0.1
    return module.eval()


def calibrate(module: nn.Module, x: torch.Tensor, run=None) -> nn.Module:
    """BatchNorm statistics measured on ``x`` (train-mode forward, cumulative average), then eval mode: with them
    every layer normalises its input, so the output depends on the input all the way through a deep network
    (with statistics drawn at random it can collapse to a constant, which hides a wrong block order)."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    module.train()
    with torch.no_grad():
        (run or module)(x)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
        m.num_batches_tracked.fill_(1000)
    return module.eval()


def grid(layer: nn.Linear) -> nn.Linear:
    """A head whose weights lie on a 2^-12 grid: the difference of two rows (a two-way head turned into one
    logit) is then exact in float32, so the float64 comparison stays exact."""
    with torch.no_grad():
        layer.weight.copy_(torch.round(layer.weight * 4096) / 4096)
        layer.bias.copy_(torch.round(layer.bias * 4096) / 4096)
    return layer


def write(obj, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def compare(ours, official, x: torch.Tensor) -> tuple[float, float]:
    """Max abs differences of two callables' outputs on ``x``: in float64, and in float32 divided by the output's
    scale where that exceeds 1 (a feature map of a deep network: its float32 sums round at ~1e-7 of its size)."""
    diffs = []
    for dtype in (torch.float64, torch.float32):
        with torch.no_grad():
            a, b = ours(dtype)(x.to(dtype)), official(dtype)(x.to(dtype))
        assert a.shape == b.shape, (a.shape, b.shape)
        diffs.append((a.double() - b.double()).abs().max().item() / (1.0 if dtype == torch.float64 else
                                                                     max(1.0, b.abs().max().item())))
    return diffs[0], diffs[1]


def cast(module: nn.Module):
    return lambda dtype: module.to(dtype)


def converted(name: str, path: Path, out: Path, **update):
    """The fakescope model of pretrained entry ``name`` after converting the official file at ``path``."""
    entry = pretrained_entry(name).model_copy(update=update)
    ck = convert(entry, path, out, move_aside=False)
    return Detector.from_pretrained(ck, device="cpu").model.eval()


def state_layout(state: dict) -> tuple[int, int, int]:
    """(entries, parameters, BatchNorm counters) of a state dict."""
    counters = sum(k.endswith("num_batches_tracked") for k in state)
    return len(state), len(state) - counters - 2 * counters, counters


# ------------------------------------------------------------------------- torchvision's ResNet, by hand
# Written from torchvision/models/resnet.py (v0.17 and later: the same module and key names since v0.2), of
# which CNNDetection's networks/resnet.py and NPR's networks/resnet.py are copies: Bottleneck with conv1/bn1,
# conv2/bn2 (3x3, carries the stride: "ResNet V1.5"), conv3/bn3, downsample = Sequential(conv1x1, BatchNorm2d);
# ResNet with conv1, bn1, relu, maxpool, layer1..layer4 (_make_layer), avgpool, fc. torchvision cannot be
# imported here (its wheel is a CUDA build), so the layout is reproduced, not imported.
class TvBottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class TvResNet(nn.Module):
    """torchvision's ResNet; ``stem_kernel=3`` and two layers with ``fc1`` is NPR's truncated ResNet-50
    (chuangchuangtan/NPR-DeepfakeDetection networks/resnet.py: conv1 3x3 stride 2, layer1, layer2, fc1 on 512)."""

    def __init__(self, layers=(3, 4, 6, 3), num_classes: int = 1, stem_kernel: int = 7, fc: str = "fc",
                 npr: bool = False) -> None:
        super().__init__()
        self.inplanes, self.npr, self.fc_name = 64, npr, fc
        self.conv1 = nn.Conv2d(3, 64, stem_kernel, 2, stem_kernel // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.n_layers = len(layers)
        for i, n in enumerate(layers):
            setattr(self, f"layer{i + 1}", self._make_layer(64 * 2 ** i, n, stride=1 if i == 0 else 2))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        setattr(self, fc, nn.Linear(self.inplanes, num_classes))

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * 4:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes * 4))
        layers = [TvBottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * 4
        layers += [TvBottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def features(self, x, upto: int | None = None):
        if self.npr:  # NPR: x - interpolate(x, 0.5) (nearest down, nearest up), scaled by 2/3
            down = F.interpolate(x, scale_factor=0.5, mode="nearest", recompute_scale_factor=True)
            x = (x - F.interpolate(down, scale_factor=2.0, mode="nearest", recompute_scale_factor=True)) * 2.0 / 3.0
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, (upto or self.n_layers) + 1):
            x = getattr(self, f"layer{i}")(x)
        return x

    def forward(self, x):
        return getattr(self, self.fc_name)(torch.flatten(self.avgpool(self.features(x)), 1))


# torchvision resnet50(): 320 state-dict entries (161 parameters, 53 BatchNorm layers, each with 3 buffers);
# layer1-4 hold 3, 4, 6, 3 bottlenecks; counted from torchvision's resnet50 and the CNNDetection file (its
# 'model' entry).
TV_RESNET50_LAYOUT = (320, 161, 53)
# NPR's model_epoch_last_3090.pth: "A plain state dict (146 tensors)" (the entry's notes): conv1, bn1, layer1
# (3 blocks), layer2 (4 blocks), fc1.
NPR_LAYOUT = (146, 74, 24)


def adam_state(model: nn.Module) -> dict:
    """An Adam optimizer state dict for ``model`` (exp_avg, exp_avg_sq per parameter), as torch saves it."""
    params = [p for p in model.parameters()]
    state = {i: {"step": torch.tensor(270048.0), "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
             for i, p in enumerate(params)}
    return {"state": state, "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
                                              "amsgrad": False, "params": list(range(len(params)))}]}


def parity_cnndetection(tmp_path: Path, name: str = "cnndetection_resnet50.blur_jpg_prob0.5") -> tuple[float, float]:
    ref = calibrate(randomise(TvResNet((3, 4, 6, 3)), seed=11), torch.randn(2, 3, 224, 224, generator=gen(111)))
    state = ref.state_dict()
    assert state_layout(state) == TV_RESNET50_LAYOUT
    assert state["fc.weight"].shape == (1, 2048) and state["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1)
    # networks/base_model.py save_networks: {'model': state_dict, 'optimizer': Adam's, 'total_steps': int}
    path = write({"model": state, "optimizer": adam_state(ref), "total_steps": 270048}, tmp_path / f"{name}.pth")
    model = converted(name, path, tmp_path / "ck")
    x = torch.randn(2, 3, 224, 224, generator=gen(12))  # the official eval: centre crop 224, ImageNet mean/std
    return compare(lambda d: (lambda t: model.to(d)(t)), lambda d: (lambda t: ref.to(d)(t).squeeze(1)), x)


def parity_npr(tmp_path: Path, name: str = "npr.progan_4class") -> tuple[float, float]:
    ref = calibrate(randomise(TvResNet((3, 4), stem_kernel=3, fc="fc1", npr=True), seed=13),
                    torch.randn(2, 3, 256, 256, generator=gen(113)))
    state = ref.state_dict()
    assert state_layout(state) == NPR_LAYOUT and state["fc1.weight"].shape == (1, 512)
    if name == "npr.progan_4class":  # NPR.pth: a training checkpoint of a DataParallel model
        obj = {"model": {f"module.{k}": v for k, v in state.items()}, "optimizer": adam_state(ref),
               "total_steps": 100000}
    else:  # model_epoch_last_3090.pth: a plain state dict
        obj = state
    model = converted(name, write(obj, tmp_path / f"{name}.pth"), tmp_path / "ck")
    x = torch.randn(2, 3, 256, 256, generator=gen(14))  # the official test: resize 256, ImageNet mean/std
    return compare(lambda d: (lambda t: model.to(d)(t)), lambda d: (lambda t: ref.to(d)(t).squeeze(1)), x)


@pytest.mark.parametrize("name", ["cnndetection_resnet50.blur_jpg_prob0.5", "cnndetection_resnet50.blur_jpg_prob0.1"])
def test_cnndetection_resnet50_full_depth_parity(name, tmp_path):
    d64, d32 = parity_cnndetection(tmp_path, name)
    assert d64 <= TOL64 and d32 <= TOL32, (d64, d32)


def test_cnndetection_file_layout_matches_the_release_size(tmp_path):
    """The written training checkpoint (model + Adam's two moments) is the release's size to within 0.1 %: the
    release's 282,442,597 bytes are ResNet-50's 25.56M float32 values three times over."""
    ref = TvResNet((3, 4, 6, 3))
    path = write({"model": ref.state_dict(), "optimizer": adam_state(ref), "total_steps": 270048}, tmp_path / "x.pth")
    size = pretrained_entry("cnndetection_resnet50.blur_jpg_prob0.5").file.size
    assert abs(path.stat().st_size - size) / size < 1e-3, path.stat().st_size


@pytest.mark.parametrize("name", ["npr.progan_4class", "npr.progan_4class_3090"])
def test_npr_full_depth_parity(name, tmp_path):
    d64, d32 = parity_npr(tmp_path, name)
    assert d64 <= TOL64 and d32 <= TOL32, (d64, d32)


@pytest.mark.parametrize("name", ["npr.progan_4class", "npr.progan_4class_3090"])
def test_npr_file_layout_matches_the_release_size(name, tmp_path):
    """NPR.pth (17,393,733 bytes) holds the weights and Adam's two moments; model_epoch_last_3090.pth
    (5,842,385 bytes) the weights alone. The files written here match to within 1 %."""
    ref = TvResNet((3, 4), stem_kernel=3, fc="fc1", npr=True)
    state = ref.state_dict()
    obj = ({"model": {f"module.{k}": v for k, v in state.items()}, "optimizer": adam_state(ref)}
           if name == "npr.progan_4class" else state)
    size = pretrained_entry(name).file.size
    written = write(obj, tmp_path / "x.pth").stat().st_size
    assert abs(written - size) / size < 1e-2, (written, size)


# ---------------------------------------------------------------------------- Xception (Cadene's port)
def cadene_xception_module():
    """Cadene's ``pretrainedmodels/models/xception.py`` (pretrainedmodels 0.7.4), the upstream code of the Xception
    that FaceForensics++ and DeepfakeBench copy. The package's ``__init__`` imports torchvision (which cannot be
    imported here), so the module file is loaded alone; it imports only torch."""
    spec = importlib.util.find_spec("pretrainedmodels")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("pip install --no-deps pretrainedmodels==0.7.4 (make install does)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "xception.py"
    module = types.ModuleType("cadene_xception")
    module.__file__ = str(path)
    exec(compile(path.read_text(), str(path), "exec"), module.__dict__)
    return module


# Cadene's Xception: 12 blocks (entry 1-3, middle 4-11, exit 12), conv3/conv4; its state dict has 276 entries
# with the 1000-way fc (the release's ImageNet file, xception-b5690688.pth, has no BatchNorm counters: 236).
XCEPTION_ENTRIES = 276


def deepfakebench_xception(seed: int):
    """DeepfakeBench's Xception detector in its 'original' mode (training/networks/xception.py and
    detectors/xception_detector.py): Cadene's Xception with a 2-way ``last_linear`` and an ``adjust_channel``
    (Conv2d(2048, 512, 1) + BatchNorm2d + ReLU) it builds but never uses, held as the detector's ``backbone``."""
    cadene = cadene_xception_module()
    net = cadene.Xception(num_classes=1000)
    assert len(net.state_dict()) == XCEPTION_ENTRIES
    del net.fc
    net.last_linear = nn.Linear(2048, 2)
    net.adjust_channel = nn.Sequential(nn.Conv2d(2048, 512, 1, 1), nn.BatchNorm2d(512), nn.ReLU(inplace=False))
    randomise(net, seed)
    grid(net.last_linear)
    return calibrate(net, torch.randn(2, 3, 256, 256, generator=gen(seed + 100)),
                     run=lambda t: net.adjust_channel(net.features(t)))


def parity_deepfakebench_xception(tmp_path: Path) -> tuple[float, float]:
    net = deepfakebench_xception(seed=21)
    path = write({f"backbone.{k}": v for k, v in net.state_dict().items()}, tmp_path / "xception_best.pth")
    model = converted("xception.deepfakebench_ffpp_c23", path, tmp_path / "ck")

    def official(d):
        net.to(d)
        logits = lambda t: net.logits(net.features(t))  # noqa: E731
        return lambda t: logits(t)[:, 1] - logits(t)[:, 0]  # softmax(.)[:, 1] = sigmoid(z_1 - z_0)

    x = torch.randn(1, 3, 256, 256, generator=gen(22))  # DeepfakeBench: 256 px, mean/std 0.5
    return compare(lambda d: (lambda t: model.to(d)(t)), official, x)


def test_deepfakebench_xception_full_depth_parity(tmp_path):
    d64, d32 = parity_deepfakebench_xception(tmp_path)
    assert d64 <= TOL64 and d32 <= TOL32, (d64, d32)


def test_deepfakebench_xception_file_matches_the_release_size(tmp_path):
    """xception_best.pth is 87,763,531 bytes: Cadene's Xception without the 1000-way fc, the 2-way head and
    adjust_channel; the file written here matches to within 0.5 %."""
    net = deepfakebench_xception(seed=0)
    written = write({f"backbone.{k}": v for k, v in net.state_dict().items()}, tmp_path / "x.pth").stat().st_size
    size = pretrained_entry("xception.deepfakebench_ffpp_c23").file.size
    assert abs(written - size) / size < 5e-3, (written, size)


def imagenet_xception_file(tmp_path: Path, layout: str, seed: int) -> tuple[Path, nn.Module]:
    """Cadene's ImageNet file (xception-b5690688.pth: ``fc``, 2-D pointwise weights, no BatchNorm counters) or
    timm's ``legacy_xception.tf_in1k`` model.safetensors (``fc``, 4-D pointwise weights), from Cadene's module."""
    net = randomise(cadene_xception_module().Xception(num_classes=1000), seed)
    calibrate(net, torch.randn(2, 3, 299, 299, generator=gen(seed + 100)), run=net.features)
    state = net.state_dict()
    if layout == "cadene":
        state = {k: (v[:, :, 0, 0].clone() if k.endswith("pointwise.weight") else v) for k, v in state.items()
                 if not k.endswith("num_batches_tracked")}
        assert len(state) == 236
        return write(state, tmp_path / "xception-b5690688.pth"), net
    from safetensors.torch import save_file

    path = tmp_path / "legacy_xception" / "model.safetensors"
    path.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path, net


def parity_imagenet_xception(tmp_path: Path, layout: str = "cadene") -> tuple[float, float]:
    path, net = imagenet_xception_file(tmp_path, layout, seed=23 if layout == "cadene" else 24)
    model = create_model("xception", weights=str(path)).eval()

    def official(d):
        net.to(d)
        return lambda t: F.adaptive_avg_pool2d(F.relu(net.features(t)), 1).flatten(1)

    x = torch.randn(1, 3, 299, 299, generator=gen(25))  # ImageNet Xception: 299 px
    return compare(lambda d: (lambda t: model.to(d).forward_features(t)), official, x)


@pytest.mark.parametrize("layout", ["cadene", "timm"])
def test_imagenet_xception_full_depth_parity(layout, tmp_path):
    d64, d32 = parity_imagenet_xception(tmp_path, layout)
    assert d64 <= TOL64 and d32 <= TOL32, (d64, d32)


# ------------------------------------------------------------------------ EfficientNet-B4 (upstream)
def efficientnet_b4(plain_stem: bool, seed: int):
    """efficientnet_pytorch's B4 (the package DeepfakeBench and icpr2020dfdc build it with): 32 blocks."""
    if not HAVE_EFFICIENTNET_PYTORCH:
        pytest.skip("pip install efficientnet_pytorch (the dev extra has it)")
    from efficientnet_pytorch import EfficientNet

    torch.manual_seed(seed)
    net = EfficientNet.from_name("efficientnet-b4")
    assert len(net._blocks) == 32
    if plain_stem:  # DeepfakeBench's stem: nn.Conv2d(3, 48, 3, stride=2, bias=False)
        net._conv_stem = nn.Conv2d(3, 48, 3, stride=2, bias=False)
    return calibrate(randomise(net, seed), torch.randn(2, 3, 256, 256, generator=gen(seed + 100)))


def parity_deepfakebench_efficientnet(tmp_path: Path) -> tuple[float, float]:
    net = efficientnet_b4(plain_stem=True, seed=31)
    head = grid(randomise(nn.Linear(1792, 2), 32))
    state = {f"backbone.efficientnet.{k}": v for k, v in net.state_dict().items()}
    state |= {"backbone.last_layer.weight": head.weight.detach(), "backbone.last_layer.bias": head.bias.detach()}
    # effnb4_best.pth: a plain state dict of the whole detector (efficientnet_pytorch's own _fc included)
    model = converted("efficientnet_b4.deepfakebench_ffpp_c23", write(state, tmp_path / "effnb4_best.pth"),
                      tmp_path / "ck")

    def official(d):
        net.to(d), head.to(d)
        logits = lambda t: head(F.adaptive_avg_pool2d(net.extract_features(t), 1).flatten(1))  # noqa: E731
        return lambda t: logits(t)[:, 1] - logits(t)[:, 0]  # softmax(.)[:, 1] = sigmoid(z_1 - z_0)

    x = torch.randn(1, 3, 256, 256, generator=gen(33))
    return compare(lambda d: (lambda t: model.to(d)(t)), official, x)


def parity_icpr2020_efficientnet(tmp_path: Path) -> tuple[float, float]:
    net = efficientnet_b4(plain_stem=False, seed=34)
    classifier = randomise(nn.Linear(1792, 1), 35)
    # icpr2020dfdc architectures/fornet.py EfficientNetB4: self.efficientnet (its _fc deleted), self.classifier;
    # the released file is that module's plain state dict
    state = {f"efficientnet.{k}": v for k, v in net.state_dict().items() if not k.startswith("_fc.")}
    state |= {"classifier.weight": classifier.weight.detach(), "classifier.bias": classifier.bias.detach()}
    model = converted("efficientnet_b4.icpr2020_ffpp", write(state, tmp_path / "icpr.pth"), tmp_path / "ck")

    def official(d):
        net.to(d), classifier.to(d)
        return lambda t: classifier(F.adaptive_avg_pool2d(net.extract_features(t), 1).flatten(1)).squeeze(1)

    x = torch.randn(1, 3, 224, 224, generator=gen(36))
    return compare(lambda d: (lambda t: model.to(d)(t)), official, x)


def test_deepfakebench_efficientnet_b4_full_depth_parity(tmp_path):
    d64, d32 = parity_deepfakebench_efficientnet(tmp_path)
    assert d64 <= TOL64 and d32 <= TOL32, (d64, d32)


def test_icpr2020_efficientnet_b4_full_depth_parity(tmp_path):
    d64, d32 = parity_icpr2020_efficientnet(tmp_path)
    assert d64 <= TOL64 and d32 <= TOL32, (d64, d32)


# ------------------------------------------------------------------------------ CLIP ViT-L/14 (upstream)
@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """A local Hugging Face cache, searched offline (HF_HUB_OFFLINE=1 is set by conftest)."""
    import huggingface_hub.constants as constants

    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def put_in_cache(model, cache: Path, repo: str, revision: str | None = None) -> None:
    commit = revision or "c" * 40
    folder = cache / f"models--{repo.replace('/', '--')}"
    model.save_pretrained(folder / "snapshots" / commit)
    if revision is None:
        (folder / "refs").mkdir(parents=True, exist_ok=True)
        (folder / "refs" / "main").write_text(commit)


def parity_univfd(tmp_path: Path, cache: Path) -> tuple[float, float]:
    """UniversalFakeDetect: transformers' CLIPVisionModelWithProjection at ViT-L/14's real size (24 layers, width
    1024, 16 heads, patch 14, 768-d projection: openai/clip-vit-large-patch14's config) in the Hub cache, and the
    linear head file (the real one when the shared fixture is there)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(41)
    clip = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, patch_size=14,
        image_size=224, projection_dim=768, hidden_act="quick_gelu")).eval()
    put_in_cache(clip, cache, "openai/clip-vit-large-patch14")
    if UFD_HEAD.is_file():
        path = UFD_HEAD
    else:  # models/clip_models.py: self.fc = nn.Linear(768, 1); the release saves fc.state_dict()
        path = write(randomise(nn.Linear(768, 1), 42).state_dict(), tmp_path / "fc_weights.pth")
    head = torch.load(path, map_location="cpu", weights_only=True)
    model = converted("univfd_clip.progan", path, tmp_path / "ck")

    def official(d):
        clip.to(d)
        w, b = head["weight"].to(d), head["bias"].to(d)
        return lambda t: (clip(pixel_values=t).image_embeds @ w.T + b).squeeze(1)

    x = torch.randn(1, 3, 224, 224, generator=gen(43))
    return compare(lambda d: (lambda t: model.to(d)(t)), official, x)


@pytest.mark.slow
def test_univfd_clip_vit_l14_full_size_parity(tmp_path, hub_cache):
    d64, d32 = parity_univfd(tmp_path, hub_cache)
    assert d64 <= TOL64 and d32 <= TOL32, (d64, d32)


# ---------------------------------------------------------------------- Swin classifier (upstream)
def parity_organika_swin(tmp_path: Path, cache: Path) -> tuple[float, float]:
    """Organika/sdxl-detector: transformers' SwinForImageClassification at Swin-B's size (embed 128, depths
    2-2-18-2, heads 4-8-16-32, window 7, 224 px; microsoft/swin-base-patch4-window7-224's config, which
    umm-maybe/AI-image-detector was fine-tuned from), two labels, 'artificial' first."""
    from transformers import SwinConfig, SwinForImageClassification

    entry = pretrained_entry("hf_classifier.organika_sdxl_detector")
    config = SwinConfig(image_size=224, patch_size=4, embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32],
                        window_size=7, id2label={0: "artificial", 1: "human"}, label2id={"artificial": 0, "human": 1})
    torch.manual_seed(51)
    official_net = SwinForImageClassification(config).eval()
    g = gen(52)
    with torch.no_grad():
        for p in official_net.parameters():
            if p.ndim == 1:  # LayerNorm and biases: random too, so every tensor carries a signal
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
    put_in_cache(official_net, cache, entry.model["hub_name"], entry.model["revision"])
    model = Detector.from_pretrained(entry.name, device="cpu").model.eval()

    x = torch.randn(1, 3, 224, 224, generator=gen(53))
    with torch.no_grad():  # the detector's logit (computed in float32 by design): z_artificial - z_human
        z = official_net.float()(pixel_values=x).logits
        assert torch.allclose(model.float()(x), z[:, 0] - z[:, 1], atol=TOL32)
    # the network itself: the class logits, in float64 and float32
    return compare(lambda d: (lambda t: model.to(d).forward_features(t)),
                   lambda d: (lambda t: official_net.to(d)(pixel_values=t).logits), x)


def test_organika_swin_full_depth_parity(tmp_path, hub_cache):
    d64, d32 = parity_organika_swin(tmp_path, hub_cache)
    assert d64 <= TOL64 and d32 <= TOL32, (d64, d32)


# ---------------------------------------------------------------- SlowFast's I3D ResNet-50, by hand
# Written from facebookresearch/SlowFast slowfast/models: stem_helper.py (VideoModelStem -> pathway0_stem =
# ResNetBasicStem: conv [5,7,7] stride [1,2,2] pad [2,3,3], bn, relu, pool_layer MaxPool3d [1,3,3]/[1,2,2]/[0,1,1]),
# resnet_helper.py (ResStage -> pathway0_res{i} = ResBlock: branch1 Conv3d 1x1x1 [1,s,s] + branch1_bn where the
# shape changes; branch2 = BottleneckTransform: a [kt,1,1] pad [kt//2,0,0], a_bn, b [1,3,3] stride [1,s,s] pad
# [0,1,1], b_bn, c [1,1,1], c_bn; x = branch1_bn(branch1(x)) + branch2(x) or x + branch2(x), then relu) and
# video_model_builder.py (ResNet "i3d": s1, s2, pathway0_pool MaxPool3d [2,1,1], s3, s4, s5, head.projection;
# _TEMPORAL_KERNEL_BASIS i3d = [[5]], [[3]], [[3, 1]], [[3, 1]], [[1, 3]]; depth 50 = (3, 4, 6, 3)).
# Checkpoints (.pyth, utils/checkpoint.py save_checkpoint): {"epoch", "model_state", "optimizer_state", "cfg"}.
class SFStem(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 64, [5, 7, 7], stride=[1, 2, 2], padding=[2, 3, 3], bias=False)
        self.bn = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        self.pool_layer = nn.MaxPool3d([1, 3, 3], [1, 2, 2], [0, 1, 1])

    def forward(self, x):
        return self.pool_layer(self.relu(self.bn(self.conv(x))))


class SFBottleneckTransform(nn.Module):
    def __init__(self, dim_in, dim_out, kt, stride, dim_inner) -> None:
        super().__init__()
        self.a = nn.Conv3d(dim_in, dim_inner, [kt, 1, 1], stride=[1, 1, 1], padding=[kt // 2, 0, 0], bias=False)
        self.a_bn = nn.BatchNorm3d(dim_inner)
        self.a_relu = nn.ReLU(inplace=True)
        self.b = nn.Conv3d(dim_inner, dim_inner, [1, 3, 3], stride=[1, stride, stride], padding=[0, 1, 1], bias=False)
        self.b_bn = nn.BatchNorm3d(dim_inner)
        self.b_relu = nn.ReLU(inplace=True)
        self.c = nn.Conv3d(dim_inner, dim_out, [1, 1, 1], bias=False)
        self.c_bn = nn.BatchNorm3d(dim_out)

    def forward(self, x):
        x = self.a_relu(self.a_bn(self.a(x)))
        x = self.b_relu(self.b_bn(self.b(x)))
        return self.c_bn(self.c(x))


class SFResBlock(nn.Module):
    def __init__(self, dim_in, dim_out, kt, stride, dim_inner) -> None:
        super().__init__()
        if dim_in != dim_out or stride != 1:
            self.branch1 = nn.Conv3d(dim_in, dim_out, 1, stride=[1, stride, stride], padding=0, bias=False)
            self.branch1_bn = nn.BatchNorm3d(dim_out)
        self.branch2 = SFBottleneckTransform(dim_in, dim_out, kt, stride, dim_inner)
        self.relu = nn.ReLU(True)

    def forward(self, x):
        if hasattr(self, "branch1"):
            x = self.branch1_bn(self.branch1(x)) + self.branch2(x)
        else:
            x = x + self.branch2(x)
        return self.relu(x)


class SFResStage(nn.Module):
    def __init__(self, dim_in, dim_out, dim_inner, blocks, kernels, stride) -> None:
        super().__init__()
        kts = (kernels * blocks)[:blocks]
        for i in range(blocks):
            self.add_module(f"pathway0_res{i}", SFResBlock(dim_in if i == 0 else dim_out, dim_out, kts[i],
                                                           stride if i == 0 else 1, dim_inner))
        self.blocks = blocks

    def forward(self, x):
        for i in range(self.blocks):
            x = getattr(self, f"pathway0_res{i}")(x)
        return x


class SlowFastI3D(nn.Module):
    """SlowFast's I3D ResNet-50 (one pathway), key names as its checkpoints; ``features`` stops after res4."""

    def __init__(self, num_classes: int = 400) -> None:
        super().__init__()
        self.s1 = nn.Module()
        self.s1.pathway0_stem = SFStem()
        self.s2 = SFResStage(64, 256, 64, 3, [3], 1)
        self.pathway0_pool = nn.MaxPool3d([2, 1, 1], [2, 1, 1], [0, 0, 0])
        self.s3 = SFResStage(256, 512, 128, 4, [3, 1], 2)
        self.s4 = SFResStage(512, 1024, 256, 6, [3, 1], 2)
        self.s5 = SFResStage(1024, 2048, 512, 3, [1, 3], 2)
        self.head = nn.Module()
        self.head.projection = nn.Linear(2048, num_classes)

    def features(self, x):  # FTCN's truncation after res4
        return self.s4(self.s3(self.pathway0_pool(self.s2(self.s1.pathway0_stem(x)))))


def i3d_encoder(**overrides):
    from fakescope.models.sdr.resnet3d import I3DConfig, I3DEncoder

    # an ordinary I3D ResNet-50 truncated after res4: 3x3 spatial kernels and every stride kept
    cfg = I3DConfig(spatial_kernel=3, keep_stride_count=100, zero_init_last_bn=False, **overrides)
    return I3DEncoder(cfg).eval()


def parity_slowfast_i3d(tmp_path: Path) -> tuple[float, float]:
    from fakescope.models.sdr.resnet3d import load_encoder_weights

    ref = randomise(SlowFastI3D(), seed=61)
    calibrate(ref, torch.randn(2, 3, 8, 64, 64, generator=gen(161)), run=ref.features)
    state = ref.state_dict()
    path = write({"epoch": 196, "model_state": state, "optimizer_state": {"state": {}, "param_groups": []},
                  "cfg": "MODEL:\n  ARCH: i3d\nRESNET:\n  DEPTH: 50\n"}, tmp_path / "I3D_8x8_R50.pyth")
    enc = i3d_encoder()
    assert load_encoder_weights(enc, path) == "slowfast"
    x = torch.randn(1, 3, 8, 64, 64, generator=gen(62))
    return compare(lambda d: (lambda t: enc.to(d)(t)), lambda d: (lambda t: ref.to(d).features(t)), x)


def parity_resnet2d_inflated(tmp_path: Path, layout: str) -> tuple[float, float]:
    """A 2-D ImageNet ResNet-50 (torchvision's layout, or transformers' ResNetModel, the upstream code of
    microsoft/resnet-50) inflated into the I3D encoder with temporal kernels 1: each frame's res4 map must equal
    the 2-D network's ``layer3`` map."""
    from fakescope.models.sdr.resnet3d import load_encoder_weights

    if layout == "torchvision":
        ref = calibrate(randomise(TvResNet((3, 4, 6, 3), num_classes=1000), seed=63),
                        torch.randn(2, 3, 64, 64, generator=gen(163)))
        state = ref.state_dict()
        assert state_layout(state) == TV_RESNET50_LAYOUT
        path = write(state, tmp_path / "resnet50-11ad3fa6.pth")
        official = lambda d: (lambda t: ref.to(d).features(t, upto=3))  # noqa: E731
    else:
        from transformers import ResNetConfig, ResNetModel

        ref = randomise(ResNetModel(ResNetConfig(layer_type="bottleneck", depths=[3, 4, 6, 3], embedding_size=64,
                                                 hidden_sizes=[256, 512, 1024, 2048])), seed=64)
        calibrate(ref, torch.randn(2, 3, 64, 64, generator=gen(164)), run=lambda t: ref(pixel_values=t))
        from safetensors.torch import save_file

        path = tmp_path / "resnet-50" / "model.safetensors"
        path.parent.mkdir(parents=True)
        save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
        official = lambda d: (lambda t: ref.to(d)(pixel_values=t, output_hidden_states=True).hidden_states[3])  # noqa
    enc = i3d_encoder(stem_temporal_kernel=1, temporal_kernels=[[1], [1], [1]], temporal_pool=False)
    assert load_encoder_weights(enc, path) == layout
    frames = torch.randn(3, 3, 64, 64, generator=gen(65))

    def ours(d):
        enc.to(d)
        return lambda t: enc(t.transpose(0, 1).unsqueeze(0))[0].transpose(0, 1)  # [T,3,H,W] as one clip

    return compare(ours, official, frames)


def test_slowfast_i3d_r50_full_depth_parity(tmp_path):
    d64, d32 = parity_slowfast_i3d(tmp_path)
    assert d64 <= TOL64 and d32 <= TOL32, (d64, d32)


@pytest.mark.parametrize("layout", ["torchvision", "transformers"])
def test_resnet50_inflated_into_the_i3d_encoder_full_depth_parity(layout, tmp_path):
    d64, d32 = parity_resnet2d_inflated(tmp_path, layout)
    assert d64 <= TOL64 and d32 <= TOL32, (d64, d32)


# every converter and loading path above, with the parity function that exercises it (the mutation check's list)
PARITY = {
    "torchvision_resnet": lambda tmp, cache: parity_cnndetection(tmp),
    "npr": lambda tmp, cache: parity_npr(tmp),
    "deepfakebench_xception": lambda tmp, cache: parity_deepfakebench_xception(tmp),
    "imagenet_xception (cadene)": lambda tmp, cache: parity_imagenet_xception(tmp, "cadene"),
    "imagenet_xception (timm)": lambda tmp, cache: parity_imagenet_xception(tmp, "timm"),
    "deepfakebench_efficientnet": lambda tmp, cache: parity_deepfakebench_efficientnet(tmp),
    "icpr2020_efficientnet": lambda tmp, cache: parity_icpr2020_efficientnet(tmp),
    "linear_head": lambda tmp, cache: parity_univfd(tmp, cache),
    "i3d (slowfast)": lambda tmp, cache: parity_slowfast_i3d(tmp),
    "i3d (torchvision)": lambda tmp, cache: parity_resnet2d_inflated(tmp, "torchvision"),
    "i3d (transformers)": lambda tmp, cache: parity_resnet2d_inflated(tmp, "transformers"),
}

if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q", "-m", "slow or not slow"]))
