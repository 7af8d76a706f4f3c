"""The fast paths of folder scoring (fakescope.inference.stream): lanes, batches grouped by input size, the batch
size and layout chosen by measurement, and bf16. Behaviour only, never time: the same scores as one input at a
time, records in input order, failures reported and the rest scored, a measured choice that follows the timer
and is cached."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_detect import make_checkpoint

from fakescope.cli import main
from fakescope.errors import CompileError
from fakescope.data.transforms import Preprocessor
from fakescope.inference import Detector
from fakescope.inference.job import Job, new_record
from fakescope.inference.stream import BatchChoice, BatchTuner
from fakescope.media.image import load_image


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKESCOPE_CACHE", str(tmp_path / "cache"))  # measured choices never go to the home folder


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ck") / "npr", name="npr_tiny")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Images of mixed sizes and formats, a broken one among them, and a note that is no media."""
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i in range(23):
        img = Image.fromarray(rng.integers(0, 256, (20 + 7 * i, 90 - 2 * i, 3), dtype=np.uint8))
        img.save(root / (f"{i:03d}.png" if i % 3 else f"{i:03d}.jpg"), quality=90)
    (root / "010b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (root / "notes.txt").write_text("no picture")
    return root


def one_at_a_time(det: Detector, folder: Path) -> dict[str, float]:
    """The eager loop: decode, transform and score each file alone."""
    pre = Preprocessor(det.preprocess, train=False)
    out = {}
    for p in sorted(folder.iterdir()):
        if p.suffix in (".png", ".jpg") and p.stat().st_size > 100:
            with torch.no_grad():
                out[str(p)] = float(det.model.predict_proba(pre(load_image(p)).unsqueeze(0))[0])
    return out


class FakeTimer:
    """A clock whose forward passes take ``cost(batch, channels_last)`` seconds; it counts its readings."""

    def __init__(self, det: Detector, cost) -> None:
        self.det, self.cost, self.now, self.reads = det, cost, 0.0, 0
        self.batch = 0
        score = det._score

        def counted(x):
            self.batch = len(x)
            return score(x)

        det._score = counted

    def __call__(self) -> float:
        self.reads += 1
        if self.reads % 2 == 0:  # the end of a timed pass
            self.now += self.cost(self.batch, self.det.channels_last)
        return self.now


# ------------------------------------------------------------------------------------------------ the lanes
@pytest.mark.parametrize("batch_size", [1, 4, "auto"])
def test_lanes_give_the_scores_of_one_at_a_time_in_input_order(ckpt, folder, batch_size):
    det = Detector.from_pretrained(ckpt, device="cpu", batch_size=batch_size, lanes=3)
    assert det.lanes_for() == 3
    recs = list(det.predict_many([str(folder)]))
    ref = one_at_a_time(det, folder)
    assert [r["path"] for r in recs] == sorted(str(p) for p in folder.iterdir() if p.suffix != ".txt") + [
        str(folder / "notes.txt")]
    scored = {r["path"]: r["score"] for r in recs if r["score"] is not None}
    assert scored.keys() == ref.keys()
    assert max(abs(scored[k] - ref[k]) for k in ref) <= 1e-5
    broken = next(r for r in recs if r["path"].endswith("010b.png"))
    assert broken["score"] is None and str(folder / "010b.png") in broken["error"]
    assert recs[-1]["kind"] == "skipped"


def test_lanes_and_one_thread_write_the_same_records(ckpt, folder, tmp_path, capsys):
    outs = []
    for lanes in ("1", "2"):
        out = tmp_path / f"lanes{lanes}.jsonl"
        assert main(["detect", str(folder), "-m", str(ckpt), "-o", str(out), "--lanes", lanes, "--batch-size",
                     "auto", "--device", "cpu", "--progress", "off"]) == 0
        outs.append([{k: v for k, v in json.loads(line).items() if k != "seconds"}
                     for line in out.read_text().splitlines()])
    assert [r["path"] for r in outs[0]] == [r["path"] for r in outs[1]]
    for a, b in zip(*outs):
        assert (a["score"] is None) == (b["score"] is None) and a["error"] == b["error"]
        if a["score"] is not None:
            assert abs(a["score"] - b["score"]) <= 1e-5
    err = capsys.readouterr().err
    assert "scoring: 3x32x32: batch" in err and "2 lanes" in err


def test_a_consumer_that_stops_early_gets_its_threads_back(ckpt, folder):
    threads = torch.get_num_threads()
    det = Detector.from_pretrained(ckpt, device="cpu", lanes=2)
    it = det.predict_many([str(folder)])
    first = [next(it) for _ in range(3)]
    it.close()
    assert [r["path"] for r in first] == sorted(str(p) for p in folder.iterdir())[:3]
    assert torch.get_num_threads() == threads


def test_a_batch_the_model_fails_on_is_reported_and_the_others_are_scored(ckpt, folder):
    det = Detector.from_pretrained(ckpt, device="cpu", batch_size=2, lanes=2)
    score, calls = det._score, itertools.count()

    def flaky(x):
        if next(calls) == 1:  # the second forward pass, whichever lane makes it
            raise RuntimeError("out of memory (stand-in)")
        return score(x)

    det._score = flaky
    recs = [r for r in det.predict_many([str(folder)]) if r["kind"] != "skipped"]
    failed = [r for r in recs if r["error"] and "the model failed on this batch" in r["error"]]
    assert 1 <= len(failed) <= 2 and all(r["path"] in r["error"] for r in failed)
    assert sum(r["score"] is not None for r in recs) == len(recs) - len(failed) - 1  # and the broken file


def test_lanes_are_not_used_where_the_pipeline_needs_one_thread(ckpt, tmp_path):
    det = Detector.from_pretrained(ckpt, device="cpu", lanes=0)
    assert det.lanes_for() == torch.get_num_threads()
    assert det.lanes_for(details=True) == 1 and det.lanes_for(num_workers=2) == 1
    assert Detector.from_pretrained(ckpt, device="cpu", lanes=4, explain=str(tmp_path / "cam")).lanes_for() == 1
    assert Detector.from_pretrained(ckpt, device="cpu").lanes_for() == 1  # the Python default: the calling thread


# ------------------------------------------------------------------------------------ grouped by input size
def test_inputs_of_different_sizes_are_scored_in_groups_with_their_own_scores(ckpt):
    det = Detector.from_pretrained(ckpt, device="cpu", batch_size=8)
    rng = torch.Generator().manual_seed(1)
    sizes = [32, 48, 32, 40, 48, 32]
    jobs = []
    for i, s in enumerate(sizes):
        job = Job(new_record(det, f"x{i}"), 0.0)
        job.record["kind"] = "image"
        job.inputs = torch.randint(0, 256, (1, 3, s, s), dtype=torch.uint8, generator=rng)
        jobs.append(job)
    alone = [float(det.model.predict_proba(j.inputs)[0]) for j in jobs]
    recs = list(det._finish(jobs))
    assert [r["path"] for r in recs] == [f"x{i}" for i in range(6)]
    assert all(abs(r["model_score"] - a) <= 1e-5 for r, a in zip(recs, alone))


# ------------------------------------------------------------------------------------ the measured choice
def test_the_choice_follows_the_timer_and_is_cached(ckpt, tmp_path):
    det = Detector.from_pretrained(ckpt, device="cpu", batch_size="auto")
    # per input: the contiguous layout is best at batch 4, channels-last at batch 8 and better still
    cost = {False: {1: 1.0, 2: 1.6, 4: 2.4, 8: 6.0, 16: 1.0}, True: {1: 1.0, 2: 1.5, 4: 2.2, 8: 4.0, 16: 1.0}}
    timer = FakeTimer(det, lambda b, cl: cost[cl][b] / 100)  # seconds
    cache = tmp_path / "tuning.json"
    det.tuner = tuner = BatchTuner(cache, timer=timer, repeats=2)
    choice = det.batch_choice(det.input_shape())
    assert (choice.batch, choice.channels_last, choice.source) == (8, True, "measured")
    assert choice.ms_per_input == pytest.approx(5.0)
    # a layout's larger batches are not tried once one is over 1.15 times slower per input than its best
    assert [(b, cl) for b, cl, _ in tuner.trials] == [(1, False), (2, False), (4, False), (8, False), (1, True),
                                                      (2, True), (4, True), (8, True)]
    assert det.channels_last
    reads = timer.reads
    assert det.batch_choice(det.input_shape()) == choice and timer.reads == reads  # measured once
    # another process on this machine: read from the cache, not measured again
    det2 = Detector.from_pretrained(ckpt, device="cpu", batch_size="auto")
    det2.tuner = BatchTuner(cache, timer=lambda: pytest.fail("measured again"))
    again = det2.batch_choice(det2.input_shape())
    assert (again.batch, again.channels_last, again.source) == (8, True, "cache") and det2.channels_last
    assert len(json.loads(cache.read_text())) == 1
    # the same costs measured again give the same choice; a damaged cache is measured again, never fatal
    cache.write_text("{not json")
    det3 = Detector.from_pretrained(ckpt, device="cpu", batch_size="auto")
    det3.tuner = BatchTuner(cache, timer=FakeTimer(det3, lambda b, cl: cost[cl][b] / 100))
    assert det3.batch_choice(det3.input_shape()) == choice


def test_for_lanes_every_lane_scores_at_once_while_timed(ckpt):
    import threading

    det = Detector.from_pretrained(ckpt, device="cpu", batch_size="auto")
    det.lanes_now = 2
    threads: list[str] = []
    score = det._score

    def seen(x):
        threads.append(threading.current_thread().name)
        return score(x)

    det._score = seen
    cost = {False: {1: 1.0, 2: 1.6, 4: 2.4}, True: {1: 1.0, 2: 1.5, 4: 2.2}}  # seconds a pass of both lanes, /100
    det.tuner = tuner = BatchTuner(False, timer=FakeTimer(det, lambda b, cl: cost[cl][b] / 100), repeats=2)
    choice = det.batch_choice(det.input_shape())
    # batches of which two lanes hold at most 8 inputs; per input: a pass's time over both lanes' inputs
    assert [(b, cl) for b, cl, _ in tuner.trials] == [(1, False), (2, False), (4, False), (1, True), (2, True),
                                                      (4, True)]
    assert (choice.batch, choice.channels_last, choice.ms_per_input) == (4, True, pytest.approx(2.75))
    assert len(threads) == 6 * (1 + 2) * 2  # each candidate: one untimed pass and two timed ones, in both lanes
    assert all(name.startswith("fakescope-tuning") for name in threads) and len(set(threads)) == 2
    assert "lanes=2 at once" in tuner.key(det, det.input_shape())


def test_within_five_percent_the_smaller_batch_and_the_contiguous_layout_win(ckpt):
    det = Detector.from_pretrained(ckpt, device="cpu", batch_size="auto")
    cost = {False: {1: 1.0, 2: 1.9, 4: 3.3, 8: 6.9}, True: {1: 0.99, 2: 1.8, 4: 3.4, 8: 6.4}}
    det.tuner = BatchTuner(False, timer=FakeTimer(det, lambda b, cl: cost[cl][b] / 100))
    # per input, the fastest is channels-last at batch 8 (8.0 ms); contiguous batch 4 (8.25 ms) is within 5%
    assert det.batch_choice(det.input_shape()) == BatchChoice(4, False, 8.25, "measured") and not det.channels_last


def test_ties_go_to_the_smaller_batch_and_the_contiguous_layout(ckpt):
    det = Detector.from_pretrained(ckpt, device="cpu", batch_size="auto")
    det.tuner = BatchTuner(False, timer=FakeTimer(det, lambda b, cl: 0.005 * b))
    assert det.batch_choice(det.input_shape()) == BatchChoice(1, False, 5.0, "measured")


def test_a_given_batch_size_is_never_measured(ckpt):
    det = Detector.from_pretrained(ckpt, device="cpu", batch_size=5)
    det.tuner = BatchTuner(False, timer=lambda: pytest.fail("measured"))
    assert det.batch_choice(det.input_shape()) == BatchChoice(5, False)
    assert det.block_size == 5 and Detector.from_pretrained(ckpt, device="cpu", batch_size="auto").block_size == 32


def test_a_model_that_fails_while_measured_is_scored_with_the_default_batch(ckpt):
    det = Detector.from_pretrained(ckpt, device="cpu", batch_size="auto")

    def broken(x):
        raise RuntimeError("no")

    det._score = broken
    det.tuner = BatchTuner(False)
    assert det.batch_choice(det.input_shape()) == BatchChoice(32, False)


# ----------------------------------------------------------------------------------------------------- bf16
def test_bf16_says_how_far_its_scores_are_from_float32(ckpt, folder, tmp_path, capsys):
    det = Detector.from_pretrained(ckpt, device="cpu", bf16=True, lanes=2)
    recs = [r for r in det.predict_many([str(folder)]) if r["score"] is not None]
    check = det.bf16_check
    assert check["inputs"] == len(recs) and 0.0 <= check["mean_abs_diff"] <= check["max_abs_diff"] < 0.05
    ref = one_at_a_time(det, folder)
    assert max(abs(r["score"] - ref[r["path"]]) for r in recs) <= check["max_abs_diff"] + 1e-5
    assert main(["detect", str(folder), "-m", str(ckpt), "-o", str(tmp_path / "b.jsonl"), "--bf16", "--device",
                 "cpu", "--progress", "off"]) == 0
    assert "bf16: on the first" in capsys.readouterr().err


def test_options_are_checked(ckpt, capsys):
    from fakescope.errors import ConfigError

    for bad in ({"batch_size": 0}, {"batch_size": "big"}, {"lanes": -1}):
        with pytest.raises(ConfigError):
            Detector.from_pretrained(ckpt, device="cpu", **bad)
    with pytest.raises(SystemExit):
        main(["detect", "x.png", "-m", str(ckpt), "--batch-size", "many"])
    assert "give auto or a whole number" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- folded batch norms
def test_folded_batch_norms_give_the_models_scores(ckpt):
    from fakescope.inference.folding import fold_batchnorm

    det = Detector.from_pretrained(ckpt, device="cpu")
    gen = torch.Generator().manual_seed(3)
    for bn in (m for m in det.model.modules() if isinstance(m, torch.nn.BatchNorm2d)):  # statistics of a trained one
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=gen))
        bn.running_var.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)
        bn.weight.data.copy_(torch.randn(bn.num_features, generator=gen))
    fast = fold_batchnorm(det.model, det.input_shape())
    assert fast is not None and fast is not det.model
    x = torch.randint(0, 256, (5, *det.input_shape()), dtype=torch.uint8, generator=gen)
    assert torch.allclose(fast.predict_proba(x), det.model.predict_proba(x), atol=1e-5)
    assert all(m.forward.__self__ is m for m in det.model.modules())  # the model's own batch norms are untouched


def test_channels_last_leaves_a_3d_convolution_as_it_is():
    """A model with a 3-D convolution (SFCL-HCMF's inter-block stage has one) cannot go through
    model.to(memory_format=channels_last); set_memory_format converts its 4-D weights only, values unchanged."""
    from torch import nn

    from fakescope.inference.images import set_memory_format

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Unflatten(1, (1, 4)), nn.Conv3d(1, 2, 1), nn.Flatten(1, 2)).eval()
    x = torch.randn(2, 3, 9, 9)
    want = model(x)
    with pytest.raises(RuntimeError):
        model.to(memory_format=torch.channels_last)
    set_memory_format(model, True)
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert model[2].weight.dim() == 5 and model[2].weight.is_contiguous()
    assert torch.allclose(model(x.contiguous(memory_format=torch.channels_last)), want, atol=1e-6)
    set_memory_format(model, False)
    assert model[0].weight.is_contiguous()


# ---------------------------------------------------------------------------------------------- torch.compile
def test_compiled_scoring_gives_the_eager_scores(ckpt, folder, tmp_path):
    from torch._dynamo.utils import counters

    graphs = counters["stats"]["unique_graphs"]
    det = Detector.from_pretrained(ckpt, device="cpu", compile=True, batch_size=4)
    recs = [r for r in det.predict_many([str(folder)]) if r["score"] is not None]
    ref = one_at_a_time(det, folder)
    # 23 images: five batches of 4 and one of 3, padded to 4, so one graph serves them all
    assert len(recs) == len(ref) == 23 and max(abs(r["score"] - ref[r["path"]]) for r in recs) < 1e-5
    assert counters["stats"]["unique_graphs"] - graphs == 1 and "torch.compile" in det.speed_text()
    assert det.lanes_for() == 1  # a compiled graph scores in the calling thread
    out = tmp_path / "c.jsonl"
    assert main(["detect", str(folder), "-m", str(ckpt), "-o", str(out), "--compile", "--device", "cpu",
                 "--progress", "off"]) == 0  # --batch-size auto: measured on the eager model, then compiled
    got = {r["path"]: r["score"] for r in map(json.loads, out.read_text().splitlines()) if r["score"] is not None}
    assert got.keys() == ref.keys() and max(abs(got[p] - ref[p]) for p in got) < 1e-5
    for bad in ({"bf16": True}, {"backend": "onnx"}):
        with pytest.raises(Exception, match="compile needs the PyTorch backend"):
            Detector(det.model, det.config, source="x", compile=True, **bad)


def test_a_model_that_does_not_compile_stops_the_run_once(ckpt, folder, tmp_path, monkeypatch, capsys):
    """A compiler that fails (no C++ compiler, say) fails at every batch's first call alike: one clear error for the
    run, one attempt, instead of every file's record carrying the compiler's message and a new attempt per batch."""
    attempts = []

    def broken_compile(fn, **kwargs):
        def run(x):
            attempts.append(len(x))
            raise RuntimeError("C++ compile error\n(the compiler's output)")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    det = Detector.from_pretrained(ckpt, device="cpu", compile=True, batch_size=4)
    with pytest.raises(CompileError, match=r"could not compile .*\(RuntimeError: C\+\+ compile error\); score without"):
        list(det.predict_many([str(folder)]))
    assert attempts == [4]
    out = tmp_path / "c.jsonl"
    assert main(["detect", str(folder), "-m", str(ckpt), "-o", str(out), "--compile", "--batch-size", "4",
                 "--device", "cpu", "--progress", "off"]) == 2
    err = capsys.readouterr().err
    assert "fakescope: error:" in err and "score without --compile" in err and "Traceback" not in err


def test_a_compiled_graph_that_fails_later_fails_its_batch_only(ckpt, folder, monkeypatch):
    """Once a shape's graph has run, a later failure (out of memory, say) is that batch's, as without --compile."""
    calls = []

    def flaky_compile(fn, **kwargs):
        def run(x):
            calls.append(len(x))
            if len(calls) == 2:
                raise RuntimeError("out of memory")
            return fn(x)
        return run

    monkeypatch.setattr(torch, "compile", flaky_compile)
    det = Detector.from_pretrained(ckpt, device="cpu", compile=True, batch_size=4)
    recs = [r for r in det.predict_many([str(folder)]) if r["kind"] != "skipped"]
    failed = [r for r in recs if r["error"] and "the model failed on this batch (RuntimeError: out of memory)" in r["error"]]
    assert failed and any(r["score"] is not None for r in recs) and len(calls) > 2
