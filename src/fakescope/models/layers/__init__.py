"""Building blocks of the detectors: block DCT and SIDA (:mod:`.dct`), FFT band filters (:mod:`.fft`), Xception
(:mod:`.xception`) and the I3D-style ResNet-50 clip encoder (:mod:`.resnet3d`)."""
