"""Building blocks that more than one detector uses: the JPEG-style block DCT (:mod:`.dct`; SFCL-HCMF's frequency
front end and SDR's JPEG perturbation) and Xception (:mod:`.xception`; SFCL-HCMF's CNN-F and the Xception
baseline). A layer that one paper alone uses lives in that paper's package."""
