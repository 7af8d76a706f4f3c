"""Weights, checkpoints and configs that are damaged or crafted: each is refused with an error naming the file,
and nothing in a crafted file is ever executed."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct

import pytest
import torch

import fakescope
from fakescope.errors import CheckpointError, ConfigError, FakescopeError, WeightsUnavailableError

MARK = "fakescope-reliability-payload-ran"


class Payload:
    """Unpickling this would call ``print(MARK)``: a stand-in for any code a crafted file could run."""

    def __reduce__(self):
        return (print, (MARK,))


def payload_bytes() -> bytes:
    return pickle.dumps({"state_dict": {"w": Payload()}})


def damaged_checkpoint(src, dst, how: str):
    shutil.copytree(src, dst)
    weights = dst / "model.safetensors"
    if how == "truncated safetensors":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif how == "safetensors header claiming 1 TB":
        weights.write_bytes(struct.pack("<Q", 1 << 40) + b'{"w": {}}')
    elif how == "pickle payload named model.safetensors":
        weights.write_bytes(payload_bytes())
    elif how == "NaN weights":
        from safetensors.torch import load_file, save_file

        state = load_file(str(weights))
        key = next(k for k, v in state.items() if v.is_floating_point())
        state[key] = torch.full_like(state[key], float("nan"))
        save_file(state, str(weights))
    elif how == "malformed config.json":
        (dst / "config.json").write_text("{ this is not json")
    elif how == "config.json naming an unknown model":
        cfg = json.loads((dst / "config.json").read_text())
        cfg["model"]["name"] = "no_such_model"
        (dst / "config.json").write_text(json.dumps(cfg))
    return dst


CHECKPOINT_CASES = ["truncated safetensors", "safetensors header claiming 1 TB",
                    "pickle payload named model.safetensors", "NaN weights", "malformed config.json",
                    "config.json naming an unknown model"]


@pytest.mark.parametrize("how", CHECKPOINT_CASES)
def test_damaged_checkpoint_folders_are_refused_naming_the_file(reliability_checkpoint, tmp_path, how, capsys,
                                                                  outcomes):
    ck = damaged_checkpoint(reliability_checkpoint, tmp_path / "ck", how)
    with pytest.raises(CheckpointError) as err:
        fakescope.load(ck)
    assert str(ck) in str(err.value)
    assert MARK not in capsys.readouterr().out
    outcomes.append((how, "load", "CheckpointError: " + str(err.value).replace(str(ck), "CK")[:150]))


def test_nan_weights_stop_detect_and_eval_with_a_clear_error(reliability_checkpoint, tmp_path, outcomes):
    from fakescope.cli import main

    ck = damaged_checkpoint(reliability_checkpoint, tmp_path / "ck", "NaN weights")
    img = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (32, 32)).save(img)
    for argv, entry in ((["eval", str(ck), "--data", str(tmp_path), "--num-workers", "0"], "eval"),
                        (["detect", str(img), "-m", str(ck)], "detect")):
        assert main(argv) == 2
        outcomes.append(("NaN weights", entry, "error naming model.safetensors: the weights hold NaN"))


def test_pickle_payloads_never_run_under_any_weight_loading_path(tmp_path, capsys, outcomes):
    from fakescope.zoo.pretrained import read_official
    from fakescope.models.state import load_state_file
    from fakescope.train.engine import check_resumable

    f = tmp_path / "payload.pth"
    f.write_bytes(payload_bytes())
    cases = [
        ("create_model(weights=payload)", lambda: fakescope.create_model("cnndetection_tiny", weights=str(f))),
        ("backbone/encoder weights file (load_state_file)", lambda: load_state_file(f)),
        ("official release file (pretrained --weights-file)", lambda: read_official(f, move_aside=False)),
        ("training checkpoint (train --resume)", lambda: check_resumable(f)),
    ]
    for what, call in cases:
        with pytest.raises(FakescopeError) as err:
            call()
        assert str(f) in str(err.value) and MARK not in capsys.readouterr().out, what
        outcomes.append((f"pickle payload: {what}", "load", f"{type(err.value).__name__}: refused, nothing ran"))
    # the same payload as the weights of a pretrained name: refused on size and checksum before any read
    with pytest.raises(WeightsUnavailableError):
        fakescope.load("cnndetection_resnet50.blur_jpg_prob0.5", weights_file=str(f))
    outcomes.append(("pickle payload: pretrained name with --weights-file", "load",
                     "refused on size and SHA-256 before it is read"))


def test_weights_a_model_would_ignore_are_refused(tmp_path, outcomes):
    with pytest.raises(ConfigError, match="would be ignored"):
        fakescope.create_model("simple_cnn_tiny", weights=str(tmp_path / "w.pth"))
    with pytest.raises(ConfigError, match="would be ignored"):
        fakescope.create_model("npr_tiny", pretrained=True)
    outcomes.append(("create_model(name, weights=...) for a model without a pretrained backbone", "load",
                     "ConfigError: would be ignored (use fakescope.load or load_state_dict)"))


CONFIG_CASES = {
    "config not in UTF-8": ("latin1.yaml", "name: caf\xe9\n".encode("latin-1"), "not UTF-8"),
    "malformed YAML": ("bad.yaml", b"name: [unclosed\n", "malformed YAML"),
    "YAML alias bomb": ("bomb.yaml", b"a: &a [x, x, x, x, x, x, x, x, x]\n" + b"".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n".encode()
        for i in range(10)), "unknown|not|alias|invalid|extra"),
    "YAML nested 100000 deep": ("deep.yaml", b"a: " + b"[" * 100000 + b"]" * 100000 + b"\n",
                                "nest|deep|malformed|unknown"),
    "top level not a mapping": ("list.yaml", b"- 1\n- 2\n", "mapping"),
    "binary file as config": ("binary.yaml", bytes(range(256)) * 4, "not UTF-8|malformed|control"),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_bad_configs_are_errors_naming_the_file(tmp_path, case, outcomes):
    from fakescope.config import load_config

    name, data, reason = CONFIG_CASES[case]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ConfigError, match=reason) as err:
        load_config(str(path))
    assert str(err.value).startswith(f"{path}: "), str(err.value)  # the file named first, then the problem
    outcomes.append((case, "config", "ConfigError: " + str(err.value).replace(str(path), "FILE")[:150]))


def test_train_resume_with_overrides_after_the_flag(tmp_path, tiny_synth, outcomes):
    from fakescope.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"name: t\noutput_dir: {tmp_path / 'runs'}\nmodel: {{name: simple_cnn_tiny}}\n"
                   f"data: {{root: {tiny_synth}, train: train, val: val, num_workers: 0, batch_size: 16}}\n"
                   "trainer: {max_epochs: 1, progress_bar: false}\neval: {after_training: false}\n")
    # nothing to resume yet: the error is about the run, not about the command line
    assert main(["train", str(cfg), "--resume", "trainer.max_epochs=1"]) == 2
    with pytest.raises(SystemExit):  # an unknown option is still a usage error
        main(["train", str(cfg), "--resume", "trainer.max_epochs=1", "--bogus"])
    outcomes.append(("train CONFIG --resume key=value", "train --resume",
                     "overrides after the flag are taken (no usage error)"))
    assert os.environ.get("FAKESCOPE_FORKSERVER_GUARD") is None
