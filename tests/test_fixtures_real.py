"""Real media (research-use fixtures beside the repository): run only where ../shared/fixtures exists."""

from __future__ import annotations

import pytest
import torch

from conftest import SHARED_FIXTURES
from fakescope.data.datasets import ImageDataset, collate, scan_folder
from fakescope.data.transforms import Preprocessor
from fakescope.models import PreprocessConfig

FACES = SHARED_FIXTURES / "real-fake-faces-160"
pytestmark = pytest.mark.skipif(not FACES.is_dir(), reason=f"real fixtures not present ({FACES})")


def test_real_face_folder_scans_and_decodes():
    samples = scan_folder(FACES)
    assert sum(s.label == 0 for s in samples) == 1081
    assert sum(s.label == 1 for s in samples) == 960
    ds = ImageDataset(samples, Preprocessor(PreprocessConfig(input_size=128, policy="resize")))
    batch = collate([ds[i] for i in range(0, len(ds), 20)])
    assert not batch["skipped"]
    assert batch["image"].shape[1:] == (3, 128, 128) and batch["image"].dtype == torch.uint8
    assert batch["image"].float().std() > 20  # real photographs, not blank decodes


def test_evaluate_a_checkpoint_on_real_faces(tmp_path):
    from fakescope.zoo.checkpoint import save
    from fakescope.data.datasets import load_samples
    from fakescope.eval.evaluate import evaluate
    from fakescope.models import create_model

    torch.manual_seed(0)
    ck = save(create_model("simple_cnn_tiny"), tmp_path / "ck")
    # a manifest of a 200-image subset keeps the test fast
    subset = load_samples(str(FACES), max_n=200, seed=0)
    manifest = tmp_path / "faces.csv"
    manifest.write_text("path,label\n" + "".join(f"{s.path},{s.label}\n" for s in subset))
    res = evaluate(ck, [str(manifest)], tmp_path / "ev", num_workers=0, echo=lambda m: None, progress=False)
    m = res["sets"]["faces"]
    assert m["n"] == 200 and m["skipped"] == 0 and m["auc"] is not None
