"""Shared fixtures: tiny synthetic data, made by the tests themselves (no downloads)."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# batch sizes that `detect --batch-size auto` measures are cached per machine: the suite's go to a folder of its own
# (never the user's home, and no test's batch hangs on what an earlier run measured)
os.environ["FAKESCOPE_CACHE"] = tempfile.mkdtemp(prefix="fakescope-test-cache-")

SHARED_FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"

# Face tests need the MTCNN weights that the facenet-pytorch wheel ships (`make install` installs it). Without
# them they skip with MTCNN_MISSING as the reason, except where FAKESCOPE_REQUIRE_FACES is set (.ci/run sets it):
# there every such skip is a failure (pytest_runtest_makereport below), as FAKESCOPE_REQUIRE_BROWSER does for the
# web page's browser test, so CI cannot pass without running them.
REQUIRE_FACES = "FAKESCOPE_REQUIRE_FACES"
MTCNN_MISSING = "the MTCNN face detector weights are missing: pip install --no-deps facenet-pytorch==2.6.0"


def _mtcnn_weights_present() -> bool:
    import importlib.util

    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return False
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    return all((data / f"{net}.pt").is_file() for net in ("pnet", "rnet", "onet"))


HAVE_MTCNN = _mtcnn_weights_present()
needs_mtcnn = pytest.mark.skipif(not HAVE_MTCNN, reason=MTCNN_MISSING)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With FAKESCOPE_REQUIRE_FACES set, a test skipped for want of the face detector fails instead."""
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and os.environ.get(REQUIRE_FACES)) or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if "facenet-pytorch" in reason:
        report.outcome = "failed"
        report.longrepr = f"{reason} ({REQUIRE_FACES} is set: face tests may not skip)"


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """A test that changes torch's thread count gives it back, so no test's outcome hangs on the ones before it
    (the suite is also run with OMP_NUM_THREADS=1 and 2: make test-threads)."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def pytest_addoption(parser) -> None:
    parser.addoption("--reliability-table", metavar="PATH", default=None,
                     help="write the bad-input corpus outcomes (tests/reliability) as a Markdown table to PATH, "
                          "e.g. docs/reliability.md")


def write_images(folder: Path, n: int, size: int = 32, seed: int = 0, kind: str = "noise") -> list[Path]:
    """``n`` small PNGs; ``kind='smooth'`` gives low-pass images, ``'noise'`` white-noise ones."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        if kind == "smooth":
            base = rng.uniform(0, 255, (size // 8, size // 8, 3))
            arr = np.asarray(Image.fromarray(base.astype(np.uint8)).resize((size, size), Image.BILINEAR))
        else:
            arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        p = folder / f"{i:04d}.png"
        Image.fromarray(arr).save(p)
        paths.append(p)
    return paths


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory) -> Path:
    """A very small built-in benchmark (32 px), generated once per test session."""
    from fakescope.synth import SynthConfig, generate

    out = tmp_path_factory.mktemp("synth") / "bench"
    cfg = SynthConfig(out=str(out), seed=1, size=32, train_per_class=48, val_per_class=24, test_per_class=16,
                      videos_per_class={"train": 4, "val": 2, "test": 2}, frames=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        generate(cfg, log=lambda m: None)
    return out


def tiny_experiment(tmp_path: Path, data_root: Path, *extra: str, model: str = "simple_cnn_tiny"):
    """A config for a fast training run on ``data_root`` (the tiny synthetic benchmark)."""
    from fakescope.config import load_config

    return load_config(data={
        "name": "tiny", "output_dir": str(tmp_path / "runs"), "seed": 0,
        "model": {"name": model},
        "data": {"root": str(data_root), "train": "train", "val": "val", "test": "test/*",
                 "batch_size": 16, "num_workers": 0},
        "optim": {"name": "adamw", "lr": 3e-3},
        "trainer": {"max_epochs": 2, "progress_bar": False, "log_every_n_steps": 1,
                    "early_stopping": {"patience": 5}},
    }, overrides=list(extra))
