"""The SFCL-HCMF frequency front end: YCbCr, 8x8 block DCT, zigzag, padding and SIDA, against references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats
from scipy.fft import dctn

from fakescope.models.layers.dct import block_dct, dct_matrix, pad_to_multiple, rgb_to_ycbcr, zigzag_order
from fakescope.models.sfcl_hcmf.spectral import frequency_tensor, sida, sida_dim, sida_stat_slices

# ITU-T T.81 (JPEG), figure 5 / libjpeg's jpeg_natural_order: the raster index of the k-th zigzag coefficient
JPEG_ZIGZAG = (
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
    12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
)


def scipy_block_dct(img: np.ndarray) -> np.ndarray:
    """Reference: per-block ``scipy.fft.dctn(norm='ortho')`` of ``[C, H, W]``, zigzag -> ``[C, 64, H/8, W/8]``."""
    c, h, w = img.shape
    out = np.zeros((c, 64, h // 8, w // 8))
    for ch in range(c):
        for m in range(h // 8):
            for n in range(w // 8):
                coeffs = dctn(img[ch, 8 * m:8 * m + 8, 8 * n:8 * n + 8], norm="ortho").reshape(-1)
                out[ch, :, m, n] = coeffs[list(JPEG_ZIGZAG)]
    return out


def test_zigzag_is_the_jpeg_order():
    assert zigzag_order(8) == JPEG_ZIGZAG
    assert sorted(zigzag_order(5)) == list(range(25))  # any block size is a permutation


def test_dct_matrix_is_orthonormal_dct_ii():
    d = dct_matrix(8)
    torch.testing.assert_close(d @ d.T, torch.eye(8, dtype=torch.float64))
    ref = dctn(np.eye(8), axes=[0], norm="ortho")  # columns: DCT-II of the unit vectors
    np.testing.assert_allclose(d.numpy(), ref, atol=1e-12)


def test_block_dct_equals_scipy_per_block():
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, (2, 3, 24, 40))
    ours = block_dct(torch.from_numpy(img)).numpy()  # float64 in, float64 out
    assert ours.shape == (2, 3, 64, 3, 5)
    for b in range(2):
        np.testing.assert_allclose(ours[b], scipy_block_dct(img[b]), atol=1e-5, rtol=0)
    # the float32 path agrees to float32 precision relative to the coefficients' range
    ours32 = block_dct(torch.from_numpy(img).float()).double().numpy()
    ref = np.stack([scipy_block_dct(i) for i in img])
    assert np.abs(ours32 - ref).max() <= 1e-5 * np.abs(ref).max()


def test_ycbcr_matches_pil_jpeg_conversion():
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    pil = np.asarray(Image.fromarray(arr).convert("YCbCr"), dtype=np.float64)  # PIL rounds to integers
    ours = rgb_to_ycbcr(torch.from_numpy(arr).permute(2, 0, 1).double()).permute(1, 2, 0).numpy()
    assert np.abs(ours - pil).max() <= 1.0


def test_frequency_tensor_is_ycbcr_shift_pad_dct():
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.uniform(0, 255, (2, 3, 20, 27)))
    ours = frequency_tensor(x, pad_mode="reflect", pad_side="end")
    ycc = rgb_to_ycbcr(x) - 128.0
    padded = torch.nn.functional.pad(ycc, (0, 5, 0, 4), mode="reflect")
    ref = np.stack([scipy_block_dct(p) for p in padded.numpy()])
    assert ours.shape == (2, 3, 64, 3, 4)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5, rtol=0)
    # the level shift only moves DC coefficients, by 8 x 128
    diff = frequency_tensor(x, level_shift=False) - frequency_tensor(x, level_shift=True)
    torch.testing.assert_close(diff[:, :, 0], torch.full_like(diff[:, :, 0], 1024.0))
    assert diff[:, :, 1:].abs().max() < 1e-9
    # float32 and bf16 autocast still give float32 coefficients
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x32 = frequency_tensor(x.float())
    assert x32.dtype == torch.float32
    assert (x32.double() - frequency_tensor(x)).abs().max() <= 1e-5 * frequency_tensor(x).abs().max()


def test_padding_to_a_multiple_of_8():
    x = torch.arange(2 * 3 * 380 * 380, dtype=torch.float32).view(2, 3, 380, 380)
    end = pad_to_multiple(x, 8, "reflect", "end")
    assert end.shape[-2:] == (384, 384)
    torch.testing.assert_close(end[..., :380, :380], x)  # the grid stays anchored at the top-left
    torch.testing.assert_close(end[..., 380, :380], x[..., 378, :])  # reflection about the last row
    center = pad_to_multiple(x, 8, "reflect", "center")
    torch.testing.assert_close(center[..., 2:382, 2:382], x)
    assert pad_to_multiple(x[..., :384, :376], 8) .shape[-2:] == (384, 376)  # already a multiple: untouched
    assert frequency_tensor(torch.zeros(1, 3, 380, 380)).shape == (1, 3, 64, 48, 48)
    with pytest.raises(ValueError, match="reflect padding of a 3x3 input"):
        pad_to_multiple(torch.zeros(1, 1, 3, 3), 8, "reflect")
    assert pad_to_multiple(torch.zeros(1, 1, 3, 3), 8, "replicate").shape[-2:] == (8, 8)


def scipy_sida(x: np.ndarray) -> np.ndarray:
    """Reference SIDA for one ``X~ [C, L, h, w]`` with scipy.stats moments (eps -> 0)."""
    row = np.abs(np.diff(x, axis=2))
    col = np.abs(np.diff(x, axis=3))
    intra = np.abs(np.diff(x, axis=1))
    intra = np.concatenate([intra, np.zeros_like(intra[:, :1])], axis=1)
    out = []
    for stat in ("mean", "std", "skew", "kurt"):
        for m in (row, col, intra):
            flat = m.reshape(m.shape[0], m.shape[1], -1)
            if stat == "mean":
                v = flat.mean(-1)
            elif stat == "std":
                v = flat.std(-1)
            elif stat == "skew":
                v = np.nan_to_num(stats.skew(flat, axis=-1))
            else:
                v = np.nan_to_num(stats.kurtosis(flat, axis=-1, fisher=False))
            out.append(v.reshape(-1))
    return np.concatenate(out)


def test_sida_matches_scipy_moments_and_layout():
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (2, 3, 64, 5, 6)) * np.linspace(100, 1, 64)[None, None, :, None, None]
    d = sida(torch.from_numpy(x), eps=1e-20).numpy()
    assert d.shape == (2, 2304) == (2, sida_dim())
    for b in range(2):
        np.testing.assert_allclose(d[b], scipy_sida(x[b]), rtol=1e-7, atol=1e-9)
    # the zero band that pads the intra map: mean 0, sigma sqrt(eps), no skewness or kurtosis
    s = sida_stat_slices()
    intra_last = [sl.start + 2 * 192 + 63 for sl in s.values()]
    np.testing.assert_allclose(d[:, intra_last], [[0.0, 1e-10, 0.0, 0.0]] * 2, atol=1e-12)


def test_sida_skewness_and_kurtosis_are_scale_invariant():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 6, 6) * 50
    s = sida_stat_slices()
    base = sida(x)
    for scale in (0.1, 7.5):
        scaled = sida(x * scale)
        for name in ("skewness", "kurtosis"):
            torch.testing.assert_close(scaled[:, s[name]], base[:, s[name]], rtol=1e-4, atol=1e-4)
        # the mean scales with the coefficients (it is the normalisation of decision A5 that tames it)
        torch.testing.assert_close(scaled[:, s["mean"]], base[:, s["mean"]] * scale, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(sida(x + torch.randn_like(x))[:, s["kurtosis"]], base[:, s["kurtosis"]])


def test_moment_sums_by_bmm_and_by_elementwise_products_agree():
    # a CPU sums the powers with bmm; other devices use products and sums (no TF32 matmul can reach them)
    from fakescope.models.sfcl_hcmf.spectral import _moments

    a = torch.rand(2, 3, 64, 30) * torch.logspace(0, 3, 64).view(1, 1, 64, 1)
    by_bmm = _moments(a.clone(), 1e-6, use_bmm=True)
    by_sum = _moments(a.clone(), 1e-6, use_bmm=False)
    for x, y in zip(by_bmm, by_sum):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)


def test_sida_chunked_on_cpu_equals_one_pass(monkeypatch):
    import fakescope.models.sfcl_hcmf.spectral as dct

    x = torch.randn(5, 3, 64, 4, 4, dtype=torch.float64)
    whole = sida(x)
    monkeypatch.setattr(dct, "CPU_CHUNK_ELEMENTS", 2 * x[0].numel())  # chunks of 2 images
    torch.testing.assert_close(sida(x), whole)


def test_bad_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="2x2 blocks"):
        sida(torch.zeros(1, 3, 64, 1, 5))
    with pytest.raises(ValueError, match=r"\[B, C, L, h, w\]"):
        sida(torch.zeros(3, 64, 4, 4))
    with pytest.raises(ValueError, match="divisible by 8"):
        block_dct(torch.zeros(1, 3, 12, 16))
    with pytest.raises(ValueError, match=r"RGB images \[B, 3, H, W\]"):
        frequency_tensor(torch.zeros(1, 4, 16, 16))
