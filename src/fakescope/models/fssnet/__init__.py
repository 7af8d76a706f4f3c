"""FSSNet (Su & Chen, ICIC 2025): the network and its config (:mod:`.model`, which registers ``fssnet``), the FFT
band masks of its frequency stream (:mod:`.fft`, eqs. 3-5) and its SBCA and AFF fusions (:mod:`.attention`,
eqs. 6-11)."""

from fakescope.models.fssnet.attention import AFF, SBCA, ScaleAwareCrossAttention
from fakescope.models.fssnet.fft import BANDS, DEFAULT_CUTOFFS, BandFilter, band_filter, band_mask, radial_frequency
from fakescope.models.fssnet.model import (STREAMS, TINY_BACKBONE, FSSNet, FSSNetConfig, OneDNNLinear,
                                           onednn_linear_available)

__all__ = ["AFF", "BANDS", "DEFAULT_CUTOFFS", "SBCA", "STREAMS", "TINY_BACKBONE", "BandFilter", "FSSNet",
           "FSSNetConfig", "OneDNNLinear", "ScaleAwareCrossAttention", "band_filter", "band_mask",
           "onednn_linear_available", "radial_frequency"]
