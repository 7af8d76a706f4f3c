"""Spectral transforms as batched tensor ops that run on the model's device.

* :mod:`fakescope.models.spectral.fft`: FFT band masks and band filtering (FSSNet).
* :mod:`fakescope.models.spectral.dct`: YCbCr, 8x8 block DCT-II, JPEG zigzag, SIDA statistics (SFCL-HCMF).
"""
