from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from fakescope.errors import ConfigError, WeightsUnavailableError
from fakescope.models import (
    DetectorModel,
    LossOutput,
    PreprocessConfig,
    create_model,
    list_models,
    model_entry,
    resolve_model_config,
)

TINY = [n for n in list_models() if n.endswith("_tiny")]


def test_list_models_filters():
    names = list_models()
    assert names == sorted(names)
    for expected in ("simple_cnn", "cnndetection_resnet50", "univfd_clip", "efficientnet_b4"):
        assert expected in names
    assert list_models("simple_cnn*") == ["simple_cnn", "simple_cnn_tiny"]
    assert set(list_models(modality="image")) <= set(names)
    assert list_models(modality="clip") == [n for n in names if model_entry(n).modality == "clip"]


def test_create_model_applies_overrides_and_variants():
    m = create_model("simple_cnn", widths=[4, 8], preprocess={"input_size": 48})
    assert m.cfg.widths == [4, 8]
    assert m.preprocess.input_size == 48
    assert m.preprocess.policy == "crop"          # untouched nested default kept
    assert m.registry_name == "simple_cnn"
    tiny = create_model("simple_cnn_tiny")
    assert tiny.cfg.widths == [8, 16] and tiny.preprocess.input_size == 32
    # a variant's defaults can be overridden again
    assert create_model("simple_cnn_tiny", widths=[2]).cfg.widths == [2]


def test_unknown_names_and_keys():
    with pytest.raises(KeyError, match="did you mean 'simple_cnn'"):
        create_model("simple_cn")
    with pytest.raises(ValidationError, match="widht"):
        create_model("simple_cnn", widht=[3])
    with pytest.raises(ValidationError):
        create_model("simple_cnn", preprocess={"input_size": 2})


@pytest.mark.parametrize("name", TINY)
def test_every_tiny_model_follows_the_interface(name):
    torch.manual_seed(0)
    m = create_model(name)
    assert isinstance(m, DetectorModel)
    pp = m.preprocess
    assert isinstance(pp, PreprocessConfig) and pp.input_size > 0 and len(pp.mean) == 3
    assert m.modality in ("image", "clip")
    s = pp.input_size
    shape = (3, 3, s, s) if m.modality == "image" else (3, pp.clip_len, 3, s, s)
    x = torch.randint(0, 256, shape, dtype=torch.uint8)
    m.train()
    logits = m(m.normalize(x))
    assert logits.shape == (3,) and torch.isfinite(logits).all()
    out = m.compute_loss(m.normalize(x), torch.tensor([0, 1, 1]))
    assert isinstance(out, LossOutput) and out.total.ndim == 0 and torch.isfinite(out.total)
    assert out.terms and all(torch.isfinite(v) for v in out.terms.values())
    out.total.backward()
    grads = [p.grad for p in m.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads), "every trainable parameter gets a gradient"
    p = m.eval().predict_proba(x)
    assert p.shape == (3,) and ((p >= 0) & (p <= 1)).all()
    d = m.describe()
    assert d["name"] == name and d["config"]["preprocess"]["input_size"] == s


def test_normalize_matches_the_declared_mean_and_std():
    m = create_model("simple_cnn_tiny", preprocess={"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)})
    x = torch.full((1, 3, 4, 4), 255, dtype=torch.uint8)
    assert torch.allclose(m.normalize(x), torch.full((1, 3, 4, 4), 2.0))
    clip = torch.zeros((2, 5, 3, 4, 4), dtype=torch.uint8)
    assert torch.allclose(m.normalize(clip), torch.full((2, 5, 3, 4, 4), -2.0))
    assert torch.allclose(m.normalize(torch.ones(1, 3, 2, 2)), torch.full((1, 3, 2, 2), 2.0))


def test_frozen_backbone_gets_no_gradient():
    m = create_model("univfd_tiny")
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert trainable == {"head.weight", "head.bias"}
    m.train()
    assert not m.backbone.training  # frozen backbone stays in eval mode


def test_pretrained_weights_that_cannot_load_are_an_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match="microsoft/resnet-50"):
        create_model("cnndetection_resnet50", pretrained=True)
    with pytest.raises(WeightsUnavailableError, match="not found"):
        create_model("cnndetection_resnet50", weights="/nonexistent/weights.safetensors")
    with pytest.raises(ConfigError, match="overrides"):
        create_model("cnndetection_tiny", pretrained=True)


def test_local_backbone_weights_file_loads_strictly(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    src = create_model("cnndetection_tiny")
    f = tmp_path / "backbone.safetensors"
    save_file({k: v.contiguous() for k, v in src.backbone.state_dict().items()}, str(f))
    torch.manual_seed(2)
    dst = create_model("cnndetection_tiny", weights=str(f))
    for k, v in src.backbone.state_dict().items():
        assert torch.equal(v, dst.backbone.state_dict()[k]), k
    bad = dict(src.backbone.state_dict())
    bad.pop(next(iter(bad)))
    bad["extra.weight"] = torch.zeros(1)
    save_file({k: v.contiguous() for k, v in bad.items()}, str(tmp_path / "bad.safetensors"))
    from fakescope.errors import CheckpointError

    with pytest.raises(CheckpointError, match="(?s)missing keys .*unexpected keys"):
        create_model("cnndetection_tiny", weights=str(tmp_path / "bad.safetensors"))


def test_resolve_model_config_returns_typed_config():
    cfg = resolve_model_config("efficientnet_b4")
    assert cfg.backbone == "google/efficientnet-b4" and cfg.preprocess.input_size == 380
    assert cfg.preprocess.policy == "resize"


def test_the_old_name_of_the_model_base_class_still_works_with_a_deprecation_warning():
    import fakescope
    import fakescope.models as fm
    from fakescope.inference import Detector as InferenceDetector

    with pytest.warns(DeprecationWarning, match="DetectorModel"):
        assert fm.Detector is DetectorModel
    from fakescope.zoo.pretrained import load_pretrained

    # fakescope.load takes a checkpoint folder, a pretrained name or a Hub id
    assert fakescope.Detector is InferenceDetector and fakescope.load is load_pretrained
    assert fakescope.models.create_model is fm.create_model


def test_default_preprocess_is_what_create_model_uses_and_needs_no_required_fields():
    from fakescope.models import default_preprocess, list_models, resolve_model_config

    for name in list_models():
        if name == "hf_classifier":  # needs its hub name: the listing still shows it
            assert default_preprocess(name).input_size == 224
            continue
        assert default_preprocess(name) == resolve_model_config(name).preprocess, name
    assert default_preprocess("sfcl_hcmf").face is not None  # a face model gets the face stage
    assert default_preprocess("simple_cnn").face is None
