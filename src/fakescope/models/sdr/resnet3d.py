"""FTCN's temporal encoder: an I3D ResNet-50 whose spatial kernels are all 1x1, truncated after res4.

Zheng et al., "Exploring Temporal Coherence for More General Video Face Forgery
Detection" (FTCN, ICCV 2021) take SlowFast's I3D ResNet-50 and set every
spatial kernel to 1x1 while keeping the temporal ones, so the network sees how
each position changes in time rather than spatial texture. Written here from
that description (nothing is copied from SlowFast):

* layout of SlowFast's I3D R50 (``NUM_BLOCK_TEMP_KERNEL [[3],[4],[6],[3]]``):
  stem conv with temporal kernel 5; res2 blocks with temporal kernel 3; res3 and
  res4 alternate 3 and 1 (the temporal kernel sits on each bottleneck's first
  1x1 conv); a temporal max-pool (2, 1, 1) after res2;
* FTCN's change: spatial kernels 1x1 (``spatial_kernel``); a spatial stride of 2
  past the first ``keep_stride_count`` strided convs (FTCN: 0) becomes stride 1
  plus ``MaxPool3d((1, 2, 2))`` after that conv's BatchNorm;
* truncation after res4 (FTCN's ``stop_point: 5``): a 32 x 224 x 224 clip gives
  1024 channels x 16 time steps x 14 x 14.

Weights: random init (SlowFast's: Kaiming fan-out, last BatchNorm of each block
zero-initialised), or a local file through :func:`load_encoder_weights`, which
inflates 2D ImageNet ResNet-50 weights (torchvision or transformers layout) or
takes SlowFast I3D (Kinetics) weights, summing spatial kernels to 1x1.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from fakescope.models.layers.init import resnet_init
from fakescope.schema import Strict
from fakescope.errors import CheckpointError, WeightsUnavailableError


class I3DConfig(Strict):
    """Architecture of the FTCN encoder (defaults: FTCN's I3D ResNet-50 truncated after res4)."""

    stem_width: int = Field(default=64, ge=1)
    widths: list[int] = Field(default_factory=lambda: [64, 128, 256], min_length=1,
                              description="bottleneck (inner) widths of res2, res3, res4...")
    blocks: list[int] = Field(default_factory=lambda: [3, 4, 6], min_length=1)
    expansion: int = Field(default=4, ge=1)
    stem_temporal_kernel: int = Field(default=5, ge=1)
    temporal_kernels: list[list[int]] = Field(
        default_factory=lambda: [[3], [3, 1], [3, 1]],
        description="per stage, the temporal kernels its blocks cycle through (I3D: [[3], [3, 1], [3, 1]])")
    spatial_kernel: Literal[1, 3] = Field(default=1, description="1: FTCN (time only); 3: an ordinary I3D")
    keep_stride_count: int = Field(
        default=0, ge=0, description="strided convs that keep their stride; the rest become stride 1 + max-pool")
    temporal_pool: bool = Field(default=True, description="max-pool (2, 1, 1) after the first stage")
    zero_init_last_bn: bool = True
    grad_checkpoint: bool = Field(default=False, description="recompute each block in backward to save memory")

    @model_validator(mode="after")
    def _check(self) -> "I3DConfig":
        if len(self.widths) != len(self.blocks) or len(self.temporal_kernels) != len(self.blocks):
            raise ValueError("encoder: widths, blocks and temporal_kernels need one entry per stage")
        if any(not ks or any(k < 1 or k % 2 == 0 for k in ks) for ks in self.temporal_kernels):
            raise ValueError("encoder: temporal kernels must be odd and positive")
        if self.stem_temporal_kernel % 2 == 0:
            raise ValueError("encoder: stem_temporal_kernel must be odd")
        return self

    @property
    def out_channels(self) -> int:
        return self.widths[-1] * self.expansion

    def out_frames(self, frames: int) -> int:
        """Time steps of the output for an input of ``frames`` frames."""
        return frames // 2 if self.temporal_pool else frames

    def block_kernels(self, stage: int) -> list[int]:
        ks = self.temporal_kernels[stage]
        return [ks[i % len(ks)] for i in range(self.blocks[stage])]


class _Strided:
    """Hands out, in network order, whether each spatially strided conv keeps its stride."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.seen = 0

    def next(self) -> bool:
        self.seen += 1
        return self.seen <= self.keep


def _conv_bn(cin: int, cout: int, kt: int, ks: int, stride: int, strided: _Strided | None,
             ) -> tuple[nn.Conv3d, nn.Module]:
    """A Conv3d (kt x ks x ks) and its BatchNorm; a moved stride becomes a max-pool after the BatchNorm."""
    keep = stride == 1 or (strided is not None and strided.next())
    conv = nn.Conv3d(cin, cout, (kt, ks, ks), stride=(1, stride, stride) if keep else 1,
                     padding=(kt // 2, ks // 2, ks // 2), bias=False)
    bn: nn.Module = nn.BatchNorm3d(cout)
    if not keep:
        bn = nn.Sequential(bn, nn.MaxPool3d((1, 2, 2)))
    return conv, bn


class Stem(nn.Module):
    def __init__(self, cfg: I3DConfig, strided: _Strided) -> None:
        super().__init__()
        ks = 7 if cfg.spatial_kernel == 3 else 1
        self.conv, self.bn = _conv_bn(3, cfg.stem_width, cfg.stem_temporal_kernel, ks, 2, strided)
        self.pool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(torch.relu(self.bn(self.conv(x))))


class Bottleneck3d(nn.Module):
    """SlowFast's bottleneck: temporal kernel on the first 1x1 conv, the (spatial) stride on the second."""

    def __init__(self, cin: int, width: int, cout: int, kt: int, ks: int, stride: int, strided: _Strided) -> None:
        super().__init__()
        self.shortcut: nn.Module | None = None
        if cin != cout or stride != 1:
            conv, bn = _conv_bn(cin, cout, 1, 1, stride, strided)
            self.shortcut = nn.Sequential()
            self.shortcut.add_module("conv", conv)
            self.shortcut.add_module("bn", bn)
        self.conv_a, self.bn_a = _conv_bn(cin, width, kt, 1, 1, None)
        self.conv_b, self.bn_b = _conv_bn(width, width, 1, ks, stride, strided)
        self.conv_c, self.bn_c = _conv_bn(width, cout, 1, 1, 1, None)

    def forward(self, x: Tensor) -> Tensor:
        y = torch.relu(self.bn_a(self.conv_a(x)))
        y = torch.relu(self.bn_b(self.conv_b(y)))
        y = self.bn_c(self.conv_c(y))
        return torch.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class I3DEncoder(nn.Module):
    """``[B, 3, T, H, W]`` -> ``[B, C, T', H', W']`` (C = 1024, T' = T/2, H' = H/16 with the defaults)."""

    def __init__(self, cfg: I3DConfig) -> None:
        super().__init__()
        self.cfg = cfg
        strided = _Strided(cfg.keep_stride_count)
        self.stem = Stem(cfg, strided)
        cin = cfg.stem_width
        self.stages = nn.ModuleList()
        for i, (width, n) in enumerate(zip(cfg.widths, cfg.blocks)):
            cout = width * cfg.expansion
            blocks = []
            for j, kt in enumerate(cfg.block_kernels(i)):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(Bottleneck3d(cin, width, cout, kt, cfg.spatial_kernel, stride, strided))
                cin = cout
            self.stages.append(nn.Sequential(*blocks))
        self.temporal_pool = nn.MaxPool3d((2, 1, 1), stride=(2, 1, 1)) if cfg.temporal_pool else nn.Identity()
        self.reset_parameters()

    @property
    def out_channels(self) -> int:
        return self.cfg.out_channels

    def reset_parameters(self) -> None:
        resnet_init(self)
        if self.cfg.zero_init_last_bn:
            for m in self.modules():
                if isinstance(m, Bottleneck3d):
                    nn.init.zeros_(m.bn_c.weight)

    def _run(self, module: nn.Module, x: Tensor) -> Tensor:
        if self.cfg.grad_checkpoint and self.training and torch.is_grad_enabled():
            return checkpoint(module, x, use_reentrant=False)
        return module(x)

    def forward(self, x: Tensor) -> Tensor:
        x = self._run(self.stem, x)
        for i, stage in enumerate(self.stages):
            for block in stage:
                x = self._run(block, x)
            if i == 0:
                x = self.temporal_pool(x)
        return x


# ----------------------------------------------------------------- weights
def _strip(state: dict[str, Tensor], prefixes: tuple[str, ...]) -> dict[str, Tensor]:
    for p in prefixes:
        if state and all(k.startswith(p) for k in state):
            state = {k[len(p):]: v for k, v in state.items()}
    return state


def _map_torchvision(key: str) -> str | None:
    """torchvision ResNet names -> ours (None: not part of the truncated encoder)."""
    m = re.fullmatch(r"(conv1|bn1)\.(\w+)", key)
    if m:
        return f"stem.{'conv' if m.group(1) == 'conv1' else 'bn'}.{m.group(2)}"
    m = re.fullmatch(r"layer(\d)\.(\d+)\.(conv|bn)([123])\.(\w+)", key)
    if m:
        part = "abc"[int(m.group(4)) - 1]
        return f"stages.{int(m.group(1)) - 1}.{m.group(2)}.{m.group(3)}_{part}.{m.group(5)}"
    m = re.fullmatch(r"layer(\d)\.(\d+)\.downsample\.([01])\.(\w+)", key)
    if m:
        return f"stages.{int(m.group(1)) - 1}.{m.group(2)}.shortcut.{'conv' if m.group(3) == '0' else 'bn'}.{m.group(4)}"
    return None


def _map_transformers(key: str) -> str | None:
    """transformers ``ResNetModel`` names -> ours."""
    m = re.fullmatch(r"embedder\.embedder\.(convolution|normalization)\.(\w+)", key)
    if m:
        return f"stem.{'conv' if m.group(1) == 'convolution' else 'bn'}.{m.group(2)}"
    m = re.fullmatch(r"encoder\.stages\.(\d)\.layers\.(\d+)\.layer\.([012])\.(convolution|normalization)\.(\w+)", key)
    if m:
        kind = "conv" if m.group(4) == "convolution" else "bn"
        return f"stages.{m.group(1)}.{m.group(2)}.{kind}_{'abc'[int(m.group(3))]}.{m.group(5)}"
    m = re.fullmatch(r"encoder\.stages\.(\d)\.layers\.(\d+)\.shortcut\.(convolution|normalization)\.(\w+)", key)
    if m:
        kind = "conv" if m.group(3) == "convolution" else "bn"
        return f"stages.{m.group(1)}.{m.group(2)}.shortcut.{kind}.{m.group(4)}"
    return None


def _map_slowfast(key: str) -> str | None:
    """SlowFast ``ResNet`` (I3D, one pathway) names -> ours."""
    m = re.fullmatch(r"s1\.pathway0_stem\.(conv|bn)\.(\w+)", key)
    if m:
        return f"stem.{m.group(1)}.{m.group(2)}"
    m = re.fullmatch(r"s(\d)\.pathway0_res(\d+)\.branch2\.([abc])(_bn)?\.(\w+)", key)
    if m:
        kind = "bn" if m.group(4) else "conv"
        return f"stages.{int(m.group(1)) - 2}.{m.group(2)}.{kind}_{m.group(3)}.{m.group(5)}"
    m = re.fullmatch(r"s(\d)\.pathway0_res(\d+)\.branch1(_bn)?\.(\w+)", key)
    if m:
        return f"stages.{int(m.group(1)) - 2}.{m.group(2)}.shortcut.{'bn' if m.group(3) else 'conv'}.{m.group(4)}"
    return None


_FORMATS = {
    "torchvision": (("conv1.weight",), _map_torchvision, ("fc.",)),
    "transformers": (("embedder.embedder.convolution.weight",), _map_transformers, ("pooler.", "classifier.")),
    "slowfast": (("s1.pathway0_stem.conv.weight",), _map_slowfast, ("head.",)),
}


def detect_format(state: dict[str, Tensor]) -> str:
    """``torchvision``, ``transformers`` or ``slowfast``, from the key names."""
    for name, (marker, _, _) in _FORMATS.items():
        if all(k in state for k in marker):
            return name
    shown = ", ".join(sorted(state)[:5])
    raise CheckpointError(
        "unrecognised encoder weights: expected this encoder's own state dict, a 2D ResNet-50 (torchvision or "
        f"transformers names) or a SlowFast I3D checkpoint; the first keys are {shown}")


def _inflate(src: Tensor, dst_shape: torch.Size, key: str, source: str) -> Tensor:
    """A 2D or 3D conv kernel reshaped to ``dst_shape`` = (O, I, kt, ks, ks) (I3D inflation).

    Spatial kernels wider than the target are summed (a 1x1 kernel then answers a
    spatially flat input as the original did); a 2D kernel is repeated ``kt`` times
    along time and divided by ``kt`` (Carreira & Zisserman's inflation).
    """
    w = src.float()
    if w.ndim == 4:
        w = w.unsqueeze(2)
    if w.ndim != 5 or w.shape[:2] != dst_shape[:2]:
        raise CheckpointError(f"{source}: {key}: kernel {tuple(src.shape)} does not fit {tuple(dst_shape)}")
    ks = dst_shape[3]
    if w.shape[3] != ks:
        if ks != 1:
            raise CheckpointError(f"{source}: {key}: spatial kernel {tuple(w.shape[3:])} does not fit {ks}x{ks}")
        w = w.sum(dim=(3, 4), keepdim=True)
    kt = dst_shape[2]
    if w.shape[2] != kt:
        if w.shape[2] != 1:
            raise CheckpointError(f"{source}: {key}: temporal kernel {w.shape[2]} does not fit {kt}")
        w = w.repeat(1, 1, kt, 1, 1) / kt
    return w.to(src.dtype)


def convert_state(state: dict[str, Tensor], encoder: I3DEncoder, source: str = "weights") -> tuple[dict, str]:
    """Map a state dict in any supported layout onto ``encoder``'s names and kernel shapes."""
    state = _strip(dict(state), ("module.",))
    own_prefix = next((k[: -len("stem.conv.weight")] for k in sorted(state)
                       if k == "stem.conv.weight" or k.endswith(".stem.conv.weight")), None)
    if own_prefix is not None:  # this encoder's own state dict, alone or inside a model's (``encoder.``)
        return {k[len(own_prefix):]: v for k, v in state.items() if k.startswith(own_prefix)}, "own"
    if "resnet.embedder.embedder.convolution.weight" in state:  # transformers ResNetForImageClassification
        state = {k.removeprefix("resnet."): v for k, v in state.items()}
    fmt = detect_format(state)
    _, mapper, ignored = _FORMATS[fmt]
    own = encoder.state_dict()
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.startswith(ignored):
            continue
        name = mapper(key)
        if name is None:
            out[f"<unmapped>{key}"] = value  # reported by the strict load
            continue
        stage = re.match(r"stages\.(\d+)\.", name)
        if stage and int(stage.group(1)) >= len(encoder.stages):
            continue  # stages past the truncation point (res5)
        if name not in own:  # a stride moved to a max-pool puts the BatchNorm in a Sequential: bn.x -> bn.0.x
            module, param = name.rsplit(".", 1)
            name = f"{module}.0.{param}" if f"{module}.0.{param}" in own else name
        if name in own and value.ndim in (4, 5) and own[name].ndim == 5:
            value = _inflate(value, own[name].shape, key, source)
        out[name] = value
    return out, fmt


def load_encoder_weights(encoder: I3DEncoder, weights: str | Path | dict[str, Tensor], source: str | None = None
                         ) -> str:
    """Load a file (or state dict) into ``encoder`` strictly, inflating as needed; returns the detected layout.

    Accepted: ``.safetensors``, or a torch pickle read with ``weights_only=True``
    (``state_dict``/``model_state`` wrappers are unpacked). A missing file is a
    :class:`WeightsUnavailableError`; keys that do not match are a :class:`CheckpointError`.
    """
    from fakescope.models.state import load_state_file, load_state_strict

    if isinstance(weights, dict):
        state, source = weights, source or "state dict"
    else:
        path = Path(weights).expanduser()
        source = source or str(path)
        if not path.is_file():
            raise WeightsUnavailableError(f"{path}: encoder weights not found")
        try:
            state = load_state_file(path)
        except WeightsUnavailableError:
            raise
        except Exception as exc:
            raise WeightsUnavailableError(f"{path}: cannot read encoder weights ({type(exc).__name__}: {exc})"
                                          ) from None
        if isinstance(state.get("model_state"), dict):  # SlowFast .pyth
            state = state["model_state"]
    mapped, fmt = convert_state(state, encoder, source)
    load_state_strict(encoder, mapped, source=f"{source} ({fmt} layout)")
    return fmt
