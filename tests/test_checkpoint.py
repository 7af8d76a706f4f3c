from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import fakescope
from fakescope.zoo.checkpoint import load, save
from fakescope.errors import CheckpointError
from fakescope.models import create_model


def test_round_trip_keeps_weights_config_and_outputs(tmp_path):
    torch.manual_seed(0)
    model = create_model("simple_cnn_tiny", dropout=0.0).eval()
    path = save(model, tmp_path / "ck", training={"experiment": "t"}, validation={"auc": 0.9})
    assert {p.name for p in path.iterdir()} == {"model.safetensors", "config.json", "README.md"}
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["model"]["name"] == "simple_cnn_tiny"
    assert cfg["labels"] == {"0": "real", "1": "fake"}
    pp = cfg["model"]["config"]["preprocess"]  # the preprocessing is stored once, face stage included
    assert pp["input_size"] == 32 and pp["mean"] == list(model.preprocess.mean) and pp["face"] is None
    assert "preprocess" not in cfg
    assert cfg["validation"] == {"auc": 0.9} and cfg["training"]["experiment"] == "t"
    assert cfg["fakescope_version"] == fakescope.__version__
    card = (path / "README.md").read_text()
    assert "simple_cnn_tiny" in card and "fake" in card and "32 px" in card

    loaded = fakescope.load(path)
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(model(x), loaded(x))
    assert not loaded.training


def test_load_refuses_mismatched_weights(tmp_path):
    path = save(create_model("simple_cnn_tiny"), tmp_path / "ck")
    state = load_file(str(path / "model.safetensors"))
    first = sorted(state)[0]
    state.pop(first)
    state["extra.weight"] = torch.zeros(3)
    save_file(state, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError) as exc:
        load(path)
    msg = str(exc.value)
    assert "missing keys (1)" in msg and first in msg and "unexpected keys (1): extra.weight" in msg


def test_load_refuses_wrong_shapes(tmp_path):
    path = save(create_model("simple_cnn_tiny"), tmp_path / "ck")
    cfg = json.loads((path / "config.json").read_text())
    cfg["model"]["config"]["widths"] = [8, 24]  # the config now describes another network
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load(path)


def test_incomplete_or_missing_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load(tmp_path / "none")
    path = save(create_model("simple_cnn_tiny"), tmp_path / "ck")
    (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        load(path)
    bad = save(create_model("simple_cnn_tiny"), tmp_path / "ck2")
    (bad / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load(bad)


def test_load_never_fetches_backbone_weights(tmp_path, monkeypatch):
    """A checkpoint of a model trained from hub weights loads offline: weights come from the file."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = create_model("cnndetection_tiny")
    path = save(model, tmp_path / "ck")
    cfg = json.loads((path / "config.json").read_text())
    cfg["model"]["config"]["pretrained"] = True  # as it would be after training from hub weights
    (path / "config.json").write_text(json.dumps(cfg))
    loaded = load(path)
    x = torch.rand(1, 3, 32, 32)
    assert torch.allclose(model.eval()(x), loaded(x))


def test_source_never_uses_unsafe_torch_load():
    src = Path(fakescope.__file__).parent
    for f in src.rglob("*.py"):
        for line in f.read_text().splitlines():
            if re.search(r"torch\.load\(", line):
                assert "weights_only=True" in line, f"{f}: {line.strip()}"
