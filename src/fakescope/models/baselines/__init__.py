"""Baseline detectors to compare the papers' models against (importing this package registers them).

* :mod:`.simple_cnn`: ``simple_cnn``, a small full-resolution CNN (the quickstart's default detector);
* :mod:`.npr`: ``npr`` (Tan et al., CVPR 2024), a truncated ResNet-50 on the neighbouring-pixel residual;
* :mod:`.backbone`: a transformers backbone and a linear layer: ``cnndetection_resnet50`` (Wang et al.,
  CVPR 2020), ``univfd_clip`` (Ojha et al., CVPR 2023), ``efficientnet_b4`` (DeepfakeBench's face baseline);
* :mod:`.xception_net`: ``xception`` (Chollet, CVPR 2017), FaceForensics++'s and DeepfakeBench's baseline;
* :mod:`.hf_classifier`: ``hf_classifier``, any Hugging Face image classifier of generated images.
"""

from fakescope.models.baselines.simple_cnn import SimpleCNN, SimpleCNNConfig
from fakescope.models.baselines.npr import NPR, NPRConfig, npr_residual
from fakescope.models.baselines.backbone import (BackboneClassifier, BackboneClassifierConfig, CNNDetection,
                                                 EfficientNetB4, EfficientNetB4Config, UnivFD)
from fakescope.models.baselines.hf_classifier import HFClassifier, HFClassifierConfig, classifier_hub_model
from fakescope.models.baselines.xception_net import Xception, XceptionConfig

__all__ = ["NPR", "BackboneClassifier", "BackboneClassifierConfig", "CNNDetection", "EfficientNetB4",
           "EfficientNetB4Config", "HFClassifier", "HFClassifierConfig", "NPRConfig", "SimpleCNN", "SimpleCNNConfig",
           "UnivFD", "Xception", "XceptionConfig", "classifier_hub_model", "npr_residual"]
