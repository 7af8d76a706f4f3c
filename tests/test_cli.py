from __future__ import annotations

import os
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


def test_a_command_runs_with_its_own_options_declared_alone():
    from fakescope.cli.parser import COMMANDS, build_parser, command_in

    assert command_in(["-v", "detect", "x.jpg"]) == "detect"
    assert command_in(["--help"]) is None and command_in(["detcet", "x"]) is None
    full = build_parser()
    for argv in (["detect", "a.jpg", "b", "--batch-size", "4", "--lanes", "2"], ["eval", "ck", "--data", "d"],
                 ["serve", "ck", "--max-batch", "8"], ["models", "--pretrained"], ["train", "cfg.yaml", "k=v"]):
        alone = build_parser(command_in(argv))
        assert set(alone._subparsers._group_actions[0].choices) == {argv[0]}
        assert vars(alone.parse_args(argv)) == vars(full.parse_args(argv)), argv
    assert set(full._subparsers._group_actions[0].choices) == set(COMMANDS)


def test_detect_imports_neither_scikit_learn_nor_torch_dynamo(tmp_path):
    """Scoring needs neither; importing them made every `fakescope detect` 3-4 s slower to start."""
    code = ("import sys, torch, fakescope; from PIL import Image; from fakescope.cli import main; "
            f"root = {str(tmp_path)!r}; torch.manual_seed(0); "
            "fakescope.save(fakescope.create_model('simple_cnn_tiny'), root + '/ck'); "
            "Image.new('RGB', (40, 30), (90, 20, 200)).save(root + '/a.png'); "
            "gone = [m for m in ('sklearn', 'torch._dynamo') if m in sys.modules]; "
            "assert not gone, ('before', gone); "
            "assert main(['detect', root + '/a.png', '-m', root + '/ck', '-o', root + '/o.jsonl']) == 0; "
            "assert open(root + '/o.jsonl').read().count('\"score\"') == 1; "
            "bad = [m for m in ('sklearn', 'torch._dynamo') if m in sys.modules]; assert not bad, bad")
    env = {**os.environ, "FAKESCOPE_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]


def test_building_on_the_meta_device_leaves_initialisation_of_real_tensors_alone():
    import torch
    from torch.nn import init

    from fakescope.models.state import meta_init_skipped

    before = init.kaiming_normal_
    with meta_init_skipped():
        assert init.kaiming_normal_ is not before
        with torch.device("meta"):
            meta = torch.nn.Linear(4, 3)
        torch.manual_seed(0)
        real = torch.nn.Linear(4, 3)
    torch.manual_seed(0)
    plain = torch.nn.Linear(4, 3)
    assert init.kaiming_normal_ is before
    assert meta.weight.is_meta and tuple(meta.weight.shape) == (3, 4)
    assert torch.equal(real.weight, plain.weight) and torch.equal(real.bias, plain.bias)
