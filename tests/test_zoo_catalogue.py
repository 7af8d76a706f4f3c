"""The catalogue of released detectors is data: one validated YAML file per family, read at import; the
architectures (fakescope.models) import nothing from the weights package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fakescope.errors import ConfigError, WeightsUnavailableError
from fakescope.registry import Registry
from fakescope.zoo.catalogue import ENTRIES, PRETRAINED, load_catalogue, read_catalogue_file

NPR_FILE = ENTRIES / "npr.yaml"


def test_every_catalogue_file_is_read_and_every_entry_registered():
    files = sorted(ENTRIES.glob("*.yaml"))
    assert len(files) >= 6
    names = [e.name for f in files for e in read_catalogue_file(f)]
    assert sorted(names) == PRETRAINED.names()
    assert len(names) == len(set(names))


def _write(tmp_path: Path, doc: dict, name: str = "family.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _npr_doc() -> dict:
    return yaml.safe_load(NPR_FILE.read_text())


def test_a_new_file_adds_entries_without_code(tmp_path):
    doc = _npr_doc()
    doc["family"] = "a local re-release"
    doc["entries"] = [dict(doc["entries"][0], tag="my_copy")]
    _write(tmp_path, doc)
    registry = Registry("pretrained detector")
    assert load_catalogue(tmp_path, registry) == ["npr.my_copy"]
    entry = registry.get("npr.my_copy")
    assert entry.converter == "npr" and entry.model["preprocess"]["input_size"] == 256  # from the defaults
    assert entry.file.sha256 == PRETRAINED.get("npr.progan_4class").file.sha256


@pytest.mark.parametrize("change, words", [
    (lambda d: d["entries"][0].update(lisence="MIT"), ["entry 1", "npr.progan_4class", "lisence"]),
    (lambda d: d.update(famly="x"), ["famly"]),
    (lambda d: d["defaults"].update(converter="no_such_map"), ["entry 1", "no_such_map"]),
    (lambda d: d["defaults"].update(arch="no_such_arch"), ["no_such_arch"]),
    (lambda d: d["defaults"]["model"]["preprocess"].update(input_size="big"), ["entry 1", "input_size"]),
    (lambda d: d["defaults"]["model"].update(widht=3), ["entry 1", "widht"]),
    (lambda d: d["entries"][1].update(tag="progan_4class"), ["npr.progan_4class", "already"]),
    (lambda d: d.update(entries=[]), ["entries"]),
])
def test_a_bad_file_is_an_error_naming_the_file_and_the_entry(tmp_path, change, words):
    doc = _npr_doc()
    change(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(ConfigError) as err:
        load_catalogue(tmp_path, Registry("pretrained detector"))
    text = str(err.value)
    assert str(path) in text
    for word in words:
        assert word in text


def test_a_name_already_in_the_catalogue_is_refused_and_nothing_is_registered(tmp_path):
    _write(tmp_path, _npr_doc(), "a.yaml")
    doc = _npr_doc()
    doc["entries"] = [dict(doc["entries"][0], tag="fresh")]
    _write(tmp_path, doc, "b.yaml")
    registry = Registry("pretrained detector")
    registry.add("npr.progan_4class", PRETRAINED.get("npr.progan_4class"))
    with pytest.raises(ConfigError, match="already in the catalogue"):
        load_catalogue(tmp_path, registry)
    assert registry.names() == ["npr.progan_4class"]  # b.yaml's entry was not registered either


def test_unreadable_yaml_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("family: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml: not a valid catalogue file"):
        read_catalogue_file(path)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_the_architectures_import_nothing_from_the_weights_package():
    out = _run("import sys, fakescope.models, fakescope.models.layers.backbones, fakescope.models.sources\n"
               "print(sorted(m for m in sys.modules if m.startswith('fakescope.zoo')))")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_without_the_weights_package_hub_weights_come_from_the_cache_only(tmp_path):
    code = ("import os\nfrom fakescope.models.sources import hub_file\n"
            "try:\n    hub_file('hf-hub:timm/legacy_xception.tf_in1k', 'model.safetensors', 'ImageNet Xception')\n"
            "except Exception as e:\n    print(type(e).__name__, e)\n")
    env_code = f"import os; os.environ['HF_HUB_CACHE'] = {str(tmp_path)!r}\n" + code
    out = _run(env_code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(WeightsUnavailableError.__name__)
    assert "not in the Hugging Face cache" in out.stdout and "fakescope.zoo" in out.stdout
