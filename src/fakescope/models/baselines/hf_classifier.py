"""Any Hugging Face image classifier as a fakescope detector, loaded by hub name through transformers.

Image classifiers trained to tell generated images from real ones are published on the Hub with their own
label names (``artificial``/``human``, ``FAKE``/``REAL``, ...). ``fake_labels`` says which of them mean fake;
the detector's logit is ``logsumexp(z_fake) - logsumexp(z_other)``, whose sigmoid is exactly the softmax's
total probability of the fake labels. The transformers config is kept in the fakescope config
(``hf_config``), so a saved checkpoint rebuilds the network without the Hub.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import Tensor

from fakescope.errors import ConfigError, WeightsUnavailableError
from fakescope.models.base import DetectorConfig, DetectorModel
from fakescope.models.registry import register_model, register_variant
from fakescope.models.sources import HubModel, hub_cache, hub_snapshot
from fakescope.preprocess import PreprocessConfig


class HFClassifierConfig(DetectorConfig):
    preprocess: PreprocessConfig = Field(default_factory=lambda: PreprocessConfig(input_size=224, policy="resize",
                                                                                  mean=(0.5, 0.5, 0.5),
                                                                                  std=(0.5, 0.5, 0.5)))
    hub_name: str = Field(description="the classifier's Hugging Face hub name")
    revision: str | None = Field(default=None, description="a commit of the hub repository (None: main)")
    fake_labels: list[str] = Field(min_length=1, description="the classifier's labels that mean fake")
    hf_config: dict[str, Any] | None = Field(default=None, description="the transformers config (filled on "
                                                                       "loading; rebuilds the network offline)")


@register_model("hf_classifier", paper="a Hugging Face image classifier of generated images (see its model card)")
class HFClassifier(DetectorModel):
    """A transformers ``AutoModelForImageClassification`` whose fake labels make one logit."""

    config_class = HFClassifierConfig
    reads = ("pretrained",)  # by hub name; a local classifier is a checkpoint

    def __init__(self, cfg: HFClassifierConfig) -> None:
        super().__init__(cfg)
        from transformers import AutoConfig, AutoModelForImageClassification

        if cfg.pretrained:
            hub_snapshot(classifier_hub_model(cfg))  # cached, or downloaded once the Hub answers; else an error at once
            try:
                self.classifier = AutoModelForImageClassification.from_pretrained(
                    cfg.hub_name, revision=cfg.revision, local_files_only=True, cache_dir=str(hub_cache()))
            except Exception as exc:
                raise WeightsUnavailableError(
                    f"could not load the image classifier '{cfg.hub_name}' from the Hugging Face hub "
                    f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else exc!r})") from exc
            cfg.hf_config = self.classifier.config.to_dict()
        elif cfg.hf_config is not None:
            hf = dict(cfg.hf_config)
            config = AutoConfig.for_model(hf.pop("model_type"), **hf)
            self.classifier = AutoModelForImageClassification.from_config(config)
        else:
            raise ConfigError(f"hf_classifier '{cfg.hub_name}': give pretrained: true (load it by hub name) or the "
                              "transformers config (hf_config) to build it")
        labels = {int(i): str(name) for i, name in self.classifier.config.id2label.items()}
        wanted = {f.lower() for f in cfg.fake_labels}
        fake = sorted(i for i, name in labels.items() if name.lower() in wanted)
        if not fake or len(fake) == len(labels):
            raise ConfigError(f"hf_classifier '{cfg.hub_name}': fake_labels {cfg.fake_labels} must name some but not "
                              f"all of its labels {sorted(labels.values())}")
        mask = torch.zeros(len(labels), dtype=torch.bool)
        mask[fake] = True
        self.register_buffer("_fake", mask, persistent=False)

    def forward_features(self, x: Tensor) -> Tensor:
        """The classifier's class logits, ``[B, num_labels]``."""
        return self.classifier(pixel_values=x).logits

    def forward_head(self, features: Tensor) -> Tensor:
        """``logsumexp`` of the fake labels' logits minus that of the others: P(fake) after a sigmoid."""
        z = features.float()
        fake = z.masked_fill(~self._fake, float("-inf")).logsumexp(dim=1)
        other = z.masked_fill(self._fake, float("-inf")).logsumexp(dim=1)
        return fake - other


def classifier_hub_model(cfg: HFClassifierConfig):
    """The :class:`~fakescope.models.sources.HubModel` of a pretrained ``hf_classifier``."""
    return HubModel(cfg.hub_name, cfg.revision, role="the whole classifier (transformers "
                                                  "AutoModelForImageClassification)")


register_variant(
    "hf_classifier_tiny", "hf_classifier", description="hf_classifier with a tiny random ViT, for tests",
    hub_name="tiny-vit", fake_labels=["artificial"], preprocess={"input_size": 32, "policy": "resize",
                                                                 "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)},
    hf_config={"model_type": "vit", "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
               "intermediate_size": 32, "image_size": 32, "patch_size": 8,
               "id2label": {"0": "artificial", "1": "human"}, "label2id": {"artificial": 0, "human": 1}},
)
