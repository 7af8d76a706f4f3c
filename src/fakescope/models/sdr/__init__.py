"""SDR (Chu et al., ICASSP 2025): the model (:mod:`.model`), its loss terms (:mod:`.losses`), its spatial
perturbations (:mod:`.tpa`) and its clip encoder, FTCN's I3D-style ResNet-50 (:mod:`.resnet3d`)."""

from fakescope.models.sdr.losses import infonce_mi, mi_loss, supcon_loss
from fakescope.models.sdr.model import IMAGENET_RESNET50, SDR, SDRConfig, TemporalTransformer
from fakescope.models.sdr.tpa import (TPA_KINDS, Perturbation, TPAConfig, apply_tpa, draw_tpa_params, fixed_tpa,
                                      fixed_tpa_params, jpeg_quant_tables, tpa_blur, tpa_color, tpa_jpeg, tpa_noise,
                                      tpa_rescale)

__all__ = ["IMAGENET_RESNET50", "SDR", "SDRConfig", "TPA_KINDS", "Perturbation", "TPAConfig", "TemporalTransformer",
           "apply_tpa", "draw_tpa_params", "fixed_tpa", "fixed_tpa_params", "infonce_mi", "jpeg_quant_tables",
           "mi_loss", "supcon_loss", "tpa_blur", "tpa_color", "tpa_jpeg", "tpa_noise", "tpa_rescale"]
