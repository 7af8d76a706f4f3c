"""SFCL-HCMF (Qiao, Tian, Wang, arXiv 2504.17223): the network and its config (:mod:`.model`, which registers
``sfcl_hcmf``), the block-DCT tensor X~ and SIDA (:mod:`.spectral`, eqs. 1-8), the local branch's inter-block
convolution and SBCM (:mod:`.local`, eq. 9) and the FAAE and HCMA fusions (:mod:`.fusion`, eqs. 10-17). CNN-F
is the Xception of :mod:`fakescope.models.layers.xception`, shared with the Xception baseline."""

from fakescope.models.sfcl_hcmf.fusion import FAAE, HCMA, ConcatFusion, SIDANorm
from fakescope.models.sfcl_hcmf.local import SBCM, FrequencyNorm, InterBlockConv
from fakescope.models.sfcl_hcmf.model import PAPER, SFCLHCMF, SFCLHCMFConfig
from fakescope.models.sfcl_hcmf.spectral import frequency_operator, frequency_tensor, sida, sida_dim, sida_stat_slices

__all__ = ["FAAE", "HCMA", "PAPER", "SBCM", "SFCLHCMF", "ConcatFusion", "FrequencyNorm", "InterBlockConv",
           "SFCLHCMFConfig", "SIDANorm", "frequency_operator", "frequency_tensor", "sida", "sida_dim",
           "sida_stat_slices"]
