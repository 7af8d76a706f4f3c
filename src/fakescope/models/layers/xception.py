"""Xception (Chollet, CVPR 2017), truncated and widened into CNN-F, the local-branch CNN of SFCL-HCMF.

SFCL-HCMF (Qiao, Tian, Wang, arXiv 2504.17223, section 3.2.2) removes Xception's first two
convolutions and its first separable block (``conv1, bn1, conv2, bn2, block1``), feeds the
192-channel SBCM map in their place and keeps the rest: entry blocks 2-3, the middle blocks
4-11, exit block 12 and the separable ``conv3``/``conv4``, pooled to a 2048-d vector
(spec decision A4). Only block 2's first separable convolution and its shortcut change shape
(192 input channels instead of 128).

The module and parameter names follow the usual PyTorch port of the Keras ImageNet weights
(Cadene's ``pretrainedmodels`` ``xception``, timm ``legacy_xception``), so those weights load
into every unmodified layer. The key map of :func:`load_imagenet_xception`:

* ``block3.* ... block12.*``, ``conv3.*``, ``bn3.*``, ``conv4.*``, ``bn4.*`` and the parts of
  ``block2`` after its first separable convolution: same names, same shapes, loaded;
* ``block2.rep.1.conv1.weight``, ``block2.rep.1.pointwise.weight`` (first separable conv)
  and ``block2.skip.weight`` (shortcut): rebuilt for 192 input channels, randomly initialised,
  the ImageNet tensors are dropped;
* ``conv1, bn1, conv2, bn2, block1`` and the classifier (``fc`` or ``last_linear``): removed
  with the layers they belong to;
* 2-D ``pointwise`` weights (the original port stores them as ``[out, in]``) are reshaped to
  ``[out, in, 1, 1]``; a leading ``module.`` (DataParallel) is stripped; a BatchNorm
  ``num_batches_tracked`` missing from old files is set to 0.

Anything else that is missing, unexpected or mis-shaped is an error listing the keys.

Where the weights come from (:func:`resolve_xception_weights`): a local ``.safetensors`` or torch
file; a folder holding ``model.safetensors`` (a downloaded hub snapshot); or
``hf-hub:<org>/<repo>[@revision]``, fetched through :mod:`fakescope.models.sources` (the Hugging Face cache,
``HF_HUB_OFFLINE`` and ``HF_TOKEN`` apply). :data:`IMAGENET_XCEPTION_HUB` is the timm
organisation's port of the Keras ImageNet weights, ``timm/legacy_xception.tf_in1k``, file
``model.safetensors``. timm's ``legacy_xception`` keeps the Cadene names above (classifier
``fc``, 4-D pointwise weights), so its keys map by the same rules, without importing timm.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from fakescope.errors import CheckpointError, WeightsUnavailableError
from fakescope.models.layers.init import resnet_init
from fakescope.models.sources import HF_PREFIX, hub_file, parse_hub_id

# Xception widths: block2 output, entry/middle width (728), block12 output, conv3, conv4
XCEPTION_WIDTHS: tuple[int, int, int, int, int] = (256, 728, 1024, 1536, 2048)
XCEPTION_MIDDLE_BLOCKS = 8
IMAGENET_XCEPTION_REPO = "timm/legacy_xception.tf_in1k"
IMAGENET_XCEPTION_FILE = "model.safetensors"
IMAGENET_XCEPTION_HUB = HF_PREFIX + IMAGENET_XCEPTION_REPO
IMAGENET_DROPPED_PREFIXES = ("conv1.", "bn1.", "conv2.", "bn2.", "block1.", "fc.", "last_linear.")
REBUILT_KEYS = ("block2.rep.1.conv1.weight", "block2.rep.1.pointwise.weight", "block2.skip.weight")


class SeparableConv2d(nn.Module):
    """Depthwise ``k x k`` convolution followed by a pointwise ``1 x 1`` convolution."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, stride: int = 1, padding: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cin, kernel_size, stride, padding, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.conv1(x))


class XceptionBlock(nn.Module):
    """``reps`` x (ReLU, separable conv, BN), optional stride-2 max pool, plus a (1x1 conv) shortcut."""

    def __init__(self, cin: int, cout: int, reps: int, stride: int = 1, start_with_relu: bool = True,
                 grow_first: bool = True) -> None:
        super().__init__()
        if cout != cin or stride != 1:
            self.skip = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
            self.skipbn = nn.BatchNorm2d(cout)
        else:
            self.skip = None
        rep: list[nn.Module] = []
        for i in range(reps):
            if grow_first:
                a, b = (cin if i == 0 else cout), cout
            else:
                a, b = cin, (cin if i < reps - 1 else cout)
            rep += [nn.ReLU(inplace=True), SeparableConv2d(a, b), nn.BatchNorm2d(b)]
        if start_with_relu:
            rep[0] = nn.ReLU(inplace=False)  # the input is also the shortcut's
        else:
            rep = rep[1:]
        if stride != 1:
            rep.append(nn.MaxPool2d(3, stride, 1))
        self.rep = nn.Sequential(*rep)

    def forward(self, x: Tensor) -> Tensor:
        skip = self.skipbn(self.skip(x)) if self.skip is not None else x
        return self.rep(x) + skip


class CNNF(nn.Module):
    """Xception without its stem and first block, on a ``in_channels``-channel map (SFCL-HCMF's CNN-F).

    ``widths`` = (block2 output, entry/middle width, block12 output, conv3, conv4); the
    defaults are Xception's. Output: the ReLU'd ``conv4`` map (``forward``) whose global
    average is the 2048-d vector F. Three stride-2 stages: 48x48 -> 6x6 at 384 px.
    """

    def __init__(self, in_channels: int = 192, widths: Sequence[int] = XCEPTION_WIDTHS,
                 middle_blocks: int = XCEPTION_MIDDLE_BLOCKS) -> None:
        super().__init__()
        if len(widths) != 5:
            raise ValueError(f"CNN-F widths must have 5 entries (block2, middle, block12, conv3, conv4), got {widths}")
        w2, wm, w12, w3, w4 = (int(w) for w in widths)
        self.block2 = XceptionBlock(in_channels, w2, 2, 2, start_with_relu=True)
        self.block3 = XceptionBlock(w2, wm, 2, 2, start_with_relu=True)
        for i in range(middle_blocks):
            self.add_module(f"block{4 + i}", XceptionBlock(wm, wm, 3, 1, start_with_relu=True))
        self.exit_block = f"block{4 + middle_blocks}"
        self.add_module(self.exit_block, XceptionBlock(wm, w12, 2, 2, start_with_relu=True, grow_first=False))
        self.conv3 = SeparableConv2d(w12, w3)
        self.bn3 = nn.BatchNorm2d(w3)
        self.conv4 = SeparableConv2d(w3, w4)
        self.bn4 = nn.BatchNorm2d(w4)
        self.relu = nn.ReLU(inplace=True)
        self.blocks = [f"block{i}" for i in range(2, 5 + middle_blocks)]
        self.out_channels = w4
        resnet_init(self)

    def forward(self, x: Tensor) -> Tensor:
        for name in self.blocks:
            x = getattr(self, name)(x)
        x = self.relu(self.bn3(self.conv3(x)))
        return self.relu(self.bn4(self.conv4(x)))


def map_imagenet_xception_keys(state: dict[str, Tensor], dropped_prefixes: tuple[str, ...] = IMAGENET_DROPPED_PREFIXES,
                               rebuilt: tuple[str, ...] = REBUILT_KEYS) -> tuple[dict[str, Tensor], list[str]]:
    """Apply the key map of the module docstring; returns the mapped state and the dropped keys.

    The defaults are CNN-F's; the whole network (:mod:`fakescope.models.baselines.xception_net`) drops only the
    classifier and rebuilds nothing."""
    out: dict[str, Tensor] = {}
    dropped: list[str] = []
    for key, value in state.items():
        k = key[len("module."):] if key.startswith("module.") else key
        if k.startswith(dropped_prefixes) or k in rebuilt:
            dropped.append(key)
            continue
        if k.endswith("pointwise.weight") and value.ndim == 2:
            value = value[:, :, None, None]
        out[k] = value
    return out, dropped


def resolve_xception_weights(source: str | Path) -> Path:
    """The local file of ``source``: a weights file, a folder with ``model.safetensors``, or ``hf-hub:<repo>``
    (downloaded into, or found in, the Hugging Face cache). Raises :class:`WeightsUnavailableError` naming
    the repository, the file and how to give a local file instead."""
    text = str(source)
    if text.startswith(HF_PREFIX):
        try:
            repo, _ = parse_hub_id(text)
        except WeightsUnavailableError as exc:
            raise WeightsUnavailableError(f"{exc}; e.g. {IMAGENET_XCEPTION_HUB}") from None
        try:
            return hub_file(text, IMAGENET_XCEPTION_FILE, "ImageNet Xception weights for CNN-F")
        except WeightsUnavailableError as exc:
            raise WeightsUnavailableError(
                f"{exc}. Give a local copy instead: `cnnf_weights: /path/to/{IMAGENET_XCEPTION_FILE}` (e.g. fetched "
                f"on a connected machine with `hf download {repo} {IMAGENET_XCEPTION_FILE}`), or `cnnf_weights: "
                "none` to train CNN-F from random weights on purpose.") from exc
    path = Path(text).expanduser()
    if path.is_dir() and (path / IMAGENET_XCEPTION_FILE).is_file():
        return path / IMAGENET_XCEPTION_FILE
    if not path.is_file():
        raise WeightsUnavailableError(f"{path}: ImageNet Xception weights for CNN-F not found (give a .safetensors or "
                                      f"torch file, a folder holding {IMAGENET_XCEPTION_FILE}, or "
                                      f"{IMAGENET_XCEPTION_HUB})")
    return path


def load_imagenet_xception(module: nn.Module, source: str | Path, *,
                           dropped_prefixes: tuple[str, ...] = IMAGENET_DROPPED_PREFIXES,
                           random_init: tuple[str, ...] = REBUILT_KEYS, what: str = "CNN-F") -> dict[str, list[str]]:
    """Load ImageNet Xception weights into every layer of ``module`` but those of ``random_init``.

    ``source``: a ``.safetensors`` or torch file, a folder with ``model.safetensors``, or
    ``hf-hub:<repo>`` (:func:`resolve_xception_weights`). The defaults are CNN-F's (``module`` a :class:`CNNF`);
    the whole network passes its own. Returns ``{"loaded": [...], "random_init": [...], "dropped": [...]}``.
    Raises :class:`WeightsUnavailableError` when the weights cannot be had or read and
    :class:`CheckpointError` listing the keys when they do not fit (e.g. widths other than Xception's).
    """
    from fakescope.models.state import load_state_file

    path = resolve_xception_weights(source)
    state = load_state_file(path)  # errors name the file (refused pickles, truncated files, ...)
    mapped, dropped = map_imagenet_xception_keys(state, dropped_prefixes, random_init)
    own = module.state_dict()
    for k in own:  # old files lack BatchNorm's counter
        if k.endswith("num_batches_tracked") and k not in mapped and k[: -len("num_batches_tracked")] + "running_mean" in mapped:
            mapped[k] = torch.zeros((), dtype=torch.long)
    expected = {k for k in own if k not in random_init}
    missing = sorted(expected - set(mapped))
    unexpected = sorted(set(mapped) - expected)
    mismatched = sorted(f"{k}: file {tuple(mapped[k].shape)} vs {what} {tuple(own[k].shape)}"
                        for k in expected & set(mapped) if tuple(mapped[k].shape) != tuple(own[k].shape))
    if missing or unexpected or mismatched:
        def fmt(title: str, items: list[str]) -> str:
            shown = ", ".join(items[:8]) + (f", ... ({len(items)} in all)" if len(items) > 8 else "")
            return f"\n  {title} ({len(items)}): {shown}" if items else ""

        raise CheckpointError(
            f"{path}: not ImageNet Xception weights for {what} (see the key map in fakescope.models.layers.xception)"
            + fmt("missing keys", missing) + fmt("unexpected keys", unexpected) + fmt("shape mismatches", mismatched))
    module.load_state_dict(mapped, strict=False)
    return {"loaded": sorted(mapped), "random_init": sorted(random_init), "dropped": dropped}
