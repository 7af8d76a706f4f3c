"""Distributed training, proven: two CPU processes (gloo) launched by torchrun train one epoch."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(300)
def test_two_process_ddp_on_cpu(tmp_path, tiny_synth):
    cfg = tmp_path / "ddp.yaml"
    cfg.write_text(f"""
name: ddp
output_dir: {tmp_path}
model: {{name: simple_cnn_tiny}}
data: {{root: {tiny_synth}, train: train, val: val, batch_size: 16, num_workers: 0}}
trainer: {{max_epochs: 1, accelerator: cpu, devices: 2, strategy: ddp, progress_bar: false}}
""")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
        "--master_addr=127.0.0.1", f"--master_port={free_port()}", "-m", "fakescope.cli", "--verbose", "train", str(cfg),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=280, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    run = tmp_path / "ddp"
    with open(run / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    # 96 training images, batch 16 per process, 2 processes: 3 optimizer steps (one process alone takes 6)
    assert len(rows) == 1 and int(rows[0]["step"]) == 3
    # validation metrics were gathered from both ranks: every one of the 48 val images scored once
    assert float(rows[0]["val/n"]) == 48 and 0.0 <= float(rows[0]["val/auc"]) <= 1.0
    meta = json.loads((run / "model" / "config.json").read_text())
    assert meta["training"]["epochs_run"] == 1
    log = out.stdout + out.stderr
    assert "distributed_backend=gloo" in log and "Starting with 2 processes" in log
