"""The interface every detector follows, and the preprocessing it declares as data.

A detector is an ``nn.Module`` that

* declares its input ``modality``: ``"image"`` (``[B, 3, H, W]``) or ``"clip"``
  (``[B, T, 3, H, W]``);
* carries a typed config (a subclass of :class:`DetectorConfig`) whose
  ``preprocess`` field says how a raw image becomes its input: input size,
  resize/crop policy, interpolation, normalisation, clip length. Training,
  evaluation and inference all build their transforms from it;
* maps normalised float input to one logit per sample (``forward``),
  where ``sigmoid(logit)`` is the probability that the input is fake
  (label 1; 0 is real). ``forward`` is ``forward_head(forward_features(x))``:
  a detector implements :meth:`~DetectorModel.forward_features` (input -> one
  feature tensor per sample, the pooled or fused feature its classifier reads,
  e.g. ``[B, D]``) and :meth:`~DetectorModel.forward_head` (that feature -> the
  logit ``[B]``), and does not override ``forward``;
* computes its training loss with :meth:`DetectorModel.compute_loss`, which returns
  the total and every named term.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from fakescope.preprocess import PreprocessConfig
from fakescope.schema import Strict

LABELS = {0: "real", 1: "fake"}


class DetectorConfig(Strict):
    """Fields every detector config has; detectors subclass it and add their own."""

    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    pretrained: bool = Field(default=False, description="load pretrained backbone weights (by hub name or `weights`)")
    weights: str | None = Field(default=None, description="local backbone weights: a folder or a weights file")


@dataclass
class LossOutput:
    """What :meth:`DetectorModel.compute_loss` returns."""

    total: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)
    logits: Tensor | None = None


class DetectorModel(nn.Module):
    """Base class of every registered detector (an ``nn.Module``; :class:`fakescope.Detector` runs one)."""

    modality: ClassVar[Literal["image", "clip"]] = "image"
    # what its inputs show: "face" (face-forgery detectors: inference detects and crops the face first),
    # "scene" (whole images, e.g. AI-generated image detectors); None = not declared
    input_domain: ClassVar[Literal["face", "scene"] | None] = None
    config_class: ClassVar[type[DetectorConfig]] = DetectorConfig
    # which of the config's backbone-weight fields the model reads: ``weights`` (a local file or folder) and
    # ``pretrained``; create_model refuses one it would ignore, rather than build a randomly initialised model
    reads: ClassVar[tuple[str, ...]] = ("weights", "pretrained")

    def __init__(self, cfg: DetectorConfig) -> None:
        super().__init__()
        if not isinstance(cfg, self.config_class):
            raise TypeError(f"{type(self).__name__} expects a {self.config_class.__name__}, got {type(cfg).__name__}")
        self.cfg = cfg
        self.registry_name: str | None = None
        pp = cfg.preprocess
        # Normalisation runs on the model's device as the first op of the model's input path.
        self.register_buffer("_mean", torch.tensor(pp.mean).view(3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(pp.std).view(3, 1, 1), persistent=False)

    # -- preprocessing ------------------------------------------------------
    @property
    def preprocess(self) -> PreprocessConfig:
        return self.cfg.preprocess

    def normalize(self, x: Tensor) -> Tensor:
        """uint8 (0..255) or float (0..1) pixels -> normalised float, on the model's device.

        Works for images ``[B, 3, H, W]`` and clips ``[B, T, 3, H, W]``.
        """
        x = x.to(self._mean.device, non_blocking=True)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        return (x - self._mean) / self._std

    # -- interface ----------------------------------------------------------
    def forward_features(self, x: Tensor) -> Tensor:
        """Normalised input -> one feature tensor per sample (batch first), the input of :meth:`forward_head`."""
        raise NotImplementedError(f"{type(self).__name__} does not implement forward_features")

    def forward_head(self, features: Tensor) -> Tensor:
        """Output of :meth:`forward_features` -> one logit per sample, shape ``[B]``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement forward_head")

    def forward(self, x: Tensor) -> Tensor:
        """Normalised input -> one logit per sample, shape ``[B]`` (sigmoid = P(fake))."""
        return self.forward_head(self.forward_features(x))

    def compute_loss(self, x: Tensor, target: Tensor) -> LossOutput:
        """Training loss on a normalised batch. Default: binary cross-entropy on the logit."""
        logits = self(x)
        bce = F.binary_cross_entropy_with_logits(logits.float(), target.float())
        return LossOutput(total=bce, terms={"bce": bce}, logits=logits)

    @torch.no_grad()
    def predict_proba(self, x: Tensor) -> Tensor:
        """Raw pixels (already cropped to the input size) -> P(fake), shape ``[B]``."""
        return torch.sigmoid(self(self.normalize(x)).float())

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def describe(self) -> dict[str, Any]:
        """What goes into ``config.json`` next to the weights."""
        return {
            "name": self.registry_name,
            "modality": self.modality,
            "config": self.cfg.model_dump(mode="json"),
            "num_parameters": self.num_parameters(),
            "num_trainable_parameters": self.num_parameters(trainable_only=True),
        }
