"""FSSNet (Su & Chen, ICIC 2025): FFT band masks, the model, its configs and its paper tables."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_experiment
from fakescope.config import load_config
from fakescope.errors import CheckpointError, ConfigError, WeightsUnavailableError
from fakescope.models import create_model, resolve_model_config
from fakescope.models.fssnet import TINY_BACKBONE, FSSNet, OneDNNLinear, onednn_linear_available
from fakescope.models.fssnet.fft import BANDS, BandFilter, band_filter, band_mask, radial_frequency

# A small DINOv2 with the hub model's position grid (518 / 14 = 37), so inputs of any
# multiple of 14 interpolate the position embeddings as the real model does.
SMALL = {**TINY_BACKBONE, "image_size": 518}


# ------------------------------------------------------------------ FFT masks
@pytest.mark.parametrize("size", [(16, 16), (15, 20), (252, 252)])
def test_band_masks_partition_the_spectrum(size):
    h, w = size
    masks = [band_mask(h, w, b) for b in BANDS]
    assert all(set(torch.unique(m).tolist()) <= {0.0, 1.0} for m in masks)
    assert torch.equal(sum(masks), torch.ones(h, w)), "every frequency is in exactly one band"
    assert all(m.sum() > 0 for m in masks), "no band is empty"
    x = torch.randn(2, 3, h, w, dtype=torch.float64)
    parts = [band_filter(x, m) for m in masks]
    torch.testing.assert_close(sum(parts), x, rtol=0, atol=1e-10)  # low + mid + high reconstructs the input


def test_band_mask_radii_follow_the_cutoffs():
    r = radial_frequency(12, 12)
    low, mid, high = (band_mask(12, 12, b) for b in BANDS)
    assert low[0, 0] == 1  # DC
    assert torch.all(r[low.bool()] <= 1 / 6) and torch.all(r[high.bool()] > 1 / 3)
    assert torch.all((r[mid.bool()] > 1 / 6) & (r[mid.bool()] <= 1 / 3))
    assert high[6, 6] == 1  # the corner (0.5, 0.5) belongs to the high band
    with pytest.raises(ValueError, match="cut-offs"):
        band_mask(8, 8, "low", (0.3, 0.2))
    with pytest.raises(ValueError, match="unknown frequency band"):
        band_mask(8, 8, "ultra")


def test_band_filter_matches_numpy_with_centred_masks():
    """The unshifted masks equal the fftshift -> centred mask -> ifftshift pipeline of spec B1."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 18, 21))
    fy = np.fft.fftshift(np.fft.fftfreq(18))[:, None]
    fx = np.fft.fftshift(np.fft.fftfreq(21))[None, :]
    r = np.sqrt(fy ** 2 + fx ** 2)
    centred = {"low": r <= 1 / 6, "mid": (r > 1 / 6) & (r <= 1 / 3), "high": r > 1 / 3}
    for band in BANDS:
        spec = np.fft.fftshift(np.fft.fft2(x), axes=(-2, -1)) * centred[band]
        ref = np.fft.ifft2(np.fft.ifftshift(spec, axes=(-2, -1))).real
        out = BandFilter(band)(torch.from_numpy(x))
        np.testing.assert_allclose(out.numpy(), ref, atol=1e-10)


def test_low_band_keeps_smooth_content_and_drops_a_checkerboard():
    yy, xx = torch.meshgrid(torch.arange(28), torch.arange(28), indexing="ij")
    smooth = torch.cos(2 * torch.pi * xx / 28.0)[None, None].float()   # 1/28 cycles per pixel
    checker = ((-1.0) ** (xx + yy))[None, None].float()                 # the Nyquist corner
    low, high = BandFilter("low"), BandFilter("high")
    torch.testing.assert_close(low(smooth + checker), smooth, atol=1e-5, rtol=0)
    torch.testing.assert_close(high(smooth + checker), checker, atol=1e-5, rtol=0)
    assert low(smooth).dtype == torch.float32
    assert BandFilter("low", part="abs")(-torch.ones(1, 1, 4, 4)).min() >= 0


def test_band_filter_under_bf16_autocast_runs_in_float32():
    x = torch.randn(1, 3, 14, 14).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = BandFilter("mid")(x)
    assert y.dtype == torch.bfloat16 and torch.isfinite(y.float()).all()


# ---------------------------------------------------------------------- model
def _small(**kw) -> FSSNet:
    torch.manual_seed(0)
    return create_model("fssnet", backbone_overrides=SMALL, sbca_heads=2, aff_reduction=4, **kw)


@pytest.mark.parametrize("size,grid", [(252, 18), (224, 16)])
def test_output_shapes_at_252_and_another_multiple_of_14(size, grid):
    m = _small(preprocess={"input_size": size}).eval()
    x = m.normalize(torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8))
    with torch.no_grad():
        f = m.patch_map(m.backbone_rgb, x)
        assert f.shape == (2, 32, grid, grid)   # patch tokens, CLS dropped, as a map
        assert m.features(x).shape == (2, 32, grid, grid)
        logits = m(x)
    assert logits.shape == (2,) and torch.isfinite(logits).all()


def _expected_trainable(m: FSSNet, blocks: int | None, norm: bool = True) -> set[str]:
    names = {n for n, _ in m.named_parameters() if n.split(".")[0] in ("sbca", "aff", "head")}
    for stream in ("rgb", "freq"):
        bb = getattr(m, f"backbone_{stream}")
        n_layers = len(bb.encoder.layer)
        for n, _ in bb.named_parameters():
            if blocks is None:
                keep = "mask_token" not in n
            else:
                keep = any(n.startswith(f"encoder.layer.{i}.") for i in range(n_layers - blocks, n_layers))
                keep = keep or (norm and n.startswith("layernorm."))
            if keep:
                names.add(f"backbone_{stream}.{n}")
    return names


@pytest.mark.parametrize("blocks,norm", [(1, True), (2, False), (0, False), (None, True)])
def test_gradients_reach_exactly_the_trainable_parameters(blocks, norm):
    torch.manual_seed(0)
    m = create_model("fssnet_tiny", trainable_blocks=blocks, train_final_norm=norm).train()
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert trainable == _expected_trainable(m, blocks, norm)
    x = m.normalize(torch.randint(0, 256, (4, 3, 28, 28), dtype=torch.uint8))
    m.compute_loss(x, torch.tensor([0, 1, 0, 1])).total.backward()
    for n, p in m.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reached {n}"
        else:
            assert p.grad is None, f"frozen {n} got a gradient"


def test_the_paper_split_trains_the_last_two_blocks_of_twelve():
    torch.manual_seed(0)
    m = create_model("fssnet", backbone_overrides={**SMALL, "num_hidden_layers": 12}, sbca_heads=2)
    assert m.cfg.train_final_norm is False  # B2: "only the last two blocks", the paper's wording
    for stream in ("rgb", "freq"):
        bb = getattr(m, f"backbone_{stream}")
        per_block = [any(p.requires_grad for p in layer.parameters()) for layer in bb.encoder.layer]
        assert per_block == [False] * 10 + [True] * 2
        assert not any(p.requires_grad for p in bb.layernorm.parameters())
        assert not any(p.requires_grad for p in bb.embeddings.parameters())
    with_norm = create_model("fssnet", backbone_overrides={**SMALL, "num_hidden_layers": 12}, sbca_heads=2,
                             train_final_norm=True)
    assert all(p.requires_grad for p in with_norm.backbone_freq.layernorm.parameters())
    assert m.backbone_rgb is not m.backbone_freq
    assert not any(a is b for a in m.backbone_rgb.parameters() for b in m.backbone_freq.parameters())
    with pytest.raises(ConfigError, match="only 12 blocks"):
        create_model("fssnet", backbone_overrides=SMALL | {"num_hidden_layers": 12}, trainable_blocks=13)


def test_sigma_theta_starts_at_one_half():
    m = create_model("fssnet_tiny")
    assert m.aff.mix().item() == 0.5
    # eq. (11) at sigma = 1/2 is the attention-weighted mean of the two streams
    a, b = torch.randn(2, 32, 2, 2), torch.randn(2, 32, 2, 2)
    att = m.aff.attention(a + b)
    torch.testing.assert_close(m.aff(a, b), att * (a + b) / 2)
    with torch.no_grad():
        m.aff.theta.fill_(20.0)
    torch.testing.assert_close(m.aff(a, b), att * a, atol=1e-6, rtol=0)


@pytest.mark.skipif(not onednn_linear_available(), reason="this PyTorch has no oneDNN")
def test_onednn_linear_is_the_same_model_and_leaves_autograd_to_aten(monkeypatch):
    calls = []
    kernel = torch.ops.mkldnn._linear_pointwise
    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", lambda *a: calls.append(1) or kernel(*a))
    torch.manual_seed(0)
    fast = create_model("fssnet_tiny")  # cpu_linear: onednn, the default
    torch.manual_seed(0)
    ref = create_model("fssnet_tiny", cpu_linear="aten")
    assert list(fast.state_dict()) == list(ref.state_dict())
    assert all(type(m) is OneDNNLinear for m in fast.backbone_rgb.modules() if isinstance(m, torch.nn.Linear))
    assert not any(isinstance(m, OneDNNLinear) for m in ref.modules())
    x = fast.normalize(torch.rand(4, 3, 28, 28, generator=torch.Generator().manual_seed(0)))
    with torch.inference_mode():
        torch.testing.assert_close(fast.eval()(x), ref.eval()(x), rtol=1e-4, atol=1e-5)
    n_linear = 2 * 6 * 2  # 2 backbones x 2 blocks x (query, key, value, output, fc1, fc2)
    assert len(calls) == n_linear
    # training: only the frozen first block of each backbone runs on oneDNN; the gradients are aten's
    calls.clear()
    y = torch.tensor([0.0, 1.0, 0.0, 1.0])
    fast.train().compute_loss(x, y).total.backward()
    assert len(calls) == 2 * 6
    ref.train().compute_loss(x, y).total.backward()
    for (n, p), q in zip(fast.named_parameters(), ref.parameters()):
        assert (p.grad is None) == (q.grad is None), n
        if p.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=n)
    calls.clear()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        fast.eval()(x)
    assert not calls  # bf16 autocast already runs its matmuls on oneDNN
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    with torch.inference_mode():
        fast(x)
    assert not calls  # under torch.compile, Inductor picks the kernels


def test_sbca_heads_use_kernels_2b_plus_1_and_attend_across_streams():
    m = create_model("fssnet", backbone_overrides=SMALL, sbca_heads=4)
    for direction in (m.sbca.s2f, m.sbca.f2s):
        assert [c.kernel_size for c in direction.q] == [(3, 3), (5, 5), (7, 7), (9, 9)]
        assert [c.kernel_size for c in direction.kv] == [(3, 3), (5, 5), (7, 7), (9, 9)]
    assert m.sbca.s2f.q[0].weight.data_ptr() != m.sbca.f2s.q[0].weight.data_ptr()
    # the spatial-to-frequency output depends on the frequency stream (keys / values)
    torch.manual_seed(0)
    f_rgb, f_freq = torch.randn(1, 32, 4, 4), torch.randn(1, 32, 4, 4)
    out1, _ = m.sbca(f_rgb, f_freq)
    out2, _ = m.sbca(f_rgb, f_freq + torch.randn_like(f_freq))
    assert not torch.allclose(out1, out2)


def test_low_band_is_the_same_before_or_after_normalising():
    """B1: with the DC term kept, filtering the normalised image = normalising the filtered image."""
    x = torch.rand(2, 3, 28, 28)
    a = create_model("fssnet_tiny", fft_input="normalized")
    b = create_model("fssnet_tiny", fft_input="pixels")
    xn = a.normalize(x)
    torch.testing.assert_close(a.frequency_copy(xn), b.frequency_copy(xn), atol=1e-5, rtol=0)
    c = create_model("fssnet_tiny", fft_input="pixels", band="high")
    assert not torch.allclose(create_model("fssnet_tiny", band="high").frequency_copy(xn), c.frequency_copy(xn))


@pytest.mark.parametrize("ablation,present,absent", [
    ("rgb_only", {"backbone_rgb"}, {"backbone_freq", "sbca", "aff"}),
    ("freq_only", {"backbone_freq"}, {"backbone_rgb", "sbca", "aff"}),
    ("no_sbca", {"backbone_rgb", "backbone_freq", "aff"}, {"sbca"}),
    ("no_aff", {"backbone_rgb", "backbone_freq", "sbca"}, {"aff"}),
    ("band_mid", {"backbone_rgb", "backbone_freq", "sbca", "aff"}, set()),
])
def test_ablation_configs_build_their_table_row(ablation, present, absent):
    cfg = load_config(f"fssnet/{ablation}", [
        "model.pretrained=false", f"model.backbone_overrides={json.dumps(TINY_BACKBONE)}",
        "model.preprocess.input_size=28", "model.sbca_heads=2"])
    assert cfg.name == f"fssnet_progan_{ablation}"
    torch.manual_seed(0)
    m = create_model(cfg.model.name, **cfg.model.kwargs)
    children = {n for n, _ in m.named_children()}
    assert present <= children and not (absent & children)
    if ablation == "band_mid":
        assert m.band_filter.band == "mid"
    logits = m(m.normalize(torch.randint(0, 256, (2, 3, 28, 28), dtype=torch.uint8)))
    assert logits.shape == (2,)
    # the ablation differs from the recipe only in its model section
    base = load_config("fssnet/progan")
    assert cfg.optim == base.optim and cfg.data == base.data and cfg.trainer == base.trainer


def test_recipe_config_follows_the_paper():
    cfg = load_config("fssnet/progan")
    m = cfg.model.kwargs
    assert cfg.model.name == "fssnet" and m["pretrained"] is True and m["band"] == "low"
    assert m["preprocess"]["input_size"] == 252 and m["trainable_blocks"] == 2
    assert [s.path for s in cfg.data.train] == [f"train/{c}" for c in ("car", "cat", "chair", "horse")]
    assert [s.path for s in cfg.data.val] == [f"val/{c}" for c in ("car", "cat", "chair", "horse")]
    assert cfg.data.batch_size == 64 and cfg.data.augment.blur_prob == 0 and cfg.data.augment.jpeg_prob == 0
    o = cfg.optim
    assert (o.name, o.lr, o.schedule, o.weight_decay, o.warmup_steps, o.warmup_epochs) == \
        ("adamw", 4e-6, "cosine", 0.01, 0, 0.0)
    t = cfg.trainer
    assert t.max_epochs == 50 and t.selection_metric == ("val/acc", "max")
    es = t.early_stopping
    assert es.enabled and es.patience == 6 and (es.monitor, es.mode) == ("val/acc", "max")


# ----------------------------------------------------------------- bad config
def test_input_size_not_a_multiple_of_14_is_a_config_error():
    with pytest.raises(ConfigError, match=r"(?s)model\.preprocess\.input_size.*multiple of the backbone's patch "
                                          r"size 14.*use 238 or 252"):
        load_config("fssnet/progan", ["model.preprocess.input_size=250"])
    with pytest.raises(ConfigError, match="sbca: false and aff: false"):
        load_config("fssnet/progan", ["model.streams=rgb"])
    with pytest.raises(ConfigError, match="cut-offs"):
        load_config("fssnet/progan", ["model.band_cutoffs=[0.4, 0.2]"])
    with pytest.raises(ConfigError, match="missing: freq"):
        load_config("fssnet/progan", ["model.weights={rgb: a.safetensors}"])


def test_small_grayscale_palette_and_rgba_images_become_252_crops(tmp_path):
    from fakescope.data.transforms import Preprocessor
    from fakescope.media.image import load_image

    pp = resolve_model_config("fssnet").preprocess  # the paper's 252 px crops
    assert (pp.input_size, pp.policy, pp.resize_to) == (252, "crop", 256)
    rng = np.random.default_rng(0)
    files = {
        "gray.png": Image.fromarray(rng.integers(0, 256, (300, 320), dtype=np.uint8), "L"),
        "palette.png": Image.fromarray(rng.integers(0, 256, (260, 260, 3), dtype=np.uint8)).convert("P"),
        "rgba.png": Image.fromarray(rng.integers(0, 256, (256, 270, 4), dtype=np.uint8), "RGBA"),
        "small.png": Image.fromarray(rng.integers(0, 256, (100, 200, 3), dtype=np.uint8)),
    }
    for name, img in files.items():
        img.save(tmp_path / name)
        out = Preprocessor(pp, train=False)(load_image(tmp_path / name))
        assert out.shape == (3, 252, 252) and out.dtype == torch.uint8, name
    # an image smaller than the crop is resized to a short side of 256 (B8), then centre-cropped
    geo = Preprocessor(pp, train=False).draw_geometry((200, 100), rng=None)
    assert geo.resize == (512, 256) and geo.box == (130, 2, 382, 254)


# -------------------------------------------------------------------- weights
def test_pretrained_weights_that_cannot_load_are_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match="facebook/dinov2-base"):
        create_model("fssnet", pretrained=True)
    with pytest.raises(WeightsUnavailableError, match="not found"):
        create_model("fssnet", weights={"rgb": str(tmp_path / "missing.safetensors"), "freq": "x"})
    with pytest.raises(ConfigError, match="overrides"):
        create_model("fssnet_tiny", pretrained=True)


def test_local_weights_load_into_both_backbones_or_one_each(tmp_path):
    from safetensors.torch import save_file

    def dump(seed: int, name: str) -> tuple[dict, str]:
        torch.manual_seed(seed)
        state = create_model("fssnet_tiny").backbone_rgb.state_dict()
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / name))
        return state, str(tmp_path / name)

    a, fa = dump(1, "a.safetensors")
    b, fb = dump(2, "b.safetensors")
    same = create_model("fssnet_tiny", weights=fa)
    each = create_model("fssnet_tiny", weights={"rgb": fa, "freq": fb})
    for k in a:
        assert torch.equal(same.backbone_rgb.state_dict()[k], a[k])
        assert torch.equal(same.backbone_freq.state_dict()[k], a[k])
        assert torch.equal(each.backbone_rgb.state_dict()[k], a[k])
        assert torch.equal(each.backbone_freq.state_dict()[k], b[k])
    # the two backbones start equal but are separate tensors that train independently
    assert same.backbone_rgb.encoder.layer[1].mlp.fc1.weight is not same.backbone_freq.encoder.layer[1].mlp.fc1.weight
    bad = dict(a)
    bad.pop("layernorm.weight")
    save_file({k: v.contiguous() for k, v in bad.items()}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CheckpointError, match="layernorm.weight"):
        create_model("fssnet_tiny", weights={"rgb": fa, "freq": str(tmp_path / "bad.safetensors")})


def test_a_save_pretrained_folder_loads_like_the_hub_model(tmp_path):
    """``weights: <folder>`` is what an offline machine uses for ``facebook/dinov2-base``."""
    torch.manual_seed(3)
    src = create_model("fssnet_tiny").backbone_rgb
    src.save_pretrained(str(tmp_path / "dinov2"))
    m = create_model("fssnet", weights=str(tmp_path / "dinov2"), preprocess={"input_size": 28}, sbca_heads=2)
    for stream in ("rgb", "freq"):
        got = getattr(m, f"backbone_{stream}").state_dict()
        assert all(torch.equal(v, got[k]) for k, v in src.state_dict().items())
    assert m.backbone_rgb.config.hidden_size == 32  # the folder's architecture, not the hub's
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsUnavailableError, match="empty"):
        create_model("fssnet", weights=str(tmp_path / "empty"))


def test_checkpoint_round_trip_never_reads_backbone_weights_again(tmp_path):
    from safetensors.torch import save_file

    from fakescope.zoo.checkpoint import load, save

    torch.manual_seed(0)
    f = tmp_path / "bb.safetensors"
    save_file({k: v.contiguous() for k, v in create_model("fssnet_tiny").backbone_rgb.state_dict().items()}, str(f))
    m = create_model("fssnet_tiny", weights={"rgb": str(f), "freq": str(f)}).eval()
    path = save(m, tmp_path / "ckpt")
    f.unlink()  # gone: loading must use model.safetensors only
    back = load(path)
    x = m.normalize(torch.rand(2, 3, 28, 28))
    with torch.no_grad():
        torch.testing.assert_close(back(x), m(x))


# --------------------------------------------------------------- paper tables
def test_paper_tables_keep_the_column_order_and_printed_means():
    from fakescope.eval.tables import build_rows, get_table

    gan, dm = get_table("fssnet_gan"), get_table("fssnet_dm")
    assert gan.columns == ("ProGAN", "StyleGAN", "StyleGAN2", "BigGAN", "CycleGAN", "StarGAN", "GauGAN", "Deepfake")
    assert dm.columns == ("PNDM", "DALL-E", "VQ-Diffusion", "LDM-100", "LDM-200", "LDM-200-cfg", "Guided",
                          "Glide-100-10", "Glide-100-27", "Glide-50-27")
    assert gan.reference["FSSNet (RGB & Freq)"]["Mean"] == (94.8, 97.0)
    assert dm.reference["FSSNet"]["Mean"] == (92.6, 97.2)
    for table in (gan, dm):
        for method, row in table.reference.items():
            for i, metric in enumerate(table.metrics):
                vals = [row[c][i] for c in table.columns]
                if None in vals:
                    assert (method, "Glide-50-27") in table.footnotes  # the one lost cell is footnoted
                    continue
                # every printed mean is the row's mean up to the print's rounding
                assert abs(np.mean(vals) - row["Mean"][i]) < 0.07, (table.name, method, metric)
    # folder names of the public test sets map onto the columns
    folders = ["progan", "stylegan", "stylegan2", "biggan", "cyclegan", "stargan", "gaugan", "deepfake"]
    assert [gan.column_of(f) for f in folders] == list(gan.columns)
    folders = ["pndm", "dalle", "vqdiffusion", "ldm_100", "ldm_200", "ldm_200_cfg", "guided", "glide_100_10",
               "glide_100_27", "glide_50_27"]
    assert [dm.column_of(f"diffusion/{f}") for f in folders] == list(dm.columns)
    # the per-generator manifests of `fakescope prepare` (DIRE sets are named <domain>_<generator>)
    assert dm.column_of("lsun_bedroom_pndm") == "PNDM" and dm.column_of("lsun_bedroom_vqdiffusion") == "VQ-Diffusion"
    assert dm.column_of("all") is None
    sets = {f: {"acc": 0.5 + 0.05 * i, "ap": 0.9} for i, f in enumerate(folders)}
    header, rows, notes = build_rows(dm, sets, "fssnet")
    assert rows[-1][0] == "fssnet (ours)" and rows[-1][-2:] == ["72.5", "90.0"]
    assert rows[0][0] == "Wang (CVPR 2020) (paper)" and any("NOT the paper's print" in n for n in notes)
    assert any(n.startswith("[") and "unverified" in n and "Wang" in n for n in notes)
    durall = next(r for r in rows if r[0].startswith("Durall"))
    assert durall[header.index("Glide-50-27 ACC")].startswith("n/a[")


def test_reconstructed_cells_give_the_range_their_row_mean_allows():
    from fakescope.eval.paper_fssnet import GAN_COLUMNS, mean_allows
    from fakescope.eval.tables import get_table

    gan = get_table("fssnet_gan")
    for (method, col, metric), shown in ((("LGrad (CVPR 2023, RGB)", "ProGAN", "acc"), 99.9),
                                         (("Ojha (CVPR 2023, RGB)", "Deepfake", "acc"), 80.2)):
        row = gan.reference[method]
        lo, hi = mean_allows(GAN_COLUMNS, row, col, 0)
        assert row[col][0] == shown and lo <= shown <= hi
        # every value of the range, and none outside it, rounds the row's mean to the printed one
        others = sum(row[c][0] for c in GAN_COLUMNS if c != col)
        for v in (lo, hi):
            assert round((others + v) / 8 + 1e-9, 1) == row["Mean"][0]
        for v in (lo - 0.1, hi + 0.1):
            assert v > 100 or round((others + v) / 8 + 1e-9, 1) != row["Mean"][0]
        note = gan.footnotes[(method, col, metric)]
        assert f"allows only {lo:.1f} to {hi:.1f}" in note or f"allows {lo:.1f} to {hi:.1f}" in note
        assert "NPR's code" in note
    assert mean_allows(GAN_COLUMNS, gan.reference["LGrad (CVPR 2023, RGB)"], "ProGAN", 0) == (99.4, 100.0)
    assert mean_allows(GAN_COLUMNS, gan.reference["Ojha (CVPR 2023, RGB)"], "Deepfake", 0) == (80.1, 80.8)


def test_eval_cli_writes_tables_1_and_2_beside_the_paper(tmp_path, capsys):
    from conftest import write_images
    from fakescope.zoo.checkpoint import save
    from fakescope.cli import main

    torch.manual_seed(0)
    ckpt = save(create_model("fssnet_tiny"), tmp_path / "ckpt")
    gans = ["progan", "stylegan", "stylegan2", "biggan", "cyclegan", "stargan", "gaugan", "deepfake"]
    dms = ["dalle", "glide_100_10", "glide_100_27", "glide_50_27", "guided", "ldm_100", "ldm_200", "ldm_200_cfg"]
    for i, name in enumerate(gans + dms):
        root = tmp_path / ("gan" if name in gans else "dm") / name
        write_images(root / "0_real", 3, size=32, seed=2 * i, kind="smooth")
        write_images(root / "1_fake", 3, size=32, seed=2 * i + 1)
    out = tmp_path / "eval"
    code = main(["eval", str(ckpt), "--data", str(tmp_path / "gan" / "*"), str(tmp_path / "dm" / "*"),
                 "--out", str(out), "--num-workers", "0", "--table", "fssnet_gan", "fssnet_dm"])
    assert code == 0, capsys.readouterr().err
    gan = (out / "table_fssnet_gan.md").read_text()
    assert "FSSNet (RGB & Freq) (paper) | 99.9 | 100.0" in gan and "fssnet_tiny (ours)" in gan
    ours = next(line for line in gan.splitlines() if "(ours)" in line).split("|")[2:-1]
    assert len(ours) == 18 and "n/a" not in "".join(ours)  # 8 GANs + mean, Acc and AP each
    dm = (out / "table_fssnet_dm.md").read_text()
    ours = next(line for line in dm.splitlines() if "(ours)" in line)
    # PNDM and VQ-Diffusion come from the DIRE release, not given here: n/a, and no mean
    assert ours.count("n/a") == 6 and "no test set matched): PNDM, VQ-Diffusion" in dm
    header = (out / "table_fssnet_dm.csv").read_text().splitlines()[0].split(",")
    assert header[1:5] == ["PNDM ACC", "PNDM AP", "DALL-E ACC", "DALL-E AP"]


# --------------------------------------------------------- synthetic benchmark
@pytest.fixture
def one_thread():
    """Tiny tensors: one thread avoids OpenMP spinning against other jobs on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")
def test_tiny_fssnet_learns_the_synthetic_benchmark(tmp_path, tiny_synth, one_thread):
    from fakescope.workflows import run_experiment

    # The synthetic generators leave their traces at 1/4 and 1/2 cycle per pixel, so the
    # frequency stream keeps the high band here (the Table 3 "high" row); on 96 training
    # images of 32 px the low band leaves the tiny model without the fingerprint.
    cfg = tiny_experiment(tmp_path, tiny_synth, "trainer.max_epochs=8", "optim.lr=1e-2", "model.band=high",
                          "trainer.early_stopping.enabled=false", model="fssnet_tiny")
    result, _ = run_experiment(cfg, echo=lambda m: None)
    ev = json.loads((result.run_dir / "eval" / "metrics.json").read_text())
    assert ev["model"] == "fssnet_tiny"
    assert ev["sets"]["tconv"]["auc"] >= 0.9, ev["sets"]["tconv"]
    # the cross-generator table: one row per generator family, and the mean
    table = (result.run_dir / "eval" / "metrics.md").read_text()
    for family in ("tconv", "nearest", "bilinear", "pixelshuffle", "diffusion", "mean"):
        assert family in table
