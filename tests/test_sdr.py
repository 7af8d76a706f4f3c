"""SDR (issue 6): TPA perturbations, branches, TRFI, losses, temporal transformer, encoder weights, video scoring."""

from __future__ import annotations

import csv
import io
import re
import warnings

import numpy as np
from skimage import data as skimage_data
import pytest
import torch
from PIL import Image, ImageEnhance
from pydantic import ValidationError
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from conftest import write_images
from fakescope.errors import CheckpointError, WeightsUnavailableError
from fakescope.models import create_model
from fakescope.models.sdr.resnet3d import I3DConfig, I3DEncoder, load_encoder_weights
from fakescope.models.sdr import (
    TPA_KINDS,
    TPAConfig,
    apply_tpa,
    draw_tpa_params,
    tpa_blur,
    tpa_color,
    tpa_jpeg,
    tpa_rescale,
)

PERTURBATIONS = [k for k in TPA_KINDS if k != "none"]


def photo_clip(b: int = 2, t: int = 4, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Natural-looking clips in [0, 1]: a smooth random image drifting by one pixel per frame."""
    g = np.random.default_rng(seed)
    clips = []
    for _ in range(b):
        base = Image.fromarray(g.integers(0, 256, (size // 4 + 2, size // 4 + 2, 3), dtype=np.uint8))
        big = np.asarray(base.resize((size + 8, size + 8), Image.Resampling.BICUBIC), dtype=np.float32) / 255
        clips.append(np.stack([big[i:i + size, i:i + size] for i in range(t)]))
    return torch.from_numpy(np.stack(clips)).permute(0, 1, 4, 2, 3).contiguous()


def params_for(kind: str, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    return draw_tpa_params(kind, n, TPAConfig(), generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------- TPA
@pytest.mark.parametrize("kind", PERTURBATIONS)
def test_tpa_is_the_same_operation_on_every_frame(kind):
    static = photo_clip(3, 1, seed=1).repeat(1, 4, 1, 1, 1)  # 4 identical frames per clip
    p = params_for(kind, 3)
    out = apply_tpa(kind, static, p, torch.Generator().manual_seed(5))
    assert out.shape == static.shape and out.min() >= 0 and out.max() <= 1
    for t in range(1, 4):  # no temporal change is introduced
        torch.testing.assert_close(out[:, t], out[:, 0], rtol=0, atol=1e-6)
    assert (out - static).abs().mean() > 2e-3, f"{kind} hardly changed the clip"
    # on a moving clip, permuting the frames permutes the output: nothing depends on the frame index
    clip = photo_clip(3, 4, seed=2)
    perm = torch.tensor([2, 0, 3, 1])
    a = apply_tpa(kind, clip, p, torch.Generator().manual_seed(5))[:, perm]
    b = apply_tpa(kind, clip[:, perm], p, torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    # one parameter setting per clip, different between clips
    for v in p.values():
        assert v.shape == (3,) and len(set(v.tolist())) > 1


def test_tpa_branches_differ_and_parameters_stay_in_range():
    clip = photo_clip(2, 2, seed=3)
    outs = {k: apply_tpa(k, clip, params_for(k, 2)) for k in PERTURBATIONS}
    for i, a in enumerate(PERTURBATIONS):
        for b in PERTURBATIONS[i + 1:]:
            assert (outs[a] - outs[b]).abs().mean() > 1e-3, f"{a} and {b} give the same clip"
    cfg = TPAConfig()
    p = {k: params_for(k, 500, seed=7) for k in PERTURBATIONS}
    assert cfg.blur_sigma[0] <= p["blur"]["sigma"].min() and p["blur"]["sigma"].max() <= cfg.blur_sigma[1]
    q = p["jpeg"]["quality"]
    assert q.min() >= 40 and q.max() <= 90 and torch.equal(q, q.round())
    assert p["rescale"]["scale"].min() >= 0.4 and p["rescale"]["scale"].max() <= 0.8
    assert p["color"]["hue"].abs().max() <= 0.05 and (p["color"]["brightness"] - 1).abs().max() <= 0.3
    with pytest.raises(ValueError, match="unknown TPA perturbation"):
        apply_tpa("rotate", clip, {})
    with pytest.raises(ValidationError, match="reversed"):
        TPAConfig(rescale=(0.8, 0.4))


def test_model_views_are_perturbed_per_branch(monkeypatch):
    torch.manual_seed(0)
    m = create_model("sdr_tiny")
    clip = (photo_clip(2, 1, seed=4).repeat(1, 8, 1, 1, 1) * 255).round().to(torch.uint8)
    x = m.normalize(clip)
    views = m.perturb(x)
    assert len(views) == 4 == len(m.cfg.branches)
    for v in views:
        assert v.shape == x.shape
        torch.testing.assert_close(v[:, 1:], v[:, :1].expand_as(v[:, 1:]), rtol=0, atol=1e-5)
    for i in range(4):
        for j in range(i + 1, 4):
            assert (views[i] - views[j]).abs().mean() > 1e-3
    # inference never perturbs; training always does
    calls = []
    import fakescope.models.sdr.model as sdr

    real = sdr.apply_tpa
    monkeypatch.setattr(sdr, "apply_tpa", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    m.eval()
    p1, p2 = m.predict_proba(clip), m.predict_proba(clip)
    assert torch.equal(p1, p2) and not calls
    m.train()
    m.compute_loss(x, torch.tensor([0, 1]))
    assert calls == ["blur", "jpeg", "color", "rescale"]


def test_tpa_operations_match_reference_implementations():
    clip = photo_clip(2, 1, size=40, seed=6)
    # blur: scipy's Gaussian filter with the same radius and mirrored borders
    sigma = torch.tensor([0.7, 1.9])
    out = tpa_blur(clip, sigma)
    radius = int(np.ceil(3 * 1.9))
    for i, s in enumerate(sigma.tolist()):
        for c in range(3):
            ref = ndimage.gaussian_filter(clip[i, 0, c].double().numpy(), s, mode="mirror", truncate=radius / s)
            np.testing.assert_allclose(out[i, 0, c].numpy(), ref, atol=1e-5)
    img = (clip[0, 0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    x = torch.from_numpy(img).permute(2, 0, 1).float()[None, None] / 255
    pil = Image.fromarray(img)

    def diff(a: torch.Tensor, b: Image.Image) -> float:
        return float(np.abs(a[0, 0].permute(1, 2, 0).numpy() * 255 - np.asarray(b, np.float64)).mean())

    # JPEG: PIL's (libjpeg) encoder and decoder at the same quality. On a natural photo crop (40 px: not
    # a whole number of 16-px MCUs) within one grey level on average; on saturated colour noise, whose
    # chroma the 4:2:0 subsampling mangles, still far closer to PIL's result than the input is
    photo = np.ascontiguousarray(skimage_data.astronaut()[100:140, 150:190])
    for img_q, bound in ((photo, None), (img, 0.25)):
        xq = torch.from_numpy(img_q).permute(2, 0, 1).float()[None, None] / 255
        for q in (40, 90):
            buf = io.BytesIO()
            Image.fromarray(img_q).save(buf, format="JPEG", quality=q)
            ref = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
            ours = diff(tpa_jpeg(xq, torch.tensor([float(q)])), ref)
            assert ours < (1.0 if bound is None else bound * diff(xq, ref)), (q, ours, diff(xq, ref))
            if bound is None:
                assert ours < 0.3 * diff(xq, ref)
    # colour: PIL's ImageEnhance blends; hue 0 and factors 1 are the identity
    one, zero = torch.ones(1), torch.zeros(1)
    torch.testing.assert_close(tpa_color(x, one, one, one, zero), x, rtol=0, atol=1e-5)
    for arg, enhancer in ((0, ImageEnhance.Brightness), (1, ImageEnhance.Contrast), (2, ImageEnhance.Color)):
        factors = [one, one, one]
        factors[arg] = torch.tensor([1.3])
        assert diff(tpa_color(x, *factors, zero), enhancer(pil).enhance(1.3)) < 0.8
    assert diff(tpa_color(x, one, one, one, torch.tensor([0.05])), pil) > 1.0
    # rescale: PIL bilinear down then up
    for s in (0.4, 0.8):
        small = (round(40 * s), round(40 * s))
        ref = pil.resize(small, Image.Resampling.BILINEAR, reducing_gap=None).resize((40, 40), Image.Resampling.BILINEAR)
        assert diff(tpa_rescale(x, torch.tensor([s])), ref) < 0.6


# ------------------------------------------------------------------ shapes
@pytest.mark.parametrize("frames", [8, 16, 32])
def test_shapes_for_clip_lengths(frames):
    torch.manual_seed(0)
    m = create_model("sdr_tiny", preprocess={"clip_len": frames})
    x = m.normalize(torch.randint(0, 256, (2, frames, 3, 32, 32), dtype=torch.uint8))
    z = m.tokens(m.encoder, x)
    assert z.shape == (2, frames // 2, m.cfg.encoder.out_channels)
    assert m.head.pos_embedding.shape == (1, frames // 2 + 1, m.cfg.token_dim)
    assert m(x).shape == (2,)
    out = m.compute_loss(x, torch.tensor([0, 1]))
    assert out.logits.shape == (2,) and torch.isfinite(out.total)


def test_spatial_pool_option_mean_or_max():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 3, 32, 32)
    mean = create_model("sdr_tiny")
    top = create_model("sdr_tiny", spatial_pool="max")
    top.load_state_dict(mean.state_dict())
    mean.eval(), top.eval()
    with torch.no_grad():
        f = mean.encoder(x.transpose(1, 2))  # [B, C, T', H', W']
        torch.testing.assert_close(mean.tokens(mean.encoder, x), f.mean(dim=(3, 4)).transpose(1, 2))
        torch.testing.assert_close(top.tokens(top.encoder, x), f.amax(dim=(3, 4)).transpose(1, 2))
    assert mean.cfg.spatial_pool == "mean"  # FTCN's average pool stays the default
    with pytest.raises(ValidationError):
        create_model("sdr_tiny", spatial_pool="median")


def test_full_size_encoder_has_ftcn_layout():
    cfg = I3DConfig()
    enc = I3DEncoder(cfg).eval()
    with torch.no_grad():
        f = enc(torch.randn(1, 3, 32, 32, 32))
    assert f.shape == (1, 1024, 16, 2, 2)  # res4: 1024 channels, T/2, H/16
    convs = {n: m for n, m in enc.named_modules() if isinstance(m, torch.nn.Conv3d)}
    assert all(c.kernel_size[1:] == (1, 1) and c.stride == (1, 1, 1) for c in convs.values())
    assert convs["stem.conv"].kernel_size == (5, 1, 1)
    assert [len(s) for s in enc.stages] == [3, 4, 6]
    assert [b.conv_a.kernel_size[0] for b in enc.stages[1]] == [3, 1, 3, 1]
    assert [b.conv_a.kernel_size[0] for b in enc.stages[2]] == [3, 1, 3, 1, 3, 1]
    pools = [n for n, m in enc.named_modules() if isinstance(m, torch.nn.MaxPool3d) and m.kernel_size == (1, 2, 2)]
    assert len(pools) == 5  # stem, and the conv and shortcut of the first block of res3 and res4
    # FTCN's keep_stride_count: the first strided convs keep their stride instead
    kept = I3DEncoder(I3DConfig(keep_stride_count=1))
    assert kept.stem.conv.stride == (1, 2, 2) and isinstance(kept.stem.bn, torch.nn.BatchNorm3d)


def test_bad_clips_and_configs_are_clear_errors():
    m = create_model("sdr_tiny")
    with pytest.raises(ValueError, match="clips of 8 frames"):
        m(torch.zeros(1, 4, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\[batch, 8, 3, height, width\]"):
        m(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="smaller than the encoder's stride"):
        m(torch.zeros(1, 8, 3, 8, 8))
    with pytest.raises(ValidationError, match="clip_len"):
        create_model("sdr", preprocess={"clip_len": None})
    with pytest.raises(ValidationError, match="distinct"):
        create_model("sdr_tiny", branches=["blur", "blur"])
    with pytest.raises(ValidationError):
        create_model("sdr_tiny", branches=["rotate"])
    with pytest.raises(ValidationError, match="divisible"):
        create_model("sdr_tiny", heads=3)


# --------------------------------------------------------------- switches
def test_ablation_switches_and_separate_encoders():
    torch.manual_seed(0)
    m = create_model("sdr_tiny", fusion="mean", lambda_mi=0.0, lambda_con=0.0)
    assert m.trfi is None and m.branch_heads is None and m.projector is None
    x = m.normalize(torch.randint(0, 256, (2, 8, 3, 32, 32), dtype=torch.uint8))
    assert set(m.compute_loss(x, torch.tensor([0, 1])).terms) == {"bce"}
    sep = create_model("sdr_tiny", shared_encoder=False, branches=["blur", "noise"])
    assert len(sep.encoders) == 2 and not hasattr(sep, "encoder")
    out = sep.compute_loss(x, torch.tensor([0, 1]))
    out.total.backward()
    assert all(e.stem.conv.weight.grad.abs().sum() > 0 for e in sep.encoders)
    assert sep(x).shape == (2,)
    # with separate encoders inference fuses the K clean-clip features with TRFI's weights
    feats = [sep.tokens(e, x) for e in sep.encoders]
    z, w = sep.integrate(feats)
    torch.testing.assert_close(w.sum(1), torch.ones(2))
    torch.testing.assert_close(z, w[:, 0, None, None] * feats[0] + w[:, 1, None, None] * feats[1])


def test_packaged_sdr_configs_set_the_ablation_rows():
    from fakescope.config import load_config
    from fakescope.models import resolve_model_config

    def model(name):
        cfg = load_config(f"sdr/{name}")
        return cfg, resolve_model_config(cfg.model.name, cfg.model.kwargs)

    for k in range(1, 6):
        assert len(model(f"ablation_k{k}")[1].branches) == k
    assert model("ablation_k5")[1].branches[-1] == "noise"
    assert model("ablation_no_trfi")[1].fusion == "mean"
    assert model("ablation_no_mi")[1].lambda_mi == 0 and model("ablation_no_con")[1].lambda_con == 0
    cfg, rec = model("ffpp_c23")
    assert rec.preprocess.clip_len == 32 and rec.preprocess.input_size == 224 and len(rec.branches) == 4
    assert rec.shared_encoder and rec.fusion == "trfi" and rec.encoder.widths == [64, 128, 256]
    assert cfg.data.batch_size * cfg.trainer.accumulate_grad_batches == 16 and cfg.optim.lr == 3e-4
    assert model("ftcn_baseline")[1].branches == ["none"]


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    torch.manual_seed(0)
    a = create_model("sdr_tiny")
    b = create_model("sdr_tiny", encoder={"grad_checkpoint": True})
    assert b.cfg.encoder.widths == [4, 8, 8] and b.encoder.cfg.grad_checkpoint
    b.load_state_dict(a.state_dict())
    x = a.normalize(torch.randint(0, 256, (2, 8, 3, 32, 32), dtype=torch.uint8))
    y = torch.tensor([0, 1])
    losses = []
    for m in (a, b):
        m.train()
        torch.manual_seed(9)
        out = m.compute_loss(x, y)
        out.total.backward()
        losses.append(out.total)
    torch.testing.assert_close(losses[0], losses[1])
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=n)


# ---------------------------------------------------------------- weights
def _torchvision_resnet(stem: int, widths: list[int], blocks: list[int], exp: int = 4) -> dict[str, torch.Tensor]:
    """A torchvision-layout 2D ResNet state dict of the given widths (random values)."""
    g = torch.Generator().manual_seed(0)
    state: dict[str, torch.Tensor] = {}

    def bn(prefix: str, c: int) -> None:
        state.update({f"{prefix}.weight": torch.rand(c, generator=g), f"{prefix}.bias": torch.randn(c, generator=g),
                      f"{prefix}.running_mean": torch.randn(c, generator=g),
                      f"{prefix}.running_var": torch.rand(c, generator=g) + 0.5,
                      f"{prefix}.num_batches_tracked": torch.tensor(7)})

    state["conv1.weight"] = torch.randn(stem, 3, 7, 7, generator=g)
    bn("bn1", stem)
    cin = stem
    for i, (w, n) in enumerate(zip(widths + [widths[-1]], blocks + [1])):  # one extra stage: res5, dropped
        for j in range(n):
            p = f"layer{i + 1}.{j}"
            state[f"{p}.conv1.weight"] = torch.randn(w, cin, 1, 1, generator=g)
            state[f"{p}.conv2.weight"] = torch.randn(w, w, 3, 3, generator=g)
            state[f"{p}.conv3.weight"] = torch.randn(w * exp, w, 1, 1, generator=g)
            for k, c in ((1, w), (2, w), (3, w * exp)):
                bn(f"{p}.bn{k}", c)
            if j == 0:
                state[f"{p}.downsample.0.weight"] = torch.randn(w * exp, cin, 1, 1, generator=g)
                bn(f"{p}.downsample.1", w * exp)
            cin = w * exp
    state["fc.weight"] = torch.randn(10, cin, generator=g)
    state["fc.bias"] = torch.zeros(10)
    return state


def test_imagenet_resnet_weights_are_inflated_from_a_local_file(tmp_path):
    from safetensors.torch import save_file

    src = _torchvision_resnet(8, [4, 8, 8], [1, 1, 1])
    f = tmp_path / "resnet50_imagenet.safetensors"
    save_file(src, str(f))
    m = create_model("sdr_tiny", weights=str(f))
    enc = m.encoder.state_dict()
    # spatial kernels summed to 1x1, repeated over the temporal kernel and divided by its length
    stem = src["conv1.weight"].sum(dim=(2, 3))[:, :, None, None, None].repeat(1, 1, 5, 1, 1) / 5
    torch.testing.assert_close(enc["stem.conv.weight"], stem)
    torch.testing.assert_close(enc["stages.1.0.conv_b.weight"], src["layer2.0.conv2.weight"].sum((2, 3))[..., None, None, None])
    torch.testing.assert_close(enc["stages.0.0.conv_a.weight"],
                               src["layer1.0.conv1.weight"][:, :, None].repeat(1, 1, 3, 1, 1) / 3)
    torch.testing.assert_close(enc["stages.2.0.shortcut.bn.0.running_var"], src["layer3.0.downsample.1.running_var"])
    # the inflated stem answers a still, flat clip as the 2D conv answers the flat image
    flat = torch.rand(1, 3, 1, 1).expand(1, 3, 9, 9)
    ref = torch.nn.functional.conv2d(flat, src["conv1.weight"], padding=3)[0, :, 4, 4]
    got = m.encoder.stem.conv(flat[:, :, None].expand(1, 3, 5, 9, 9))[0, :, 2, 4, 4]
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)


def test_transformers_and_slowfast_layouts_load(tmp_path):
    from transformers import ResNetConfig, ResNetModel

    torch.manual_seed(0)
    hf = ResNetModel(ResNetConfig(embedding_size=8, hidden_sizes=[16, 32, 32, 64], depths=[1, 1, 1, 1],
                                  layer_type="bottleneck"))
    hf.save_pretrained(tmp_path / "resnet")  # a save_pretrained folder, as for microsoft/resnet-50
    m = create_model("sdr_tiny", weights=str(tmp_path / "resnet"))
    torch.testing.assert_close(m.encoder.stem.bn[0].running_mean, hf.embedder.embedder.normalization.running_mean)
    w = hf.encoder.stages[2].layers[0].layer[2].convolution.weight
    torch.testing.assert_close(m.encoder.stages[2][0].conv_c.weight, w[:, :, None])
    # SlowFast I3D (Kinetics) names in a .pyth-style pickle, 3D kernels with 7x7 / 3x3 spatial parts
    enc = I3DEncoder(create_model("sdr_tiny").cfg.encoder)
    g = torch.Generator().manual_seed(1)
    slowfast = {"head.projection.weight": torch.zeros(400, 32)}
    for k, v in enc.state_dict().items():
        module, param = k.rsplit(".", 1)
        shape = list(v.shape)
        if module in ("stem.conv",) or module.endswith("conv_b"):
            shape[3:] = [7, 7] if module == "stem.conv" else [3, 3]
        slowfast[f"{slowfast_name(module)}.{param}"] = torch.randn(shape, generator=g) if v.is_floating_point() else v
    torch.save({"model_state": slowfast, "epoch": 196}, tmp_path / "i3d_r50_kinetics.pyth")
    assert load_encoder_weights(enc, tmp_path / "i3d_r50_kinetics.pyth") == "slowfast"
    torch.testing.assert_close(enc.stages[1][0].conv_b.weight,
                               slowfast["s3.pathway0_res0.branch2.b.weight"].sum((3, 4), keepdim=True))
    torch.testing.assert_close(enc.stem.conv.weight, slowfast["s1.pathway0_stem.conv.weight"].sum((3, 4), keepdim=True))
    torch.testing.assert_close(enc.stages[0][0].bn_a.running_var, slowfast["s2.pathway0_res0.branch2.a_bn.running_var"])


def slowfast_name(module: str) -> str:
    """Our encoder's module name -> SlowFast's (the BatchNorm before a moved stride sits in a Sequential)."""
    module = re.sub(r"\.0$", "", module)
    if module.startswith("stem."):
        return f"s1.pathway0_stem.{module.split('.')[1]}"
    _, i, j, part = module.split(".", 3)
    q = f"s{int(i) + 2}.pathway0_res{j}"
    if part.startswith("shortcut"):
        return f"{q}.branch1" + ("_bn" if part.endswith("bn") else "")
    return f"{q}.branch2.{part[-1]}" + ("_bn" if part.startswith("bn") else "")


def test_encoder_weights_round_trip_and_failures(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    src = create_model("sdr_tiny")
    f = tmp_path / "sdr_encoder.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(f))  # a whole model: 'encoder.' keys
    torch.manual_seed(1)
    dst = create_model("sdr_tiny", shared_encoder=False, weights=str(f))
    for enc in dst.encoders:
        for k, v in src.encoder.state_dict().items():
            assert torch.equal(v, enc.state_dict()[k]), k
    with pytest.raises(WeightsUnavailableError, match="not found"):
        create_model("sdr_tiny", weights=str(tmp_path / "missing.safetensors"))
    big = _torchvision_resnet(64, [64, 128, 256], [3, 4, 6])
    save_file({k: big[k] for k in list(big)[:40]}, str(tmp_path / "wrong.safetensors"))
    with pytest.raises(CheckpointError, match="does not fit|do not match"):
        create_model("sdr_tiny", weights=str(tmp_path / "wrong.safetensors"))
    save_file({"some.weight": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="unrecognised encoder weights"):
        create_model("sdr_tiny", weights=str(tmp_path / "other.safetensors"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match="microsoft/resnet-50"):
        create_model("sdr", pretrained=True)


# ---------------------------------------------------------- video scoring
def test_video_scores_pad_short_clips_and_name_unusable_videos(tmp_path):
    from fakescope.zoo.checkpoint import save
    from fakescope.eval.evaluate import evaluate

    root = tmp_path / "test"
    write_images(root / "0_real" / "long", 10, seed=1)   # 10 frames: windows [0:8] and the last full one [2:10]
    write_images(root / "0_real" / "short", 3, seed=2)   # shorter than a clip: padded with 5 repeated frames
    write_images(root / "1_fake" / "ok", 8, seed=3)
    for p in write_images(root / "1_fake" / "broken", 4, seed=4):
        p.write_bytes(b"not a png")                      # no usable clip at all
    torch.manual_seed(0)
    ck = save(create_model("sdr_tiny"), tmp_path / "ck")
    lines: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = evaluate(ck, [str(root)], tmp_path / "ev", num_workers=0, echo=lines.append, progress=False)
    m = res["sets"]["test"]
    assert m["n"] == 4 and m["skipped"] == 1  # four readable clips, one unreadable
    assert m["n_videos"] == 4 and m["videos_scored"] == 3 and m["videos_skipped"] == 1
    assert res["skipped_videos"] == {"test": ["1_fake/broken"]}
    assert any("1_fake/broken" in line and "no usable clip" in line for line in lines)
    assert m["padded_clips"] == 1
    rows = list(csv.DictReader(open(tmp_path / "ev" / "scores" / "test.csv")))
    padded = {r["video_id"]: int(r["padded"]) for r in rows if r["video_id"] == "0_real/short"}
    assert padded == {"0_real/short": 5}
    assert sum(r["video_id"] == "0_real/long" for r in rows) == 2
    # the video score is the mean of its clip scores
    per_video: dict[str, list[float]] = {}
    for r in rows:
        per_video.setdefault(r["video_id"], []).append(float(r["score"]))
    vids = sorted(per_video)
    expected = roc_auc_score([int(v.startswith("1_")) for v in vids], [np.mean(per_video[v]) for v in vids])
    assert m["video_auc"] == pytest.approx(expected)
