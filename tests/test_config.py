from __future__ import annotations

from pathlib import Path

import pytest

from fakescope.config import (
    PACKAGED_CONFIGS,
    ExperimentConfig,
    load_config,
    parse_override,
)
from fakescope.errors import ConfigError
from fakescope.models import resolve_model_config


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_layers_override_in_order(tmp_path):
    base = write(tmp_path / "base.yaml", """
name: base
model: {name: simple_cnn, dropout: 0.3}
optim: {lr: 1.0e-3, weight_decay: 0.05}
trainer: {max_epochs: 7}
""")
    exp = write(tmp_path / "exp" / "exp.yaml", """
_base_: ../base.yaml
name: exp
optim: {lr: 5.0e-4}
""")
    cfg = load_config(exp, ["trainer.max_epochs=3", "model.widths=[4,8]"])
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.name == "exp"                       # experiment file beats base
    assert cfg.optim.lr == 5e-4                    # experiment file beats base
    assert cfg.optim.weight_decay == 0.05          # base kept where not overridden (deep merge)
    assert cfg.trainer.max_epochs == 3             # command line beats both
    assert cfg.optim.name == "adamw"               # declared default
    assert cfg.model.kwargs == {"dropout": 0.3, "widths": [4, 8]}
    assert base.exists()


def test_unknown_key_names_key_and_file(tmp_path):
    f = write(tmp_path / "bad.yaml", "model: {name: simple_cnn}\noptim: {lrr: 0.1}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(f)
    msg = str(exc.value)
    assert "optim.lrr" in msg and str(f) in msg and "'lr'" in msg


def test_unknown_key_in_base_names_the_base_file(tmp_path):
    base = write(tmp_path / "base.yaml", "model: {name: simple_cnn}\ntrainer: {max_epoch: 3}\n")
    exp = write(tmp_path / "exp.yaml", "_base_: base.yaml\nname: x\n")
    with pytest.raises(ConfigError) as exc:
        load_config(exp)
    assert "trainer.max_epoch" in str(exc.value) and str(base) in str(exc.value)
    assert "max_epochs" in str(exc.value)


def test_unknown_model_key_is_an_error(tmp_path):
    f = write(tmp_path / "m.yaml", "model: {name: simple_cnn, widht: [4]}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(f)
    assert "model.widht" in str(exc.value) and str(f) in str(exc.value) and "widths" in str(exc.value)


def test_unknown_model_name_is_an_error(tmp_path):
    f = write(tmp_path / "m.yaml", "model: {name: simple_cn}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(f)
    assert "simple_cnn" in str(exc.value) and str(f) in str(exc.value)


def test_override_errors_name_the_command_line(tmp_path):
    f = write(tmp_path / "ok.yaml", "model: {name: simple_cnn}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(f, ["optim.lrate=1"])
    assert "command line" in str(exc.value) and "optim.lrate" in str(exc.value)
    with pytest.raises(ConfigError, match="key=value"):
        load_config(f, ["optim.lr"])


def test_bad_value_type(tmp_path):
    f = write(tmp_path / "t.yaml", "model: {name: simple_cnn}\ntrainer: {max_epochs: many}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(f)
    assert "trainer.max_epochs" in str(exc.value) and str(f) in str(exc.value)


def test_malformed_yaml_names_file_and_line(tmp_path):
    f = write(tmp_path / "broken.yaml", "model:\n  name: simple_cnn\n optim: [\n")
    with pytest.raises(ConfigError) as exc:
        load_config(f)
    assert str(f) in str(exc.value) and "malformed YAML" in str(exc.value) and "line" in str(exc.value)


def test_missing_file_and_bad_base(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    f = write(tmp_path / "x.yaml", "_base_: missing.yaml\n")
    with pytest.raises(ConfigError, match="missing.yaml"):
        load_config(f)
    loop = write(tmp_path / "a.yaml", "_base_: a.yaml\n")
    with pytest.raises(ConfigError, match="circular"):
        load_config(loop)


def test_top_level_must_be_mapping(tmp_path):
    f = write(tmp_path / "l.yaml", "- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(f)


def test_parse_override_values():
    assert parse_override("optim.lr=1e-3") == (("optim", "lr"), 1e-3)
    assert parse_override("data.test=[a, b]") == (("data", "test"), ["a", "b"])
    assert parse_override("trainer.progress_bar=false") == (("trainer", "progress_bar"), False)
    assert parse_override("name=hello world") == (("name",), "hello world")


def test_every_packaged_config_validates():
    files = sorted(PACKAGED_CONFIGS.rglob("*.yaml"))
    assert files, "no packaged configs"
    for f in files:
        cfg = load_config(f)
        resolve_model_config(cfg.model.name, cfg.model.kwargs)


def test_packaged_config_by_name():
    cfg = load_config("quickstart")
    assert cfg.model.name == "npr" and cfg.data.test[0].path == "test/*"


def test_data_sources_resolve_globs(tmp_path):
    for g in ("a", "b"):
        (tmp_path / "test" / g / "0_real").mkdir(parents=True)
    cfg = load_config(data={"model": {"name": "simple_cnn"}, "data": {"root": str(tmp_path), "test": "test/*"}})
    resolved = cfg.data.resolve(cfg.data.test[0])
    assert [s.name for s in resolved] == ["a", "b"]
    assert all(Path(s.path).is_dir() for s in resolved)
    with pytest.raises(ConfigError, match="matches no folder"):
        cfg.data.resolve(type(cfg.data.test[0])(path="nothing/*"))


def test_test_set_names_of_manifests_and_globs(tmp_path):
    from fakescope.config import DataConfig, DataSource

    for ds in ("ffpp_c23", "celebdf_v2"):
        (tmp_path / ds / "sets" / "test").mkdir(parents=True)
    for stem in ("all", "Deepfakes", "Face2Face"):
        (tmp_path / "ffpp_c23" / "sets" / "test" / f"{stem}.csv").write_text("path,label\n")
    (tmp_path / "celebdf_v2" / "sets" / "test" / "all.csv").write_text("path,label\n")
    data = DataConfig(root=str(tmp_path))
    names = [s.name for s in data.resolve(DataSource(path="ffpp_c23/sets/test/*.csv"))]
    assert names == ["Deepfakes", "Face2Face", "ffpp_c23"]  # stems, and all.csv named after its dataset
    assert data.resolve(DataSource(path="celebdf_v2/sets/test/all.csv"))[0].name == "celebdf_v2"
    assert data.resolve(DataSource(path="celebdf_v2/sets/test/all.csv", name="CDF"))[0].name == "CDF"


def test_packaged_configs_by_name_with_or_without_suffix():
    from fakescope.config import PACKAGED_CONFIGS, resolve_config_path

    assert resolve_config_path("fssnet/progan") == resolve_config_path("fssnet/progan.yaml") \
        == PACKAGED_CONFIGS / "fssnet" / "progan.yaml"
    with pytest.raises(ConfigError, match="nor a packaged config"):
        resolve_config_path("fssnet/no_such_recipe.yaml")
