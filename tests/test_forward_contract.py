"""The detector contract: ``forward(x) == forward_head(forward_features(x))`` for every tiny registered model."""

from __future__ import annotations

import pytest
import torch

from fakescope.models import DetectorConfig, DetectorModel, create_model, list_models

TINY = [n for n in list_models() if n.endswith("_tiny")]
B = 2


def _input(model: DetectorModel) -> torch.Tensor:
    pp = model.preprocess
    s = pp.input_size
    shape = (B, 3, s, s) if model.modality == "image" else (B, pp.clip_len, 3, s, s)
    return model.normalize(torch.rand(*shape, generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("name", TINY)
def test_forward_is_head_of_features(name):
    torch.manual_seed(0)
    model = create_model(name, pretrained=False).eval()
    assert type(model).forward is DetectorModel.forward, f"{name} overrides forward"
    x = _input(model)
    with torch.no_grad():
        features = model.forward_features(x)
        assert isinstance(features, torch.Tensor)
        assert features.shape[0] == B
        logits = model.forward_head(features)
        assert logits.shape == (B,)
        assert torch.equal(logits, model(x))


def test_missing_methods_raise_naming_the_class():
    class Bare(DetectorModel):
        """Implements neither forward_features nor forward_head."""

    model = Bare(DetectorConfig())
    x = torch.zeros(1, 3, 8, 8)
    with pytest.raises(NotImplementedError, match="Bare does not implement forward_features"):
        model(x)
    with pytest.raises(NotImplementedError, match="Bare does not implement forward_features"):
        model.forward_features(x)
    with pytest.raises(NotImplementedError, match="Bare does not implement forward_head"):
        model.forward_head(torch.zeros(1, 4))
