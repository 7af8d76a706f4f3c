"""Pretrained backbones by Hugging Face hub name or from a local path, via transformers.

Loading rules (open_clip style: fail loudly):

* ``weights`` set: load from that local folder (``save_pretrained`` layout) or
  weights file (``.safetensors``; ``.bin``/``.pt``/``.pth`` read with
  ``weights_only=True``). Missing or unexpected keys are an error.
* ``pretrained`` true and no ``weights``: by hub name, from the Hugging Face
  cache or downloaded (:func:`fakescope.models.sources.hub_snapshot`; with :mod:`fakescope.zoo` as the source,
  with no network or offline an error at once, naming the files and where they go). If that
  fails, raise :class:`WeightsUnavailableError`; never fall back to random
  weights silently.
* neither: random initialisation with the hub model's own architecture (from
  the table below), optionally shrunk by ``overrides`` for tests.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fakescope.errors import ConfigError, WeightsUnavailableError
from fakescope.models.sources import HubModel, hub_cache, hub_snapshot
from fakescope.models.state import load_state_file, load_state_strict

log = logging.getLogger(__name__)

# transformers class names per architecture family
_FAMILIES: dict[str, tuple[str, str]] = {
    "dinov2": ("Dinov2Config", "Dinov2Model"),
    "efficientnet": ("EfficientNetConfig", "EfficientNetModel"),
    "resnet": ("ResNetConfig", "ResNetModel"),
    "clip_vision": ("CLIPVisionConfig", "CLIPVisionModelWithProjection"),
}

# Architectures of the hub checkpoints we use, so that random init (offline tests,
# or loading a fakescope checkpoint) builds exactly the network the weights fit.
HUB_ARCHITECTURES: dict[str, tuple[str, dict[str, Any]]] = {
    "facebook/dinov2-small": ("dinov2", dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                                              patch_size=14, image_size=518, mlp_ratio=4)),
    "facebook/dinov2-base": ("dinov2", dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                             patch_size=14, image_size=518, mlp_ratio=4)),
    "facebook/dinov2-large": ("dinov2", dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                              patch_size=14, image_size=518, mlp_ratio=4)),
    "google/efficientnet-b0": ("efficientnet", dict(width_coefficient=1.0, depth_coefficient=1.0, image_size=224,
                                                     dropout_rate=0.2, hidden_dim=1280)),
    # depthwise_padding: the blocks whose stride-2 depthwise convolution pads symmetrically, as TensorFlow's 'same'
    # padding does at the design size (transformers' EfficientNet conversion table: b0 none, b4 block 6)
    "google/efficientnet-b4": ("efficientnet", dict(width_coefficient=1.4, depth_coefficient=1.8, image_size=380,
                                                     dropout_rate=0.4, hidden_dim=1792, depthwise_padding=[6])),
    "microsoft/resnet-50": ("resnet", dict(layer_type="bottleneck", depths=[3, 4, 6, 3], embedding_size=64,
                                           hidden_sizes=[256, 512, 1024, 2048])),
    "openai/clip-vit-base-patch16": ("clip_vision", dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                                         num_attention_heads=12, patch_size=16, image_size=224,
                                                         projection_dim=512)),
    "openai/clip-vit-large-patch14": ("clip_vision", dict(hidden_size=1024, intermediate_size=4096,
                                                          num_hidden_layers=24, num_attention_heads=16, patch_size=14,
                                                          image_size=224, projection_dim=768)),
}


def _classes(family: str):
    import transformers

    cfg_name, model_name = _FAMILIES[family]
    return getattr(transformers, cfg_name), getattr(transformers, model_name)


def hf_backbone(
    hub_name: str,
    *,
    pretrained: bool = False,
    weights: str | None = None,
    overrides: dict[str, Any] | None = None,
    family: str | None = None,
) -> nn.Module:
    """Build a transformers vision backbone (see the module docstring for the rules)."""
    overrides = dict(overrides or {})
    if hub_name in HUB_ARCHITECTURES:
        known_family, arch = HUB_ARCHITECTURES[hub_name]
        family = family or known_family
    elif family is None:
        raise ConfigError(
            f"backbone '{hub_name}': unknown architecture; name its family ({', '.join(_FAMILIES)}) "
            "or use one of: " + ", ".join(HUB_ARCHITECTURES)
        )
    else:
        arch = {}
    if family not in _FAMILIES:
        raise ConfigError(f"backbone family '{family}' is not supported (supported: {', '.join(_FAMILIES)})")
    config_cls, model_cls = _classes(family)

    local_file = bool(weights) and Path(weights).expanduser().is_file()
    if overrides and (pretrained or weights) and not local_file:
        raise ConfigError(
            f"backbone '{hub_name}': architecture overrides {sorted(overrides)} cannot be combined with hub or "
            "save_pretrained weights (those carry their own architecture); use them with pretrained: false "
            "or with a weights file made for the overridden architecture"
        )

    if weights:
        return _from_local(weights, hub_name, config_cls, model_cls, {**arch, **overrides})
    if pretrained:
        # from the cache, or (fakescope.zoo installed as the source) downloaded after one quick check that the Hub
        # answers: never transformers' own download, which retries for about 25 s with no network
        hub_snapshot(backbone_hub_model(hub_name, family),
                     hint=". Or give a local copy with `weights: /path` (a save_pretrained folder or a .safetensors file)")
        try:
            return model_cls.from_pretrained(hub_name, local_files_only=True, cache_dir=str(hub_cache()))
        except Exception as exc:  # a file in the cache that does not load
            raise WeightsUnavailableError(
                f"could not load pretrained weights '{hub_name}' from the Hugging Face hub ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else exc!r}). Give a local copy with `weights: /path` "
                "(a save_pretrained folder or a .safetensors file), or set `pretrained: false` for random init."
            ) from exc
    model = model_cls(config_cls(**{**arch, **overrides}))
    if family == "efficientnet":
        _kaiming_init(model)
    return model


def backbone_hub_model(hub_name: str, family: str | None = None):
    """The :class:`~fakescope.models.sources.HubModel` that ``hf_backbone(hub_name, pretrained=True)`` loads."""
    family = family or HUB_ARCHITECTURES.get(hub_name, (None,))[0]
    kind = f"transformers {_FAMILIES[family][1]}" if family in _FAMILIES else "transformers"
    return HubModel(hub_name, role=f"the backbone ({kind})")


def _kaiming_init(model: nn.Module) -> None:
    """Trainable random init for CNNs whose transformers init is only a placeholder for loaded weights.

    transformers' EfficientNet draws BatchNorm scales from N(0, 0.02), so a randomly
    initialised network outputs (near) constants. Use the usual ResNet-style init instead.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):  # fan-out per group, as the reference EfficientNet init does
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _from_local(weights: str, hub_name: str, config_cls, model_cls, arch: dict[str, Any]) -> nn.Module:
    path = Path(weights).expanduser()
    if path.is_dir():
        try:
            return model_cls.from_pretrained(str(path), local_files_only=True)
        except Exception as exc:
            raise WeightsUnavailableError(f"{path}: could not load backbone weights for '{hub_name}': {exc}") from exc
    if not path.is_file():
        raise WeightsUnavailableError(f"{path}: backbone weights not found (backbone '{hub_name}')")
    model = model_cls(config_cls(**arch))
    state = load_state_file(path)
    load_state_strict(model, state, source=str(path))
    return model
