"""Key maps from the official weight files of other projects to fakescope's detectors.

A converter takes the official state dict (already unwrapped from its container, see
:func:`unwrap_state`) and the fakescope model, and returns ``(state, used, dropped)``: the model's tensors
by its own names, the official keys it took them from, and the official keys it drops on purpose (each
with the reason). :func:`fakescope.zoo.pretrained.convert` then checks that every official tensor is
either used or dropped and that every parameter of the model was filled, so nothing is lost or invented.

Key layouts read (each from the official code that saves the file):

* torchvision's ResNet (CNNDetection's ``networks/resnet.py`` is a copy): ``conv1``, ``bn1``,
  ``layer{1-4}.{b}.conv{1-3}/bn{1-3}/downsample.{0,1}``, ``fc``; mapped onto transformers' ``ResNetModel``
  (``embedder.embedder``, ``encoder.stages.{s}.layers.{b}.layer.{i}``, ``shortcut``), whose bottleneck puts
  the stride on the 3x3 convolution as torchvision does.
* NPR's truncated ResNet-50 (``conv1`` 3x3 stride 2, ``layer1``, ``layer2``, ``fc1``): onto
  :class:`~fakescope.models.baselines.npr.NPR` (``stem``, ``stages``, ``head``).
* efficientnet_pytorch's EfficientNet (DeepfakeBench's EfficientNet-B4): ``_conv_stem``, ``_bn0``,
  ``_blocks.{i}._expand_conv/_bn0/_depthwise_conv/_bn1/_se_reduce/_se_expand/_project_conv/_bn2``,
  ``_conv_head``, ``_bn1``; onto transformers' ``EfficientNetModel`` (same block order).
* A two-way softmax head (``[2, D]``, class 1 = fake) becomes fakescope's one logit
  ``z_fake - z_real``: ``sigmoid(z_1 - z_0)`` is the softmax's P(fake), exactly.
"""

from __future__ import annotations

import re
from typing import Callable

import torch
from torch import Tensor

from fakescope.errors import CheckpointError
from fakescope.registry import Registry

State = dict[str, Tensor]
Converter = Callable[[State, torch.nn.Module], "tuple[State, set[str], dict[str, str]]"]
CONVERTERS: Registry[Converter] = Registry("weights converter")

_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def unwrap_state(obj, source: str) -> tuple[State, dict[str, str]]:
    """The state dict inside an official file, and what else the file holds (dropped, with the reason).

    Takes a plain state dict, or a dict whose ``model``/``state_dict``/``net`` entry is one (training files:
    the optimizer state and step counters beside it are dropped); strips a ``module.`` prefix (DataParallel).
    """
    if not isinstance(obj, dict):
        raise CheckpointError(f"{source}: expected a state dict, found {type(obj).__name__}")
    dropped: dict[str, str] = {}
    state = obj
    for key in ("model", "state_dict", "net"):
        if isinstance(obj.get(key), dict) and any(isinstance(v, Tensor) for v in obj[key].values()):
            state = obj[key]
            dropped = {k: "training state beside the weights (optimizer, counters), not model weights"
                       for k in obj if k != key}
            break
    tensors = {k: v for k, v in state.items() if isinstance(v, Tensor)}
    for k in state:
        if k not in tensors:
            dropped[k] = f"not a tensor ({type(state[k]).__name__})"
    if tensors and all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return {k: v.detach().to("cpu") for k, v in tensors.items()}, dropped


def two_way_to_logit(weight: Tensor, bias: Tensor, fake: int = 1) -> tuple[Tensor, Tensor]:
    """A ``[2, D]`` softmax head -> one logit ``z_fake - z_real`` (``[1, D]``, ``[1]``)."""
    real = 1 - fake
    return (weight[fake] - weight[real]).unsqueeze(0).clone(), (bias[fake] - bias[real]).reshape(1).clone()


def _map(official: State, rename: Callable[[str], str | None], prefix: str = "") -> tuple[State, set[str]]:
    state, used = {}, set()
    for k, v in official.items():
        new = rename(k)
        if new is not None:
            state[prefix + new] = v
            used.add(k)
    return state, used


# ------------------------------------------------------------------------------------------- ResNet
_TV_BLOCK = re.compile(r"layer(\d)\.(\d+)\.(conv|bn)(\d)\.(.+)")
_TV_DOWN = re.compile(r"layer(\d)\.(\d+)\.downsample\.([01])\.(.+)")


def torchvision_resnet_to_hf(key: str) -> str | None:
    """A torchvision ResNet key -> transformers ``ResNetModel`` key (``None``: not part of the backbone)."""
    if m := re.fullmatch(r"conv1\.(weight)", key):
        return f"embedder.embedder.convolution.{m[1]}"
    if m := re.fullmatch(r"bn1\.(.+)", key):
        return f"embedder.embedder.normalization.{m[1]}"
    if m := _TV_BLOCK.fullmatch(key):
        part = "convolution" if m[3] == "conv" else "normalization"
        return f"encoder.stages.{int(m[1]) - 1}.layers.{m[2]}.layer.{int(m[4]) - 1}.{part}.{m[5]}"
    if m := _TV_DOWN.fullmatch(key):
        part = "convolution" if m[3] == "0" else "normalization"
        return f"encoder.stages.{int(m[1]) - 1}.layers.{m[2]}.shortcut.{part}.{m[4]}"
    return None


@CONVERTERS.register("torchvision_resnet", description="torchvision ResNet with a 1-logit fc (CNNDetection)")
def convert_torchvision_resnet(official: State, model) -> tuple[State, set[str], dict[str, str]]:
    state, used = _map(official, torchvision_resnet_to_hf, "backbone.")
    for name in ("weight", "bias"):
        state[f"head.{name}"] = official[f"fc.{name}"]
        used.add(f"fc.{name}")
    return state, used, {}


# ---------------------------------------------------------------------------------------------- NPR
def npr_to_fakescope(key: str, blocks: list[int]) -> str | None:
    """An official NPR key -> :class:`~fakescope.models.baselines.npr.NPR` key."""
    body = {"conv1": 0, "bn1": 1, "conv2": 3, "bn2": 4, "conv3": 6, "bn3": 7}
    if m := re.fullmatch(r"conv1\.(weight)", key):
        return f"stem.0.{m[1]}"
    if m := re.fullmatch(r"bn1\.(.+)", key):
        return f"stem.1.{m[1]}"
    if m := re.fullmatch(r"layer(\d)\.(\d+)\.(conv\d|bn\d)\.(.+)", key):
        index = sum(blocks[:int(m[1]) - 1]) + int(m[2])
        return f"stages.{index}.body.{body[m[3]]}.{m[4]}"
    if m := re.fullmatch(r"layer(\d)\.(\d+)\.downsample\.([01])\.(.+)", key):
        index = sum(blocks[:int(m[1]) - 1]) + int(m[2])
        return f"stages.{index}.shortcut.{m[3]}.{m[4]}"
    if m := re.fullmatch(r"fc1\.(weight|bias)", key):
        return f"head.{m[1]}"
    return None


@CONVERTERS.register("npr", description="NPR's truncated ResNet-50 (conv1, layer1, layer2, fc1)")
def convert_npr(official: State, model) -> tuple[State, set[str], dict[str, str]]:
    state, used = _map(official, lambda k: npr_to_fakescope(k, list(model.cfg.blocks)))
    return state, used, {}


# ----------------------------------------------------------------------------- a linear probe head
@CONVERTERS.register("linear_head", description="a linear layer on backbone features (UniversalFakeDetect's fc)")
def convert_linear_head(official: State, model) -> tuple[State, set[str], dict[str, str]]:
    keys = {k.split(".")[-1]: k for k in official}
    if set(keys) != {"weight", "bias"} or len(official) != 2:
        raise CheckpointError(f"a linear head has one weight and one bias, found {sorted(official)}")
    return {"head.weight": official[keys["weight"]], "head.bias": official[keys["bias"]]}, set(official), {}


# ----------------------------------------------------------------------------------- EfficientNet
_EFF_BLOCK = {"_expand_conv": "expansion.expand_conv", "_bn0": "expansion.expand_bn",
              "_depthwise_conv": "depthwise_conv.depthwise_conv", "_bn1": "depthwise_conv.depthwise_norm",
              "_se_reduce": "squeeze_excite.reduce", "_se_expand": "squeeze_excite.expand",
              "_project_conv": "projection.project_conv", "_bn2": "projection.project_bn"}
_EFF_TOP = {"_conv_stem": "embeddings.convolution", "_bn0": "embeddings.batchnorm", "_conv_head": "encoder.top_conv",
            "_bn1": "encoder.top_bn"}


def efficientnet_pytorch_to_hf(key: str) -> str | None:
    """An efficientnet_pytorch key (no wrapper prefix) -> transformers ``EfficientNetModel`` key."""
    if m := re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(.+)", key):
        return f"encoder.blocks.{m[1]}.{_EFF_BLOCK[m[2]]}.{m[3]}" if m[2] in _EFF_BLOCK else None
    if m := re.fullmatch(r"(_conv_stem|_bn0|_conv_head|_bn1)\.(.+)", key):
        return f"{_EFF_TOP[m[1]]}.{m[2]}"
    return None


@CONVERTERS.register("deepfakebench_efficientnet",
                     description="DeepfakeBench's EfficientNet-B4 detector (efficientnet_pytorch, 2-way head)")
def convert_deepfakebench_efficientnet(official: State, model) -> tuple[State, set[str], dict[str, str]]:
    prefix = "backbone.efficientnet."
    inner = {k[len(prefix):]: v for k, v in official.items() if k.startswith(prefix)}
    state, used_inner = _map(inner, efficientnet_pytorch_to_hf, "backbone.")
    used = {prefix + k for k in used_inner}
    dropped = {prefix + k: "efficientnet_pytorch's own ImageNet classifier, replaced by the detector's head"
               for k in inner if k.startswith("_fc.")}
    weight, bias = two_way_to_logit(official["backbone.last_layer.weight"], official["backbone.last_layer.bias"])
    state["head.weight"], state["head.bias"] = weight, bias
    used |= {"backbone.last_layer.weight", "backbone.last_layer.bias"}
    return state, used, dropped


@CONVERTERS.register("icpr2020_efficientnet",
                     description="Bonettini et al.'s EfficientNet-B4 (efficientnet_pytorch, 1-logit classifier)")
def convert_icpr2020_efficientnet(official: State, model) -> tuple[State, set[str], dict[str, str]]:
    prefix = "efficientnet."
    inner = {k[len(prefix):]: v for k, v in official.items() if k.startswith(prefix)}
    state, used_inner = _map(inner, efficientnet_pytorch_to_hf, "backbone.")
    used = {prefix + k for k in used_inner}
    for name in ("weight", "bias"):
        state[f"head.{name}"] = official[f"classifier.{name}"]
        used.add(f"classifier.{name}")
    return state, used, {}


@CONVERTERS.register("deepfakebench_xception", description="DeepfakeBench's Xception detector (2-way last_linear)")
def convert_deepfakebench_xception(official: State, model) -> tuple[State, set[str], dict[str, str]]:
    state, used, dropped = {}, set(), {}
    for key, value in official.items():
        if not key.startswith("backbone."):
            continue
        inner = key[len("backbone."):]
        if inner.startswith("adjust_channel."):
            dropped[key] = "DeepfakeBench builds it in every mode; the 'original' mode of the release never uses it"
        elif not inner.startswith("last_linear."):
            state[inner] = value[:, :, None, None] if inner.endswith("pointwise.weight") and value.ndim == 2 else value
            used.add(key)
    weight, bias = two_way_to_logit(official["backbone.last_linear.weight"], official["backbone.last_linear.bias"])
    state["head.weight"], state["head.bias"] = weight, bias
    used |= {"backbone.last_linear.weight", "backbone.last_linear.bias"}
    return state, used, dropped
