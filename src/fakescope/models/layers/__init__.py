"""Building blocks that more than one detector uses: the JPEG-style block DCT (:mod:`.dct`; SFCL-HCMF's frequency
front end and SDR's JPEG perturbation), Xception (:mod:`.xception`; SFCL-HCMF's CNN-F and the Xception
baseline), the transformers backbones by Hub name (:mod:`.backbones`; FSSNet, SFCL-HCMF, SDR and the
baselines) and the ResNet-style initialisation (:mod:`.init`). A layer that one paper alone uses lives in that
paper's package."""
