"""``train --resume``: a resumed run equals an uninterrupted one, and a damaged last.ckpt is a clear error."""

from __future__ import annotations

import csv
import pickle

import pytest
import torch

from conftest import tiny_experiment
from test_engine import Crash
from fakescope.errors import CheckpointError
from fakescope.train.engine import train

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")


def quiet(msg: str) -> None:
    pass


def _history(run_dir) -> list[dict]:
    with open(run_dir / "history.csv") as fh:
        return [{k: v for k, v in r.items() if k != "step"} for r in csv.DictReader(fh)]


def test_resumed_run_equals_an_uninterrupted_one(tmp_path, tiny_synth, outcomes):
    # dropout and augmentation draw random numbers every step: only restored generators give the same run
    extra = ("trainer.max_epochs=2", "trainer.deterministic=true", "data.augment.jitter_prob=0.5")
    whole = train(tiny_experiment(tmp_path / "a", tiny_synth, *extra), echo=quiet)
    cfg = tiny_experiment(tmp_path / "b", tiny_synth, *extra)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, extra_callbacks=[Crash(epoch=1)], echo=quiet)
    resumed = train(cfg, resume=True, echo=quiet)
    assert _history(resumed.run_dir) == _history(whole.run_dir)
    a = torch.load(whole.run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(resumed.run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    outcomes.append(("training interrupted after epoch 1, resumed", "train --resume",
                     "the same validation metrics and weights as an uninterrupted run (deterministic)"))


class Payload:
    def __reduce__(self):
        return (print, ("code from a crafted checkpoint ran",))


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory, tiny_synth):
    """A finished one-epoch run: its config and its last.ckpt (each test damages a copy)."""
    folder = tmp_path_factory.mktemp("resume")
    cfg = tiny_experiment(folder, tiny_synth, "trainer.max_epochs=1")
    train(cfg, echo=quiet)
    return cfg, (cfg.run_dir / "checkpoints" / "last.ckpt").read_bytes()


@pytest.mark.parametrize("damage", ["truncated", "crafted pickle", "not a checkpoint"])
def test_damaged_last_checkpoint_is_a_clear_error(one_epoch, damage, capsys, outcomes):
    cfg, good = one_epoch
    last = cfg.run_dir / "checkpoints" / "last.ckpt"
    last.write_bytes(good)
    if damage == "truncated":
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    elif damage == "crafted pickle":
        last.write_bytes(pickle.dumps({"state_dict": Payload()}))
    else:
        torch.save({"weights": torch.zeros(2)}, last)
    with pytest.raises(CheckpointError) as err:
        train(cfg, resume=True, echo=quiet)
    assert str(last) in str(err.value)
    assert "code from a crafted checkpoint ran" not in capsys.readouterr().out
    outcomes.append((f"last.ckpt {damage}", "train --resume",
                     "CheckpointError naming the file; nothing in it ran; start again with --overwrite"))
