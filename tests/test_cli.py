from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from fakescope.cli import main
from fakescope.errors import MissingExtraError
from fakescope.utils.optional import require

COMMANDS = ("train", "eval", "synth", "models", "config", "quickstart")


def test_console_script_help_lists_commands():
    exe = shutil.which("fakescope") or str(__import__("pathlib").Path(sys.executable).parent / "fakescope")
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    for cmd in COMMANDS:
        assert cmd in out.stdout


def test_models_command(capsys):
    assert main(["models", "simple_cnn*"]) == 0
    out = capsys.readouterr().out
    assert "simple_cnn " in out and "simple_cnn_tiny" in out and "image" in out
    assert main(["models", "--json"]) == 0
    assert '"name": "npr"' in capsys.readouterr().out


def test_config_command_prints_resolved_config(capsys):
    assert main(["config", "quickstart", "optim.lr=0.5"]) == 0
    out = capsys.readouterr().out
    assert "lr: 0.5" in out and "name: npr" in out


def test_bad_config_is_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {name: simple_cnn}\ntrainer: {max_epoch: 2}\n")
    assert main(["config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "trainer.max_epoch" in err and str(bad) in err and "Traceback" not in err


def test_missing_dataset_is_an_error_naming_the_path(tmp_path, capsys):
    code = main(["train", "quickstart", f"data.root={tmp_path / 'nowhere'}", f"output_dir={tmp_path}",
                 "trainer.progress_bar=false"])
    assert code == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "not found" in err and "Traceback" not in err


def test_missing_checkpoint(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nope"), "--data", str(tmp_path)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_missing_extra_names_the_extra():
    with pytest.raises(MissingExtraError, match=r"pip install 'fakescope\[serve\]'"):
        require("surely_not_an_installed_module", extra="serve", purpose="the web service")


def test_core_commands_do_not_import_optional_extras():
    code = ("import sys; from fakescope.cli import main; main(['models']); "
            "bad = [m for m in ('fastapi', 'uvicorn', 'onnx', 'onnxruntime') if m in sys.modules]; "
            "assert not bad, bad")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
