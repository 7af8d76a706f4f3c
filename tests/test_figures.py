"""Figures quoted in README.md and docs/ that a test can check cheaply, checked against the code that makes them.

Each test names the text it guards. The FSSNet figures are those of ``python benchmarks/fssnet_roofline.py`` (the
command given in docs/fssnet.md); here the paper-sized model is built without memory or download (random init on
the meta device, then fake tensors for the FLOP count), so the test takes seconds, not the benchmark's minutes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
from pathlib import Path

import pytest

from conftest import needs_mtcnn

REPO = Path(__file__).resolve().parents[1]


def _roofline_benchmark():
    """``benchmarks/fssnet_roofline.py`` as a module (benchmarks/ is not a package): its FLOP counter."""
    spec = importlib.util.spec_from_file_location("fssnet_roofline", REPO / "benchmarks" / "fssnet_roofline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fssnet_figures(monkeypatch_module) -> dict:
    """The paper-sized FSSNet of the recipe ``configs/fssnet/progan.yaml`` (two DINOv2 ViT-B/14 at 252 px, SBCA
    with 4 heads, AFF; the last two blocks of each backbone trainable), with ``pretrained: false``: the same
    architecture as the hub's ``facebook/dinov2-base``, which is not downloaded. Parameters are counted on the meta
    device; FLOPs by the benchmark's own counter, on fake tensors (shapes only, no memory)."""
    monkeypatch_module.setenv("HF_HUB_OFFLINE", "1")
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    from fakescope.config import load_config
    from fakescope.models import create_model

    section = load_config("fssnet/progan", overrides=["model.pretrained=false"]).model.model_dump()
    name = section.pop("name")
    with torch.device("meta"):
        model = create_model(name, **section).eval()
    figures = {
        "total": model.num_parameters(),
        "trainable": model.num_parameters(trainable_only=True),
        "modules": {n: (sum(p.numel() for p in m.parameters()),
                        sum(p.numel() for p in m.parameters() if p.requires_grad))
                    for n, m in model.named_children() if any(True for _ in m.parameters())},
        # what train_final_norm: true would add: each backbone's final LayerNorm
        "final_norms": sum(p.numel() for s in ("rgb", "freq")
                           for p in getattr(model, f"backbone_{s}").layernorm.parameters()),
        "input_size": model.preprocess.input_size,
    }
    bench = _roofline_benchmark()
    with FakeTensorMode(allow_non_fake_inputs=True):
        model.to_empty(device="cpu")  # fake CPU tensors: the CPU kernels the benchmark counts, no memory
        x = torch.empty(1, 3, figures["input_size"], figures["input_size"])
        figures["flops"], figures["module_flops"] = bench.count_flops(model, x, contextlib.nullcontext)
    return figures


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_fssnet_parameters_as_the_readme_and_docs_print_them(fssnet_figures):
    """README.md, FSSNet: "319.5 M parameters (174.7 M trainable)"; docs/fssnet.md, Size and speed: the
    per-module table and "174,721,685" with ``train_final_norm: true``."""
    f = fssnet_figures
    assert f["input_size"] == 252
    assert (f"{f['total'] / 1e6:.1f}", f"{f['trainable'] / 1e6:.1f}") == ("319.5", "174.7")
    assert f["modules"] == {
        "backbone_rgb": (86_580_480, 14_178_816),
        "backbone_freq": (86_580_480, 14_178_816),
        "sbca": (146_285_568, 146_285_568),
        "aff": (74_644, 74_644),
        "head": (769, 769),
    }
    assert (f["total"], f["trainable"]) == (319_521_941, 174_718_613)
    assert f["trainable"] + f["final_norms"] == 174_721_685


def test_fssnet_gflop_per_252px_image_as_the_readme_and_docs_print_them(fssnet_figures):
    """README.md, FSSNet: "214 GFLOP per 252 px image"; docs/fssnet.md: "214.2 GFLOP, of which each backbone 59.4
    (27.7%) and SBCA 95.4 (44.5%)".

    Counted as ``benchmarks/fssnet_roofline.py`` counts them (its ``count_flops``: torch's ``FlopCounterMode`` plus
    the CPU flash-attention and oneDNN linear kernels it registers), for one image: matmuls, convolutions and
    attention, with a multiply-add counted as 2 FLOP (``2 * M * N * K`` per matmul, ``2 * C_in * C_out * k * k``
    per convolution output position); the FFT, norms and element-wise ops are not counted."""
    f = fssnet_figures
    per = f["module_flops"]
    assert f"{f['flops'] / 1e9:.0f}" == "214"
    assert f"{f['flops'] / 1e9:.1f}" == "214.2"
    for name, gflop, share in (("backbone_rgb", "59.4", "27.7"), ("backbone_freq", "59.4", "27.7"),
                               ("sbca", "95.4", "44.5")):
        assert (f"{per[name] / 1e9:.1f}", f"{100 * per[name] / f['flops']:.1f}") == (gflop, share), name
    assert per.get("aff", 0) + per.get("head", 0) < 1e-3 * f["flops"]  # "negligible"


@needs_mtcnn
def test_face_detector_weights_are_2_mb_and_nothing_needs_dlib():
    """README.md, Why this stack: MTCNN "with the weights that the facenet-pytorch wheel ships (2 MB; no download
    at run time, no dlib build)"."""
    spec = importlib.util.find_spec("facenet_pytorch")
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    size = sum((data / f"{net}.pt").stat().st_size for net in ("pnet", "rnet", "onet"))
    assert f"{size / 1e6:.0f}" == "2", size
    # no requirement of the package or of an extra is dlib (a quoted "dlib...", "dlib-bin..." in pyproject.toml);
    # the optional `--detector dlib` backend asks for the prebuilt dlib-bin wheel itself (docs/data.md)
    assert not re.findall(r'"\s*dlib[^"]*"', (REPO / "pyproject.toml").read_text(), flags=re.IGNORECASE)
