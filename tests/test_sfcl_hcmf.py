"""SFCL-HCMF: shapes, fusion behaviour, ablations, weights loading, bad input, recipes and learning."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from pydantic import ValidationError

from conftest import tiny_experiment
from fakescope.config import load_config
from fakescope.errors import CheckpointError, DataError, WeightsUnavailableError
from fakescope.models import create_model
from fakescope.models.sfcl_hcmf import HCMA
from fakescope.models.sfcl_hcmf.spectral import sida_stat_slices
from fakescope.models.layers.xception import CNNF, REBUILT_KEYS

TINY = "sfcl_hcmf_tiny"
TINY_CNNF = dict(widths=[16, 24, 32, 48, 64], middle_blocks=1)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from a second thread, and on a busy 2-core machine OpenMP threads waiting on
    each other make them many times slower (the learning test: about 3 s on one thread, over a minute on two)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(**overrides):
    torch.manual_seed(0)
    return create_model(TINY, **overrides)


def pixels(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_shapes_through_every_module_at_380_px():
    # the paper's input size with the tiny widths: the grids are the real model's
    m = tiny(preprocess={"input_size": 380}).eval()
    with torch.no_grad():
        out = m.features(m.normalize(pixels(2, 380)))
    assert out["X~"].shape == (2, 3, 64, 48, 48)  # 380 reflect-padded to 384 (A1)
    assert out["D"].shape == (2, 2304)
    assert out["X_f"].shape == (2, m.sbcm.out_channels, 48, 48)
    assert out["F_map"].shape == (2, 64, 6, 6) and out["F"].shape == (2, 64)  # CNN-F: 48 -> 24 -> 12 -> 6
    assert out["X_S"].shape[-2:] == (47, 47)  # transformers' B4 at stride 8 (A6)
    assert out["Y_S"].shape == out["X_S"].shape
    assert out["S"].shape == (2, 320) and out["F_fused"].shape == (2, 32) and out["logits"].shape == (2, 2)


def test_shapes_at_a_small_test_size_and_inputs_not_a_multiple_of_8():
    m = tiny().eval()
    with torch.no_grad():
        out = m.features(m.normalize(pixels(3, 32)))
        odd = m.features(m.normalize(pixels(2, 36)))
    assert out["X~"].shape == (3, 3, 64, 4, 4) and out["X_S"].shape[-2:] == (4, 4)
    assert out["logits"].shape == (3, 2)
    assert odd["X~"].shape == (2, 3, 64, 5, 5)  # 36 px padded to 40 for the DCT only
    assert torch.isfinite(odd["logits"]).all()


@pytest.mark.slow
def test_full_size_model_at_380_px():
    torch.manual_seed(0)
    m = create_model("sfcl_hcmf").eval()
    assert 45e6 < m.num_parameters() < 52e6
    with torch.no_grad():
        out = m.features(m.normalize(pixels(1, 380)))
    assert out["X~"].shape == (1, 3, 64, 48, 48) and out["D"].shape == (1, 2304)
    assert out["X_f"].shape == (1, 192, 48, 48) and out["F_map"].shape == (1, 2048, 6, 6)
    assert out["X_S"].shape == (1, 56, 47, 47) == out["Y_S"].shape
    assert out["S"].shape == (1, 1792) and out["F"].shape == (1, 2048)
    assert out["F_fused"].shape == (1, 1024) and out["logits"].shape == (1, 2)
    assert m.fusion.w_q.weight.shape == (1024, 1024) and m.fusion.gate.weight.shape == (1024, 2304)


VARIANTS = {
    "default": {},
    "no_local": {"use_local": False, "use_faae": False},
    "no_sida": {"use_sida": False},
    "no_faae": {"use_faae": False},
    "concat_mlp": {"fusion": "concat_mlp"},
    "faae_pooled": {"faae_output": "pooled"},
    "spatial_tokens": {"hcma_tokens": "spatial", "preprocess": {"input_size": 128}},
    "one_logit_bce": {"head_outputs": 1},
    "channel_norm_batchnorm_sida": {"freq_norm": "channel", "sida_norm": "batchnorm"},
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_gradients_reach_every_trainable_module(variant):
    # spatial tokens at 32 px would leave one key token (CNN-F's map is 1x1): softmax over one key
    # is 1 and W_Q, W_K get no gradient, so that variant runs where the maps have several positions
    m = tiny(**VARIANTS[variant]).train()
    size = m.preprocess.input_size
    out = m.compute_loss(m.normalize(pixels(4, size)), torch.tensor([0, 1, 0, 1]))
    assert torch.isfinite(out.total)
    out.total.backward()
    trainable = [(name, p) for name, p in m.named_parameters() if p.requires_grad]
    assert trainable
    for name, p in trainable:  # every trainable tensor of every module, not only some of each module
        assert p.grad is not None, f"{variant}: {name} gets no gradient"
        assert p.grad.abs().sum() > 0, f"{variant}: {name} gets only zero gradients"


def test_ablation_switches_remove_their_modules():
    has = lambda m, *names: [hasattr(m, n) for n in names]  # noqa: E731
    assert has(tiny(), "sbcm", "cnnf", "faae", "sida_norm") == [True] * 4
    assert has(tiny(use_local=False, use_faae=False), "sbcm", "cnnf", "faae") == [False] * 3
    assert not hasattr(tiny(use_local=False, use_faae=False).fusion, "w_q")  # no cross attention without F
    assert tiny(use_sida=False).fusion.gate is None and not hasattr(tiny(use_sida=False), "sida_norm")
    assert not hasattr(tiny(use_faae=False), "faae")
    concat = tiny(fusion="concat_mlp")
    assert concat.fusion.mlp[0].in_features == 320 + 64 + 2304


@pytest.mark.parametrize("name,check", [
    ("no_local", lambda m: not hasattr(m, "cnnf") and not hasattr(m, "faae")),
    ("no_sida", lambda m: m.fusion.gate is None),
    ("no_faae", lambda m: not hasattr(m, "faae") and hasattr(m, "cnnf")),
    ("concat_mlp", lambda m: type(m.fusion).__name__ == "ConcatFusion"),
])
def test_ablation_configs(name, check):
    cfg = load_config(f"sfcl_hcmf/{name}")
    base = load_config("sfcl_hcmf/ffpp_c23")
    assert cfg.model.name == "sfcl_hcmf" and cfg.name.endswith(name)
    assert cfg.optim == base.optim and cfg.data == base.data  # only the model changes
    switches = {k: v for k, v in cfg.model.kwargs.items() if k not in ("pretrained", "preprocess", "cnnf_weights")}
    assert switches and check(tiny(**switches))


def test_recipe_configs_follow_the_paper():
    c23 = load_config("sfcl_hcmf/ffpp_c23")
    assert (c23.optim.name, c23.optim.lr, c23.optim.weight_decay) == ("adam", 1e-3, 1e-8)
    assert c23.data.batch_size == 20 and c23.trainer.max_epochs == 20
    assert c23.model.kwargs["preprocess"]["input_size"] == 380 and c23.model.kwargs["pretrained"] is True
    assert c23.trainer.selection_metric == ("val/auc", "max")
    assert [(s.path, s.split) for s in c23.data.val] == [("ffpp_c23/manifest.csv", "val")]
    assert [s.name for s in c23.data.test] == ["ffpp_c23", "celebdf_v2", "dfdc"]
    assert all(s.split == "test" for s in c23.data.test)
    assert c23.data.augment.jpeg_prob == 0 and c23.data.augment.blur_prob == 0
    c40 = load_config("sfcl_hcmf/ffpp_c40")
    assert {s.path for s in (*c40.data.train, *c40.data.val, *c40.data.test)} == {"ffpp_c40/manifest.csv"}
    assert c40.optim == c23.optim
    grid = {}
    for slug in ("deepfakes", "face2face", "faceswap", "neuraltextures"):
        cfg = load_config(f"sfcl_hcmf/xmanip_{slug}")
        grid[cfg.data.train[0].path] = [s.name for s in cfg.data.test]
    assert len(grid) == 4 and all(v == ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"] for v in grid.values())


def test_faae_gate_starts_at_one_half_and_its_output_reenters_the_backbone():
    for mode, expect in (("reinject", "Y_S"), ("pooled", "X_S")):
        m = tiny(faae_output=mode).eval()
        assert torch.sigmoid(m.faae.gamma).item() == 0.5
        seen = {}
        m.spatial.encoder.blocks[m.split].register_forward_pre_hook(lambda mod, args: seen.update(x=args[0]))
        with torch.no_grad():
            out = m.features(m.normalize(pixels(2, 32)))
        assert torch.equal(seen["x"], out[expect]), mode
        assert not torch.allclose(out["Y_S"], out["X_S"])  # FAAE changes the map from the start
    assert hasattr(tiny(faae_output="pooled"), "faae_proj") and not hasattr(tiny(), "faae_proj")


def test_hcma_cross_attention_is_not_degenerate_and_the_gate_modulates():
    torch.manual_seed(0)
    s, f, d = torch.randn(3, 12), torch.randn(3, 10), torch.randn(3, 20)
    one = HCMA(12, 10, None, dim=32, heads=1).eval()
    # a single query and a single key: softmax over one key is 1 and the "attention" returns V
    torch.testing.assert_close(one._attend(s, f, None, None), one.w_v(one.proj_f(f)))
    eight = HCMA(12, 10, 20, dim=32, heads=8).eval()  # A8: 8 tokens of 4
    with torch.no_grad():
        a = eight._attend(s, f, None, None)
        v = eight.w_v(eight.proj_f(f))
        assert not torch.allclose(a, v, atol=1e-3)
        residual = eight.res_bn(eight.res(eight.proj_s(s)))
        torch.testing.assert_close(eight(s, f, d), (a + residual) * torch.sigmoid(eight.gate(d)))  # eqs. 15-17
        torch.testing.assert_close(HCMA(12, None, None, dim=32).eval()(s, None, None).shape, torch.Size([3, 32]))
    # the spatial-token variant (A8) says so when CNN-F's map is down to one key at a small input
    m = tiny(hcma_tokens="spatial").eval()
    with torch.no_grad(), pytest.warns(RuntimeWarning, match="degenerate"):
        m(m.normalize(pixels(1, 32)))


def test_two_class_head_cross_entropy_and_probability():
    m = tiny().eval()
    x8 = pixels(4, 32)
    x = m.normalize(x8)
    y = torch.tensor([0, 1, 1, 0])
    with torch.no_grad():
        z = m.class_logits(x)
        out = m.compute_loss(x, y)
        torch.testing.assert_close(out.total, F.cross_entropy(z, y))
        torch.testing.assert_close(out.total, F.binary_cross_entropy_with_logits(z[:, 1] - z[:, 0], y.float()))
        torch.testing.assert_close(m.predict_proba(x8), torch.softmax(z, dim=1)[:, 1])
    assert set(out.terms) == {"ce"}
    assert set(tiny(head_outputs=1).compute_loss(x, y).terms) == {"bce"}


def test_sida_branch_has_no_parameters_and_a5_normalisation_is_configurable():
    m = tiny()
    assert [n for n, _ in m.named_parameters() if "sida" in n] == ["sida_norm.norm.weight", "sida_norm.norm.bias"]
    assert sum(p.numel() for p in tiny(sida_norm="batchnorm").sida_norm.parameters()) == 0
    norm = tiny(sida_norm="none", sida_log=["std"]).sida_norm
    d = torch.rand(2, 2304) * 100
    got = norm(d)
    s = sida_stat_slices()
    torch.testing.assert_close(got[:, s["std"]], torch.log1p(d[:, s["std"]]))
    torch.testing.assert_close(got[:, s["kurtosis"]], d[:, s["kurtosis"]])


def _fake_imagenet_xception(in_channels: int, **cnnf) -> dict[str, torch.Tensor]:
    """A state dict laid out like the PyTorch port of Keras' ImageNet Xception (stem, block1, fc, 2-D pointwise)."""
    torch.manual_seed(1)
    src = CNNF(in_channels, **cnnf)
    state = {}
    for k, v in src.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue  # old files predate it
        state["module." + k] = v.flatten(1) if k.endswith("pointwise.weight") else v
    state.update({"module.conv1.weight": torch.randn(32, 3, 3, 3), "module.bn1.weight": torch.ones(32),
                  "module.conv2.weight": torch.randn(64, 32, 3, 3), "module.block1.skip.weight": torch.randn(128, 64, 1, 1),
                  "module.fc.weight": torch.randn(1000, 2048), "module.fc.bias": torch.zeros(1000)})
    return state


def test_cnnf_loads_imagenet_xception_weights_by_the_key_map(tmp_path):
    from safetensors.torch import save_file

    from fakescope.zoo.checkpoint import load, save

    src = _fake_imagenet_xception(8, **TINY_CNNF)  # block2 fed by 8 channels, the model's SBCM gives 16
    path = tmp_path / "xception.safetensors"
    save_file({k: v.contiguous() for k, v in src.items()}, str(path))
    m = tiny(cnnf_weights=str(path))
    own = m.cnnf.state_dict()
    loaded = [k for k in own if not k.endswith("num_batches_tracked") and k not in REBUILT_KEYS]
    for k in loaded:
        torch.testing.assert_close(own[k], src["module." + k].reshape(own[k].shape), msg=k)
    for k in REBUILT_KEYS:  # rebuilt for the wider input: random init, new shape
        assert own[k].shape != src["module." + k].shape and 16 in own[k].shape[:2]
    assert "ImageNet" in m.cnnf_init
    # the checkpoint holds the loaded weights: loading it never reads the Xception file again
    ck = save(m, tmp_path / "ck")
    assert json.loads((ck / "config.json").read_text())["model"]["config"]["cnnf_weights"] is None
    path.unlink()
    back = load(ck)
    x = m.normalize(pixels(2, 32))
    with torch.no_grad():
        torch.testing.assert_close(back(x), m.eval()(x))


def test_cnnf_weights_that_do_not_fit_are_errors(tmp_path):
    from safetensors.torch import save_file

    wrong = _fake_imagenet_xception(8, widths=[16, 24, 32, 48, 96], middle_blocks=1)  # conv4 wider
    save_file({k: v.contiguous() for k, v in wrong.items()}, str(tmp_path / "wrong.safetensors"))
    with pytest.raises(CheckpointError, match=r"(?s)shape mismatches .*conv4\.pointwise\.weight"):
        tiny(cnnf_weights=str(tmp_path / "wrong.safetensors"))
    partial = {k: v for k, v in _fake_imagenet_xception(8, **TINY_CNNF).items() if "block3." not in k}
    save_file({k: v.contiguous() for k, v in partial.items()}, str(tmp_path / "partial.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing keys .*block3\."):
        tiny(cnnf_weights=str(tmp_path / "partial.safetensors"))
    with pytest.raises(WeightsUnavailableError, match="not found"):
        tiny(cnnf_weights=str(tmp_path / "absent.safetensors"))
    with pytest.raises(ValueError, match="use_local is false"):
        tiny(use_local=False, use_faae=False, cnnf_weights=str(tmp_path / "wrong.safetensors"))


def test_backbone_weights_load_from_a_local_file(tmp_path):
    from safetensors.torch import save_file

    src = tiny()
    state = {k: v.contiguous() for k, v in src.spatial.state_dict().items()}
    save_file(state, str(tmp_path / "b4.safetensors"))
    torch.manual_seed(123)  # a different random init everywhere else
    m = create_model(TINY, weights=str(tmp_path / "b4.safetensors"))
    for k, v in m.spatial.state_dict().items():
        torch.testing.assert_close(v, state[k], msg=k)
    assert not torch.equal(m.sbcm.convs[0].weight, src.sbcm.convs[0].weight)  # only the backbone was loaded
    save_file({k: v for k, v in state.items() if "top_conv" not in k}, str(tmp_path / "partial.safetensors"))
    with pytest.raises(CheckpointError, match="missing keys .*top_conv"):
        create_model(TINY, weights=str(tmp_path / "partial.safetensors"))


def test_pretrained_backbone_that_cannot_load_is_an_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match="google/efficientnet-b4"):
        create_model("sfcl_hcmf", pretrained=True, cnnf_weights="none")
    with pytest.raises(WeightsUnavailableError, match="not found"):
        create_model("sfcl_hcmf", weights="/nonexistent/efficientnet-b4.safetensors")


def test_bad_configs_and_inputs_are_clear_errors():
    with pytest.raises(ValidationError, match="use_faae needs the local branch"):
        tiny(use_local=False)
    with pytest.raises(ValidationError, match="same length"):
        tiny(sbcm_kernels=[7, 5])
    with pytest.raises(ValidationError, match="not divisible by hcma_heads"):
        tiny(hcma_heads=5)
    with pytest.raises(ValueError, match="faae_stride 64"):
        tiny(faae_stride=64)
    m = tiny()
    with pytest.raises(ValueError, match="at least 16x16"):
        m(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        m(torch.zeros(1, 1, 32, 32))


def test_grayscale_rgba_and_small_face_crops_reach_the_model(tmp_path):
    from fakescope.data.datasets import ImageDataset, Sample, collate
    from fakescope.data.transforms import Preprocessor

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8), mode="L").save(tmp_path / "gray.png")
    Image.fromarray(rng.integers(0, 256, (30, 40, 4), dtype=np.uint8), mode="RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "rgb.png")
    m = tiny().eval()
    samples = [Sample(str(tmp_path / n), i % 2) for i, n in enumerate(("gray.png", "rgba.png", "rgb.png"))]
    batch = collate([ImageDataset(samples, Preprocessor(m.preprocess))[i] for i in range(3)])
    assert not batch["skipped"]
    assert batch["image"].shape == (3, 3, 32, 32)  # every crop resized to the model's input (policy resize)
    gray = batch["image"][0]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])  # grey copied to R, G and B
    p = m.predict_proba(batch["image"])
    assert p.shape == (3,) and torch.isfinite(p).all()


def test_paper_tables_mark_reported_numbers_as_secondary_source():
    from fakescope.eval.tables import build_rows, get_table

    ffpp, cross = get_table("sfcl_ffpp"), get_table("sfcl_cross")
    assert ffpp.metrics == cross.metrics == ("acc", "auc", "video_auc")  # frame acc, frame AUC, video AUC
    row = ffpp.reference["SFCL-HCMF"]
    assert row == {"FF++ c23": (97.43, 99.58, None), "FF++ c40": (91.77, 94.21, None)}
    assert cross.reference["SFCL-HCMF"]["Celeb-DF v2"] == (None, 74.68, None)
    assert cross.reference["SFCL-HCMF"]["DFDC"] == (None, 73.71, None)
    assert ffpp.row_sources == {"SFCL-HCMF": "secondary"}
    assert cross.row_sources == {"SFCL-HCMF": "secondary", "EfficientNet-B4 (DeepfakeBench)": "secondary"}
    assert all("secondary source" in note for note in (*ffpp.footnotes.values(), *cross.footnotes.values())
               if "DeepfakeBench" not in note)
    assert "not the SFCL-HCMF paper's" in cross.footnotes[("EfficientNet-B4 (DeepfakeBench)", "Celeb-DF v2")]
    assert cross.column_of("celebdf_v2") == "Celeb-DF v2" and cross.column_of("dfdc") == "DFDC"
    assert get_table("sfcl_xmanip").reference == {}  # nothing recovered, nothing invented
    _, rows, notes = build_rows(cross, {"celebdf_v2": {"acc": 0.6, "auc": 0.7, "video_auc": 0.75}}, "sfcl_hcmf")
    assert rows[-1][:7] == ["sfcl_hcmf (ours)", "n/a", "n/a", "n/a", "60.0", "70.0", "75.0"]
    assert rows[0][0] == "SFCL-HCMF (secondary)" and rows[0][5].startswith("74.68[")  # printed with its own decimals
    assert rows[1][0] == "EfficientNet-B4 (DeepfakeBench) (secondary)"
    assert any("secondary source" in n for n in notes)


def _ffpp_like_list(root, methods=("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")):
    """A CSV list laid out like FF++ (real 'youtube' videos and four manipulations, three splits), tiny PNGs."""
    import csv

    rng = np.random.default_rng(0)
    rows = []
    for split in ("train", "val", "test"):
        for method, label in (("youtube", 0), *((m, 1) for m in methods)):
            for v in range(2):
                for f in range(2):
                    path = root / "img" / f"{method}_{split}_{v}_{f}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(path)
                    rows.append({"path": str(path), "label": label, "split": split, "method": method,
                                 "video_id": f"{method}_{split}_{v}", "frame_index": f})
    with open(root / "list.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root / "list.csv"


def test_cross_manipulation_configs_read_the_sets_that_prepare_writes(tmp_path):
    from fakescope.config import DataConfig
    from fakescope.data.datasets import load_samples
    from fakescope.prepare import prepare
    from fakescope.eval.tables import get_table

    prepare("csv", _ffpp_like_list(tmp_path), tmp_path / "data" / "ffpp_c23", echo=lambda m: None)
    data = DataConfig(root=str(tmp_path / "data"))
    for slug, method in (("deepfakes", "Deepfakes"), ("face2face", "Face2Face"), ("faceswap", "FaceSwap"),
                         ("neuraltextures", "NeuralTextures")):
        cfg = load_config(f"sfcl_hcmf/xmanip_{slug}")
        for part in ("train", "val"):
            (src,) = [r for s in getattr(cfg.data, part) for r in data.resolve(s)]
            samples = load_samples(src.path, src.split)
            assert {s.method for s in samples if s.label == 1} == {method}, (slug, part)  # one manipulation
            assert {s.label for s in samples} == {0, 1} and {s.extra["split"] for s in samples} == {part}
        tests = {src.name: load_samples(src.path, src.split) for s in cfg.data.test for src in data.resolve(s)}
        assert list(tests) == ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"]
        for name, samples in tests.items():
            assert {s.method for s in samples if s.label == 1} == {name} and {s.label for s in samples} == {0, 1}
            assert get_table("sfcl_xmanip").column_of(name) == name  # the grid's columns find these sets


def _fake_run(folder, train_name, sets, model="sfcl_hcmf"):
    import yaml

    (folder / "eval").mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"data": {"train": [{"path": f"x/{train_name}.csv",
                                                                             "name": None, "split": "train"}]}}))
    (folder / "eval" / "metrics.json").write_text(json.dumps({"model": model, "sets": sets}))
    return folder


def test_cross_manipulation_grid_and_tables_from_run_folders(tmp_path, capsys):
    from fakescope.eval import paper_sfcl

    manips = paper_sfcl.MANIPULATIONS
    runs = [_fake_run(tmp_path / f"run{i}", trained, {m: {"auc": 0.5 + 0.1 * j + (0.05 if i == j else 0.0)}
                                                      for j, m in enumerate(manips)})
            for i, trained in enumerate(manips)]
    header, rows, notes = paper_sfcl.xmanip_grid(runs)
    assert header[1:5] == list(manips) and header[-1] == "mean unseen"
    assert [r[0] for r in rows] == list(manips)  # one row per training manipulation, from config.yaml
    assert rows[1][1:5] == ["50.0", "65.0 *", "70.0", "80.0"]  # the diagonal (intra) is marked
    assert rows[1][5] == f"{100 * (0.5 + 0.7 + 0.8) / 3:.1f}"  # mean over the three unseen manipulations
    assert "no reference row" in notes[0]
    assert paper_sfcl.main(["xmanip", *map(str, runs), "--out", str(tmp_path / "t")]) == 0
    assert (tmp_path / "t" / "table_sfcl_xmanip_grid.md").read_text() in capsys.readouterr().out
    # the FF++ tables merge the c23 run (intra + cross-dataset) and the c40 run
    c23 = _fake_run(tmp_path / "c23", "ffpp_c23_train", {n: {"acc": 0.9, "auc": 0.95, "video_auc": 0.97}
                                                         for n in ("ffpp_c23", "celebdf_v2", "dfdc")})
    c40 = _fake_run(tmp_path / "c40", "ffpp_c40_train", {"ffpp_c40": {"acc": 0.8, "auc": 0.85, "video_auc": 0.9}})
    ffpp_md, cross_md = (p.read_text() for p in paper_sfcl.write_run_tables([c23, c40], tmp_path / "t"))
    assert "| sfcl_hcmf (ours) | 90.0 | 95.0 | 97.0 | 80.0 | 85.0 | 90.0 | 85.0 | 90.0 | 93.5 |" in ffpp_md
    assert "not evaluated here" not in cross_md and "| sfcl_hcmf (ours) | 90.0 | 95.0 | 97.0 | 90.0 |" in cross_md
    with pytest.raises(DataError, match="no eval/metrics.json"):
        paper_sfcl.run_metrics(tmp_path / "absent")


def test_tiny_sfcl_hcmf_learns_the_synthetic_benchmark(tiny_synth):
    """The tiny config, trained on the built-in benchmark's tconv fakes through the project's data path
    (folder scan, preprocessing, flips), separates held-out tconv test images (AUC >= 0.9)."""
    import random

    from sklearn.metrics import roc_auc_score
    from torch.utils.data import DataLoader

    from fakescope.config import AugmentConfig
    from fakescope.data.datasets import build_dataset, collate, load_samples

    m = tiny()
    random.seed(0)
    train_ds = build_dataset(load_samples(str(tiny_synth / "train")), m.preprocess, "image", train=True,
                             augment=AugmentConfig())
    test_ds = build_dataset(load_samples(str(tiny_synth / "test" / "tconv")), m.preprocess, "image", train=False)
    loader = DataLoader(train_ds, batch_size=16, shuffle=True, collate_fn=collate,
                        generator=torch.Generator().manual_seed(0))
    epochs = 8
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * len(loader))
    for _ in range(epochs):
        m.train()
        for batch in loader:
            loss = m.compute_loss(m.normalize(batch["image"]), batch["label"]).total
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    test = collate([test_ds[i] for i in range(len(test_ds))])
    assert not test["skipped"] and set(test["label"].tolist()) == {0, 1}
    with torch.no_grad():
        scores = m.eval()(m.normalize(test["image"]))
    auc = roc_auc_score(test["label"].numpy(), scores.numpy())
    assert auc >= 0.9, auc


@pytest.mark.slow
def test_tiny_sfcl_hcmf_trains_through_the_engine_and_reports_every_generator(tmp_path, tiny_synth):
    from fakescope.train.engine import train

    cfg = tiny_experiment(tmp_path, tiny_synth, "trainer.max_epochs=8", "optim.lr=1e-2",
                          "trainer.early_stopping.enabled=false", model=TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train(cfg, echo=lambda m: None)
    ev = json.loads((result.run_dir / "eval" / "metrics.json").read_text())
    assert ev["model"] == TINY
    assert ev["sets"]["tconv"]["auc"] >= 0.9, ev["sets"]["tconv"]
    table = (result.run_dir / "eval" / "metrics.md").read_text()
    for family in ("tconv", "nearest", "bilinear", "pixelshuffle", "diffusion", "mean"):
        assert family in table


@pytest.mark.parametrize("d_v", [5, 8, 12])
def test_faae_attention_on_the_fused_kernel_equals_the_unfused_definition(d_v):
    from fakescope.models.sfcl_hcmf.fusion import attend

    gen = torch.Generator().manual_seed(d_v)
    q, k = (torch.randn(2, 50, 8, generator=gen) for _ in range(2))
    v = torch.randn(2, 50, d_v, generator=gen)
    want = torch.softmax(q @ k.transpose(1, 2) / 8 ** 0.5, dim=-1) @ v  # eq. (12), written out
    got = attend(q, k.transpose(1, 2).contiguous().transpose(1, 2), v)  # a strided key, as FAAE's transpose makes
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5, rtol=0)
    # and a channels-last input to the model gives the contiguous one's logits
    model = create_model("sfcl_hcmf_tiny").eval()
    x = torch.rand(2, 3, 32, 32, generator=gen)
    with torch.no_grad():
        assert torch.allclose(model(x.contiguous(memory_format=torch.channels_last)), model(x), atol=1e-5)
