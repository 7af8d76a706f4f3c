"""``prepare --workers 2`` killed (SIGKILL) or stopped (SIGTERM) mid-video: no process outlives the run, the
stop is clean and says so, and the next run removes what a killed one left and completes the manifest."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import MTCNN_MISSING
from test_faces import HAVE_MTCNN, face_frames

pytestmark = [pytest.mark.skipif(not HAVE_MTCNN, reason=MTCNN_MISSING),
              pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="needs Linux's parent-death signal")]


@pytest.fixture(scope="module")
def face_videos(tmp_path_factory) -> Path:
    from fakescope.media.video import write_video

    root = tmp_path_factory.mktemp("signals") / "videos"
    for i in range(4):
        frames, _ = face_frames(20, seed=i)
        write_video(root / ("0_real" if i % 2 else "1_fake") / f"v{i}.mp4", frames, fps=10)
    return root


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def alive(pids: set[int]) -> set[int]:
    left = set()
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] != "Z":
                    left.add(p)
        except OSError:
            pass
    return left


def start_prepare(root: Path, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "fakescope.cli", "prepare", "folder", "--root", str(root), "--out", str(out),
           "--workers", "2", "--num-frames", "20", "--progress", "off"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_for_work(proc: subprocess.Popen, out: Path, timeout: float = 120.0) -> set[int]:
    """Wait until a worker writes crops (a temporary folder exists); the run's processes then."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
        if any(p.name.startswith(".") and ".tmp-" in p.name for p in (out / "crops").rglob("*")):
            procs = descendants(proc.pid)
            if len(procs) >= 3:  # the fork server and two workers (and multiprocessing's resource tracker)
                return procs
        time.sleep(0.05)
    pytest.fail("prepare's workers never started writing crops")


def wait_gone(pids: set[int], timeout: float = 15.0) -> set[int]:
    deadline = time.time() + timeout
    while alive(pids) and time.time() < deadline:
        time.sleep(0.1)
    return alive(pids)


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_sigkill_leaves_no_orphan_and_the_rerun_cleans_up(face_videos, tmp_path, outcomes):
    out = tmp_path / "out"
    proc = start_prepare(face_videos, out)
    procs = wait_for_work(proc, out)
    proc.kill()
    proc.wait(30)
    left = wait_gone(procs)
    for p in left:  # do not leave them running for the rest of the suite, then fail
        os.kill(p, signal.SIGKILL)
    assert not left, f"processes outlived a killed prepare: {sorted(left)}"
    outcomes.append(("prepare --workers 2 killed with SIGKILL", "prepare",
                     "fork server and workers die with it (parent-death signal)"))
    debris = [p for p in (out / "crops").rglob("*") if ".tmp-" in p.name]
    from fakescope.cli import main

    assert main(["prepare", "folder", "--root", str(face_videos), "--out", str(out), "--workers", "0",
                 "--num-frames", "20", "--progress", "off"]) == 0
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name], "a temporary folder survived the rerun"
    pngs = list((out / "crops").rglob("*.png"))
    assert len(pngs) == len(rows(out / "manifest.csv")) == 4 * 20
    outcomes.append(("crops of a killed prepare (temporary folders)", "prepare",
                     f"{len(debris)} left by the kill, removed by the rerun; PNG files = manifest rows"))


def test_sigterm_stops_cleanly_with_a_message(face_videos, tmp_path, outcomes):
    out = tmp_path / "out"
    proc = start_prepare(face_videos, out)
    procs = wait_for_work(proc, out)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=60)[0].decode(errors="replace")
    assert proc.returncode == 128 + signal.SIGTERM, output
    assert "stopped by SIGTERM" in output and "redone by the next run" in output, output
    left = wait_gone(procs)
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert not left, f"processes outlived a stopped prepare: {sorted(left)}"
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name], "the workers left temporary folders"
    done = rows(out / "manifest.csv")
    assert len(list((out / "crops").rglob("*.png"))) == len(done)  # what finished is written, nothing more
    outcomes.append(("prepare --workers 2 stopped with SIGTERM", "prepare",
                     f"exit {proc.returncode}, a message; finished videos written, no temporary folder left"))
