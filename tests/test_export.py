"""ONNX export of image detectors: parity with PyTorch, the onnxruntime backend of detect, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed: pip install 'fakescope[onnx]'")
pytest.importorskip("onnxscript", reason="the onnx extra is not installed: pip install 'fakescope[onnx]'")

from test_detect import make_checkpoint, make_media  # noqa: E402

from fakescope.zoo.checkpoint import load  # noqa: E402
from fakescope.cli import main  # noqa: E402
from fakescope.inference import Detector  # noqa: E402
from fakescope.errors import CheckpointError, ConfigError  # noqa: E402
from fakescope.export import PARITY_TOLERANCE, export_onnx, parity  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    ck = make_checkpoint(tmp_path_factory.mktemp("onnx") / "simple", "simple_cnn_tiny")
    return ck, export_onnx(ck)


def test_export_writes_the_graph_and_its_config_and_passes_parity(exported):
    ck, result = exported
    assert result.path == ck / "model.onnx" and result.path.stat().st_size > 0
    assert not (ck / "model.onnx.data").exists()  # weights inside the one file
    meta = json.loads(result.config_path.read_text())
    assert meta["model"]["name"] == "simple_cnn_tiny" and meta["model"]["config"]["preprocess"]["input_size"] == 32
    assert meta["export"]["parity_max_abs_diff"] == result.max_abs_diff <= PARITY_TOLERANCE
    assert len(meta["export"]["weights_sha256"]) == 64


def test_parity_check_detects_a_different_model(exported, tmp_path):
    ck, result = exported
    other = load(make_checkpoint(tmp_path / "other", "simple_cnn_tiny", seed=123))
    assert parity(result.path, other, 32, (2,), seed=5) > PARITY_TOLERANCE
    assert parity(result.path, load(ck), 32, (1, 3), seed=5) <= PARITY_TOLERANCE


def test_onnx_backend_matches_pytorch_on_images_and_videos(exported, tmp_path):
    ck, result = exported
    media = make_media(tmp_path / "media")
    inputs = [media["noise"], media["face"], media["video"], media["truncated"]]
    torch_recs = list(Detector.from_pretrained(ck, device="cpu", num_frames=4).predict_many(inputs))
    onnx_recs = list(Detector.from_pretrained(ck, backend="onnx", device="cpu", num_frames=4).predict_many(inputs))
    file_recs = list(Detector.from_pretrained(result.path, device="cpu", num_frames=4).predict_many(inputs))
    for t, o, f in zip(torch_recs, onnx_recs, file_recs):
        assert o["backend"] == f["backend"] == "onnx" and t["backend"] == "torch"
        assert o["model_version"] == t["model_version"]  # both name the same weights
        if t["error"]:
            assert o["error"] and f["error"]
            continue
        assert o["score"] == pytest.approx(t["score"], abs=PARITY_TOLERANCE)
        assert f["score"] == pytest.approx(t["score"], abs=PARITY_TOLERANCE)
    assert np.allclose(onnx_recs[2]["frame_scores"], torch_recs[2]["frame_scores"], atol=PARITY_TOLERANCE)


def test_onnx_lanes_share_one_session_of_one_thread_a_call(exported, tmp_path):
    ck, _ = exported
    media = make_media(tmp_path / "media")
    images = [media["noise"], media["face"]] * 3
    alone = [r["score"] for r in Detector.from_pretrained(ck, backend="onnx", device="cpu").predict_many(images)]
    det = Detector.from_pretrained(ck, backend="onnx", device="cpu", lanes=2, batch_size=2)
    model, threads_seen = det.model, set()
    scores = type(model).predict_proba

    def spy(pixels):  # the threads of the session that scores each batch
        threads_seen.add(model.session.get_session_options().intra_op_num_threads)
        return scores(model, pixels)

    model.predict_proba = spy
    in_lanes = [r["score"] for r in det.predict_many(images)]
    assert in_lanes == pytest.approx(alone, abs=1e-6) and len(set(in_lanes)) > 1
    assert threads_seen == {1}  # one thread a call while the lanes run
    assert model.session.get_session_options().intra_op_num_threads == 0  # onnxruntime's default again after


def test_stale_export_and_clip_models_are_refused(tmp_path):
    ck = make_checkpoint(tmp_path / "ck", "simple_cnn_tiny")
    export_onnx(ck)
    make_checkpoint(tmp_path / "ck", "simple_cnn_tiny", seed=7)  # new weights, old model.onnx
    with pytest.raises(CheckpointError, match="not exported from the weights"):
        Detector.from_pretrained(ck, backend="onnx")
    with pytest.raises(ConfigError, match="image detectors"):
        export_onnx(make_checkpoint(tmp_path / "sdr", "sdr_tiny"))
    with pytest.raises(CheckpointError, match="ONNX file not found"):
        Detector.from_pretrained(tmp_path / "missing.onnx")


def test_decompositions_compute_what_the_operators_compute():
    """The rewrites applied before export give PyTorch's own results (so parity does not rest on luck)."""
    import torch.nn.functional as F

    from fakescope.export import _adaptive_avg_pool, _attention, _onednn_linear

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 8, 5, 7, generator=g)
    for size in ((3, 5, 7), (2, 4, 4), (8, 1, 3)):
        assert torch.allclose(_adaptive_avg_pool(x, size), F.adaptive_avg_pool3d(x, size), atol=1e-6), size
    q, k, v = (torch.randn(3, 6, 16, generator=g) for _ in range(3))
    assert torch.allclose(_attention(q, k, v), F.scaled_dot_product_attention(q, k, v), atol=1e-6)
    assert torch.allclose(_attention(q, k, v, is_causal=True),
                          F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=1e-6)
    w, b = torch.randn(5, 16, generator=g), torch.randn(5, generator=g)
    assert torch.allclose(_onednn_linear(q, w, b), F.linear(q, w, b))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sfcl_hcmf_tiny", "fssnet_tiny"])
def test_paper_image_detectors_export_with_parity(name, tmp_path):
    """SFCL-HCMF (3-D band pooling, token attention) and FSSNet (FFT band masks) export and match PyTorch."""
    ck = make_checkpoint(tmp_path / name, name)
    result = export_onnx(ck, tmp_path / "out" / f"{name}.onnx", check_batches=(1, 3))
    assert result.max_abs_diff <= PARITY_TOLERANCE
    assert (tmp_path / "out" / f"{name}.json").is_file()


def test_cli_export_prints_the_parity_figure(tmp_path, capsys):
    ck = make_checkpoint(tmp_path / "ck", "npr_tiny")
    assert main(["export", str(ck), "--format", "onnx", "-o", str(tmp_path / "npr.onnx")]) == 0
    out = capsys.readouterr().out
    assert "max |diff| =" in out and str(tmp_path / "npr.onnx") in out
    assert main(["export", str(tmp_path / "nowhere")]) == 2
