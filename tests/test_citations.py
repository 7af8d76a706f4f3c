"""Every report writes CITATIONS.bib beside it: fakescope and every model and dataset that produced a number."""

from __future__ import annotations

import re

import pytest
import torch
import yaml

from fakescope.errors import ConfigError
from fakescope.zoo import citations as cit
from fakescope.zoo.catalogue import PRETRAINED


def _keys(path) -> list[str]:
    return re.findall(r"^@\w+\{([^,]+),", path.read_text(), flags=re.M)


def test_every_release_and_table_paper_has_a_citation_and_the_bibtex_parses_as_entries():
    table = cit.works()
    for name in PRETRAINED.names():
        entry = PRETRAINED.get(name)
        assert entry.cite, f"{name} names no work to cite"
        assert set(entry.cite) <= set(table.works)
    for key, text in table.works.items():
        assert text.count("{") == text.count("}"), key
        assert re.match(rf"@\w+\{{{key},", text), key
    for arch in ("sfcl_hcmf", "fssnet", "sdr", "npr", "univfd_clip", "cnndetection_resnet50", "xception"):
        assert table.architectures[arch], arch


def test_keys_follow_what_produced_the_numbers_each_once():
    keys = cit.citations_for(architectures=["fssnet"], pretrained=["npr.progan_4class"],
                             tables=["fssnet_gan", "sdr_cross"], datasets=["ForenSynths/progan", "FF++ c23", "mine"])
    assert keys[0] == "fakescope"
    assert {"su2025fssnet", "tan2024npr", "wang2020cnn", "chu2025sdr", "zheng2021ftcn",
            "rossler2019faceforensics"} <= set(keys)
    assert len(keys) == len(set(keys))
    assert cit.citations_for(datasets=["my_own_photos"]) == ["fakescope"]  # nothing to cite but fakescope
    with pytest.raises(ConfigError, match="no_such_key"):
        cit.bibtex(["fakescope", "no_such_key"])


def test_a_bad_citations_file_is_an_error_naming_it(tmp_path, monkeypatch):
    data = yaml.safe_load(cit.CITATIONS.read_text())
    data["architectures"]["npr"] = ["tan2024npr", "missing2099"]
    path = tmp_path / "citations.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setattr(cit, "CITATIONS", path)
    cit.works.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"(?s)citations.yaml.*missing2099"):
            cit.works()
    finally:
        cit.works.cache_clear()


def test_eval_writes_citations_beside_its_report(tmp_path, tiny_synth):
    from fakescope.eval.evaluate import evaluate
    from fakescope.models import create_model
    from fakescope.zoo.checkpoint import save

    torch.manual_seed(0)
    ck = save(create_model("npr", preprocess={"input_size": 32}), tmp_path / "ck")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "forensynths_progan").symlink_to(tiny_synth / "test" / "tconv")
    out = tmp_path / "rep"
    evaluate(ck, [str(tmp_path / "data" / "forensynths_progan")], out, num_workers=0, echo=lambda m: None,
             progress=False)
    keys = _keys(out / "CITATIONS.bib")
    assert keys == ["fakescope", "tan2024npr", "wang2020cnn"]


def test_paper_tables_add_their_papers_to_the_folders_citations(tmp_path):
    from fakescope.eval.tables import get_table, write_table

    write_table(get_table("fssnet_gan"), {"progan": {"acc": 1.0, "ap": 1.0}}, tmp_path, "fssnet")
    write_table(get_table("sdr_cross"), {"celeb-df-v2": {"auc": 0.9}}, tmp_path, "sdr")
    keys = _keys(tmp_path / "CITATIONS.bib")
    assert keys[0] == "fakescope" and len(keys) == len(set(keys))
    assert {"su2025fssnet", "wang2020cnn", "chu2025sdr", "zheng2021ftcn", "li2020celebdf"} <= set(keys)
