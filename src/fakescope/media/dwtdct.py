"""dwtDct's bits read back from an image's pixels, the way the ``invisible-watermark`` package's decoder reads them
(``imwatermark.maxDct.EmbedMaxDct.decode``), for all blocks at once, and by a second rule that weights each block by
how far it can be trusted. :mod:`fakescope.media.watermark` reads the known messages with both.

Needs OpenCV and PyWavelets (``pip install 'fakescope[watermark]'``), imported when a function is called.
"""

from __future__ import annotations

import numpy as np

# the two ways the bits are decided from the blocks: both are read, the better reported, its tail doubled
DECODERS = {
    "majority": "imwatermark's rule: each bit by the majority of its blocks' bits (bits_from_scores)",
    "weighted": "each block's vote weighted by how far the value it reads stands out (bits_from_votes)",
}
SCALE = 36.0  # imwatermark's dwtDct lattice step in U (EmbedMaxDct: scales=[0, 36, 36], Y not used)


def block_values(bgr: np.ndarray) -> np.ndarray:
    """The magnitudes that imwatermark's dwtDct decoder looks at, ``[blocks, 15]``: U of OpenCV's YUV (of the image
    cropped to multiples of 4), its Haar approximation band, cut in 4x4 blocks in the decoder's order (row by row),
    each block's 16 values less the first (``EmbedMaxDct.decode_frame`` / ``infer_dct_matrix``, done at once)."""
    import cv2
    import pywt

    rows, cols = bgr.shape[0] // 4 * 4, bgr.shape[1] // 4 * 4
    u = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV)[:rows, :cols, 1]
    band = pywt.dwt2(u, "haar")[0]
    h, w = band.shape[0] // 4, band.shape[1] // 4
    blocks = band[:h * 4, :w * 4].reshape(h, 4, w, 4).transpose(0, 2, 1, 3).reshape(h * w, 16)
    return np.abs(blocks[:, 1:].astype(np.float64))


def block_scores(values: np.ndarray) -> np.ndarray:
    """Each block's bit as imwatermark reads it (0 or 1): its largest magnitude's residue modulo :data:`SCALE` is
    above half the step (tests check these against the package's own decoder)."""
    return (values.max(axis=1) % SCALE > SCALE / 2).astype(np.float64)


def block_votes(values: np.ndarray) -> np.ndarray:
    """Each block's vote for a 1 (positive) or a 0 (negative), weighted by how far it can be trusted.

    The encoder moves a block's largest magnitude to the lattice point 0.25 (bit 0) or 0.75 (bit 1) of a step of 36,
    which can lower it by up to 27. In a block of smooth colour the other 14 values are then within 27 of it, one
    of them is now the largest, and the package's decoder reads a random bit there (docs/watermark.md). So a block
    votes ``-sin(2 pi residue / 36)`` (+1 at the lattice point of a 1, -1 at that of a 0, near 0 half-way) of the
    value it reads, weighted by the square of how far (at most 27) that value stands out:

    * as a rule, the largest value, by its lead over the second largest: a block whose largest value stands out by
      the encoder's whole reach votes fully, one where two are close hardly at all;
    * in a flat block (the other 14 values within a quarter step of each other), the value farthest from the
      block's median, by that distance: there the moved value is the one that stands out, wherever it went, and
      where it hardly moved the others share its residue.

    Without a mark the residues are about uniform whatever the weights, so a bit read from the votes stays a fair
    coin and the binomial yardstick still holds (measured on 2,000 clean images: docs/watermark.md)."""
    rows = np.arange(len(values))
    top2 = np.sort(values, axis=1)[:, -2:]
    vote = -np.sin(2.0 * np.pi * (top2[:, 1] % SCALE) / SCALE) * np.minimum(top2[:, 1] - top2[:, 0], 0.75 * SCALE) ** 2
    dev = np.abs(values - np.median(values, axis=1, keepdims=True))
    odd = dev.argmax(axis=1)
    others = values.copy()
    others[rows, odd] = np.nan
    flat = np.nanmax(others, axis=1) - np.nanmin(others, axis=1) < SCALE / 4
    moved = values[rows, odd]
    flat_vote = -np.sin(2.0 * np.pi * (moved % SCALE) / SCALE) * np.minimum(dev[rows, odd], 0.75 * SCALE) ** 2
    return np.where(flat, flat_vote, vote)


def _by_bit(per_block: np.ndarray, n_bits: int, reduce) -> np.ndarray:
    pad = -len(per_block) % n_bits
    return reduce(np.concatenate([per_block, np.full(pad, np.nan)]).reshape(-1, n_bits), axis=0)


def bits_from_scores(scores: np.ndarray, n_bits: int) -> np.ndarray:
    """The ``n_bits`` bits imwatermark's dwtDct decoder reads from these block scores: bit ``k`` is the mean score
    of blocks ``k``, ``k + n``, ``k + 2n``, ... and is 1 when ``mean * 255 > 127`` (its rule). One pass over the
    blocks serves every message length (tests check this against ``WatermarkDecoder('bits', n).decode``)."""
    return _by_bit(scores, n_bits, np.nanmean) * 255 > 127


def bits_from_votes(values: np.ndarray, n_bits: int) -> np.ndarray:
    """The ``n_bits`` bits fakescope reads: bit ``k`` is 1 where the weighted votes (:func:`block_votes`) of blocks
    ``k``, ``k + n``, ... sum above 0; where they sum to exactly 0 (no block can be trusted: flat colour), the
    package's majority (:func:`bits_from_scores`) decides."""
    total = _by_bit(block_votes(values), n_bits, np.nansum)
    return np.where(total != 0, total > 0, bits_from_scores(block_scores(values), n_bits))
