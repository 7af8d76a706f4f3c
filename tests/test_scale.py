"""Scale-out of ``detect`` and ``eval``: streamed output, resume after ``kill -9``, several processes (gloo on
CPU) giving exactly the records and metrics of one, input workers, and memory that does not grow with the
number of files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fakescope.cli import main
from fakescope.inference import Detector
from fakescope.inference import outputs
from fakescope.inference.outputs import PathSet, read_records
from test_detect import make_checkpoint

CLI = [sys.executable, "-m", "fakescope.cli"]


def write_folder(root: Path, n: int, size: int = 40, seed: int = 0) -> Path:
    """``n`` small PNGs split over 0_real/1_fake (the fake ones brighter), plus a note that is not media."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        cls = "1_fake" if i % 2 else "0_real"
        (root / cls).mkdir(parents=True, exist_ok=True)
        px = rng.integers(0, 200, (size, size, 3), dtype=np.uint8) + (40 if i % 2 else 0)
        Image.fromarray(px.astype(np.uint8)).save(root / cls / f"{i:05d}.png")
    (root / "notes.txt").write_text("not media\n")
    return root


def records(path: Path, fmt: str | None = None) -> list[dict]:
    """Records without their timing (the only field that differs between runs)."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in read_records(path, fmt)]


def run(args: list[str], timeout: int = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run(CLI + args, capture_output=True, text=True, timeout=timeout, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def kill_when(args: list[str], ready, timeout: float = 120) -> None:
    """Start ``fakescope ARGS``, and ``kill -9`` it (and the processes it started) once ``ready()`` holds."""
    proc = subprocess.Popen(CLI + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    end = time.monotonic() + timeout
    try:
        while not ready():
            assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < end, "the run made no progress"
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_folder(tmp_path_factory.mktemp("scale") / "imgs", 60)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "model")


@pytest.fixture(scope="module")
def one_process(folder, ckpt, tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("ref") / "one.jsonl"
    broken = folder / "1_fake" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # one input that fails, reported in its record
    assert main(["detect", str(folder), "-m", str(ckpt), "-o", str(out), "--batch-size", "4", "--device", "cpu",
                 "--progress", "off"]) == 0
    recs = records(out)
    # 60 images and the broken one scored or failed, then the note that is not media: a record saying it was skipped
    assert len(recs) == 62 and recs[-1]["kind"] == "skipped" and recs[-1]["path"].endswith("notes.txt")
    assert sum(1 for r in recs[:-1] if r["error"]) == 1
    return recs


# --------------------------------------------------------------------------------------------------- detect
def test_two_processes_detect_writes_the_records_of_one(folder, ckpt, one_process, tmp_path):
    out = tmp_path / "two.jsonl"
    p = run(["detect", str(folder), "-m", str(ckpt), "-o", str(out), "--batch-size", "4", "--device", "cpu",
             "--devices", "2", "--progress", "off"])
    assert records(out) == one_process  # same records, same scores, same order
    assert not (tmp_path / "two.jsonl.parts").exists()
    assert "61 input(s)" in p.stderr and "1 failed" in p.stderr and "skipped 1 file(s)" in p.stderr
    assert '1 record(s) with kind "skipped"' in p.stderr


def test_detect_killed_and_run_again_writes_every_input_once(folder, ckpt, one_process, tmp_path):
    out = tmp_path / "run.jsonl"
    args = ["detect", str(folder), "-m", str(ckpt), "-o", str(out), "--batch-size", "1", "--device", "cpu",
            "--progress", "off"]
    kill_when(args, lambda: lines(out) >= 10)
    assert 10 <= lines(out) < 61
    with open(out, "ab") as fh:  # a record torn by the kill: cut off and written again
        fh.write(b'{"path": "' + str(folder).encode() + b'/0_real/000')
    p = run(args)
    assert records(out) == one_process
    assert "were there from an earlier run" in p.stderr


def test_two_processes_killed_then_one_process_finishes(folder, ckpt, one_process, tmp_path):
    out = tmp_path / "run.jsonl"
    parts = tmp_path / "run.jsonl.parts"
    args = ["detect", str(folder), "-m", str(ckpt), "-o", str(out), "--batch-size", "1", "--device", "cpu",
            "--progress", "off"]
    kill_when(args + ["--devices", "2"], lambda: sum(lines(f) for f in parts.glob("*.jsonl")) >= 8)
    assert not out.exists() or lines(out) == 0  # killed before process 0 merged: the records are in the parts
    run(args)  # one process: skips what the parts hold, then merges them
    got = records(out)
    assert sorted(r["path"] for r in got) == sorted(r["path"] for r in one_process)  # every input once
    assert sorted(got, key=lambda r: r["path"]) == sorted(one_process, key=lambda r: r["path"])
    assert not parts.exists()


def test_another_models_output_is_not_continued(folder, ckpt, tmp_path, capsys):
    out = tmp_path / "a.jsonl"
    assert main(["detect", str(folder / "0_real"), "-m", str(ckpt), "-o", str(out), "--progress", "off"]) == 0
    other = make_checkpoint(tmp_path / "other", name="simple_cnn")
    assert main(["detect", str(folder / "0_real"), "-m", str(other), "-o", str(out), "--progress", "off"]) == 2
    assert "holds records of another run" in capsys.readouterr().err
    assert main(["detect", str(folder / "0_real"), "-m", str(other), "-o", str(out), "--overwrite",
                 "--progress", "off"]) == 0
    assert {r["model"] for r in records(out)} == {"simple_cnn"} and len(records(out)) == 30


def test_csv_and_parquet_outputs_resume_like_json_lines(folder, ckpt, one_process, tmp_path, monkeypatch):
    pytest.importorskip("pyarrow")
    monkeypatch.setattr(outputs, "PARQUET_ROWS", 16)  # several shards
    args = [str(folder), "-m", str(ckpt), "--batch-size", "4", "--device", "cpu", "--progress", "off"]
    pq = tmp_path / "r.parquet"
    assert main(["detect", *args, "-o", str(pq)]) == 0
    shards = sorted(pq.glob("part-*.parquet"))
    assert len(shards) == 4 and records(pq) == one_process
    shards[-1].unlink()  # as if the run had been killed before its last shard
    (pq / ".part-00003.parquet.tmp").write_bytes(b"PAR1 torn")
    assert main(["detect", *args, "-o", str(pq)]) == 0
    assert records(pq) == one_process and not list(pq.glob(".part-*"))
    csv_out = tmp_path / "r.csv"
    assert main(["detect", *args, "-o", str(csv_out)]) == 0
    text = csv_out.read_bytes()
    cut = text.rfind(b"\n", 0, len(text) // 2)
    csv_out.write_bytes(text[:cut + 25])  # half the rows and a torn one
    assert main(["detect", *args, "-o", str(csv_out)]) == 0
    got = records(csv_out)
    assert [r["path"] for r in got] == [r["path"] for r in one_process]
    assert [float(r["score"]) if r["score"] else None for r in got] == [r["score"] for r in one_process]


def test_input_workers_give_the_same_records_in_order(folder, ckpt, one_process, tmp_path):
    det = Detector.from_pretrained(ckpt, device="cpu", batch_size=4)
    got = [{k: v for k, v in r.items() if k != "seconds"}
           for r in det.predict_many([str(folder)], num_workers=2)]
    assert got == one_process


def test_path_set_finds_what_it_holds():
    held = [f"/data/{i}.png" for i in range(1000)] + ["caf\udce9.png"]  # a name that is not UTF-8
    s = PathSet(held)
    assert len(s) == 1001 and all(p in s for p in held)
    assert "/data/1000.png" not in s and "caf\\xe9.png" in s  # the name as Parquet stores it is the same key


# ----------------------------------------------------------------------------------------------------- eval
def test_two_processes_eval_gives_the_metrics_of_one(folder, ckpt, tmp_path):
    common = ["eval", str(ckpt), "--data", str(folder), "--batch-size", "4", "--num-workers", "0", "--device", "cpu"]
    run(common + ["--out", str(tmp_path / "one")])
    run(common + ["--out", str(tmp_path / "two"), "--devices", "2"])
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert one["sets"] == two["sets"] and one["sets"]["imgs"]["n"] == 60 and one["sets"]["imgs"]["skipped"] == 1
    assert (tmp_path / "one/scores/imgs.csv").read_text() == (tmp_path / "two/scores/imgs.csv").read_text()
    assert not (tmp_path / "two" / "scores" / ".partial").exists()


def test_eval_killed_and_run_again_gives_the_metrics_of_an_uninterrupted_run(ckpt, tmp_path):
    folder = write_folder(tmp_path / "imgs", 300, seed=3)
    common = ["eval", str(ckpt), "--data", str(folder), "--batch-size", "2", "--num-workers", "0", "--device", "cpu"]
    run(common + ["--out", str(tmp_path / "ref")])
    out = tmp_path / "run"
    partial = out / "scores" / ".partial"
    kill_when(common + ["--out", str(out)], lambda: sum(lines(f) for f in partial.glob("*.csv")) >= 12)
    assert not (out / "metrics.json").exists()
    p = run(common + ["--out", str(out)])
    kept = int(p.stdout.split("continuing a stopped run: ")[1].split()[0])
    assert 11 <= kept < 300  # the samples scored before the kill were not scored again
    ref = json.loads((tmp_path / "ref" / "metrics.json").read_text())
    got = json.loads((out / "metrics.json").read_text())
    assert got["sets"] == ref["sets"]
    assert (out / "scores/imgs.csv").read_text() == (tmp_path / "ref/scores/imgs.csv").read_text()


MEMORY_PROBE = """
import resource, sys
from fakescope.eval.evaluate import evaluate
evaluate(sys.argv[1], [sys.argv[2]], sys.argv[3], batch_size=256, num_workers=0, device="cpu", echo=lambda m: None,
         progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def test_eval_memory_does_not_grow_with_the_number_of_files(tmp_path):
    """20,000 files against 2,000: a 32 px model input is 12 KiB, so keeping the 18,000 extra inputs alive would
    add ~210 MiB; what may grow is a score, label and path per file (6 MiB measured)."""
    ckpt = make_checkpoint(tmp_path / "model", name="simple_cnn_tiny")
    big = tmp_path / "big"
    px = np.full((32, 32, 3), 128, np.uint8)
    for i in range(20_000):
        d = big / ("1_fake" if i % 2 else "0_real")
        d.mkdir(parents=True, exist_ok=True)
        px[0, 0, 0] = i % 256
        Image.fromarray(px).save(d / f"{i:05d}.png", compress_level=1)
    small = tmp_path / "small"
    for cls in ("0_real", "1_fake"):
        (small / cls).mkdir(parents=True)
        for f in sorted((big / cls).iterdir())[:1000]:
            os.link(f, small / cls / f.name)
    peak = {}
    for name in ("small", "big"):
        p = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(ckpt), str(tmp_path / name),
                            str(tmp_path / f"eval-{name}")], capture_output=True, text=True, timeout=600,
                           env=dict(os.environ, OMP_NUM_THREADS="2"))
        assert p.returncode == 0, p.stderr[-2000:]
        peak[name] = int(p.stdout.split()[-1])
    assert json.loads((tmp_path / "eval-big" / "metrics.json").read_text())["sets"]["big"]["n"] == 20_000
    assert peak["big"] - peak["small"] < 100, peak  # MiB


# -------------------------------------------------------------------------------------------------- prepare
def test_prepare_shards_run_at_once_then_merged_make_one_dataset_eval_reads(tmp_path):
    """docs/scale.md's job array in small: two shards at the same time, one run without the shard options (the
    merge step), then the dataset that train and eval read."""
    import re

    from conftest import MTCNN_MISSING
    from test_faces import HAVE_MTCNN, face_frames

    if not HAVE_MTCNN:
        pytest.skip(MTCNN_MISSING)
    from fakescope.data.datasets import load_samples
    from fakescope.media.video import write_video

    root = tmp_path / "videos"
    for rel, seed in (("0_real/a.mp4", 0), ("0_real/b.mp4", 1), ("1_fake/c.mp4", 2), ("1_fake/d.mp4", 3)):
        frames, _ = face_frames(8, seed=seed)
        write_video(root / rel, frames, fps=8)
    out = tmp_path / "data"
    common = ["prepare", "folder", "--root", str(root), "--out", str(out), "--num-frames", "4", "--size", "64",
              "--workers", "0", "--progress", "off"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    shards = [subprocess.Popen(CLI + common + ["--num-shards", "2", "--shard-index", str(i)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    logs = [p.communicate(timeout=300)[0] for p in shards]
    assert [p.returncode for p in shards] == [0, 0], logs
    merged = run(common)  # the merge step: every video is finished, so it only writes the manifests
    done = [re.search(r"^  units of work: (\d+) in this shard; (\d+) processed now, (\d+) already done$", log, re.M)
            for log in logs]
    assert all(done) and sum(int(m[2]) for m in done) == 4 and [m[3] for m in done] == ["0", "0"], logs
    # the merge step: the 4 videos (4 units) all skipped as finished, none processed again
    assert "  units of work: 4 in this shard; 0 processed now, 4 already done" in merged.stdout.splitlines(), \
        merged.stdout
    assert "  manifest rows: 16 (manifest.csv)" in merged.stdout.splitlines(), merged.stdout
    samples = load_samples(str(out / "manifest.csv"))
    assert len(samples) == 16 and len({s.video_id for s in samples}) == 4
    assert all((out / s.path).exists() or Path(s.path).exists() for s in samples)
    ckpt = make_checkpoint(tmp_path / "model")
    run(["eval", str(ckpt), "--data", str(out / "manifest.csv"), "--out", str(tmp_path / "eval"),
         "--num-workers", "0", "--device", "cpu"])
    got = json.loads((tmp_path / "eval" / "metrics.json").read_text())["sets"]
    assert next(iter(got.values()))["n"] == 16


def test_a_launcher_with_several_processes_needs_matching_devices(monkeypatch):
    from fakescope.errors import ConfigError
    from fakescope.utils.distributed import launch

    assert launch(1, 1).world == 1
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="--devices is 1"):
        launch(1, 1)
    with pytest.raises(ConfigError, match="at least 1"):
        launch(0, 1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_eval_and_detect_fix_the_allocators_mmap_threshold_unless_the_environment_does():
    probe = "from fakescope.utils.memory import return_freed_buffers as r; print(r())"
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    set_here = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert set_here.stdout.strip() == "True", set_here.stderr
    env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    left = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert left.stdout.strip() == "False", left.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="transparent huge pages")
def test_the_command_asks_torch_for_huge_pages_before_torch_is_imported_unless_the_environment_says():
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    cli = ("import os, sys\nfrom fakescope.cli import main\nbefore = 'torch' in sys.modules\n"
           "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\nprint(os.environ.get('THP_MEM_ALLOC_ENABLE'), before)")
    out = subprocess.run([sys.executable, "-c", cli], capture_output=True, text=True, env=env)
    assert out.stdout.splitlines()[-1] == "1 False", out.stderr  # set before torch was imported (it reads it once)
    late = "import torch\nfrom fakescope.utils.memory import huge_pages_for_large_tensors as h\nimport os\n" \
           "print(h(), os.environ.get('THP_MEM_ALLOC_ENABLE'))"
    out = subprocess.run([sys.executable, "-c", late], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "False None", out.stderr  # too late once torch is imported: left alone
    env["THP_MEM_ALLOC_ENABLE"] = "0"
    out = subprocess.run([sys.executable, "-c", cli], capture_output=True, text=True, env=env)
    assert out.stdout.splitlines()[-1] == "0 False", out.stderr  # the user's choice wins
