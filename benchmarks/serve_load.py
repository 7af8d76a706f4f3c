"""Load and bad-input test of `fakescope serve` on this machine's loopback interface only.

    python benchmarks/serve_load.py                       # a tiny random checkpoint made here
    python benchmarks/serve_load.py --checkpoint runs/quickstart/model --requests 1000 --concurrency 8

What it does, bounded in count and time, and then stops by itself:

1. starts `fakescope serve CHECKPOINT --host 127.0.0.1` in a child process on a free port, and waits until its
   worker processes have loaded the model (`/healthz` `workers.ready == workers.of`);
2. baseline: scores the same images in this process with `Detector.predict` (no HTTP), for the overhead ratio;
3. sends --requests uploads (default 1,000), --concurrency at a time (default 8), cycling through a few
   PNG and JPEG images, and records each request's latency and status, and the service's resident memory
   (RSS of the server's process plus its worker processes, read from /proc) when each request completes;
4. sends a zero-byte upload, a file that is no media, a truncated PNG and an upload over the size limit,
   checks that each gets a 4xx with a JSON body whose `error` says what is wrong, and that /healthz still
   answers afterwards;
5. prints p50/p95 latency, the count of errors other than deliberate 503s (busy), and the mean RSS over
   the first and the last hundred requests; the last line is the memory ratio (last / first hundred).

Exit status 1 when a request failed (other than 503), a bad-input check failed or the server died.
Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

HOST = "127.0.0.1"  # loopback only, never anything else


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def proc_mib(pid: int, key: str = "VmRSS") -> float:
    """``key`` (VmRSS, VmHWM) of one process from /proc, in MiB; NaN when it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def worker_pids(pid: int) -> list[int]:
    """The service's scoring worker processes: the children of ``pid`` started by multiprocessing's spawn (not
    its resource tracker)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid and b"spawn_main" in (stat.parent / "cmdline").read_bytes():
                out.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            pass
    return sorted(out)


def rss_mib(pid: int, workers: list[int] | None = None) -> float:
    """Resident memory of the service: the server's process and its worker processes (``workers``, or found)."""
    pids = [pid] + (worker_pids(pid) if workers is None else workers)
    values = [proc_mib(p) for p in pids]
    return sum(v for v in values if v == v) if values[0] == values[0] else float("nan")


def wait_ready(port: int, server: subprocess.Popen, log_path: Path, limit_s: float = 300.0) -> dict | None:
    """Wait until /healthz answers and all worker processes have loaded the model (``workers.ready ==
    workers.of``); the /healthz answer, or ``None`` (after printing why) when the server ended, a worker could not
    start, or ``limit_s`` passed."""
    deadline = time.time() + limit_s
    health: dict = {}
    while True:
        try:
            status, body, _ = request(port, "GET", "/healthz", timeout=2)
            if status == 200:
                health = json.loads(body)
                workers = health.get("workers")
                if workers is None or workers.get("ready") == workers.get("of"):
                    return health
                if workers.get("failure"):
                    print(f"a scoring worker could not start: {workers['failure']}")
                    return None
        except (OSError, ValueError):
            pass
        if server.poll() is not None or time.time() > deadline:
            print(f"the server did not become ready within {limit_s:g} s (last /healthz: {health or 'none'}):\n"
                  + log_path.read_text()[-3000:])
            return None
        time.sleep(0.2)


def multipart(name: str, data: bytes, ctype: str = "application/octet-stream") -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: {ctype}\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def request(port: int, method: str, path: str, body: bytes | None = None, ctype: str | None = None,
            timeout: float = 60.0) -> tuple[int, bytes, float]:
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = {"Content-Type": ctype} if ctype else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, data, time.perf_counter() - t0
    finally:
        conn.close()


def make_images(n: int, size: int, seed: int = 0) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        base = rng.uniform(0, 255, (size // 8, size // 8, 3)).astype(np.uint8)
        img = Image.fromarray(base).resize((size, size), Image.Resampling.BICUBIC)
        arr = np.clip(np.asarray(img, dtype=np.int16) + rng.integers(-8, 9, (size, size, 3)), 0, 255)
        buf = io.BytesIO()
        fmt = "PNG" if i % 2 == 0 else "JPEG"
        Image.fromarray(arr.astype(np.uint8)).save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        out.append((f"img{i}.{fmt.lower()}", buf.getvalue()))
    return out


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def stop_server(server: subprocess.Popen) -> None:
    """Stop the service's process: SIGTERM, then SIGKILL after 15 s."""
    server.terminate()
    try:
        server.wait(15)
    except subprocess.TimeoutExpired:
        server.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", help="checkpoint folder (default: a tiny random simple_cnn_tiny made here)")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=1, help="server: requests scored at once")
    ap.add_argument("--queue", type=int, default=16, help="server: requests waiting beyond those")
    ap.add_argument("--max-upload-mb", type=float, default=5.0)
    ap.add_argument("--max-seconds", type=float, default=900.0, help="stop the load phase after this long")
    ap.add_argument("--baseline", type=int, default=100, help="in-process predictions for the baseline")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads, server and baseline alike")
    args = ap.parse_args()
    if not 1 <= args.concurrency <= 64 or not 1 <= args.requests <= 100_000:
        ap.error("--concurrency must be 1..64 and --requests 1..100000")

    import torch

    torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory(prefix="fakescope-load-")
    ck = args.checkpoint
    if ck is None:
        from fakescope.zoo.checkpoint import save
        from fakescope.models import create_model

        torch.manual_seed(0)
        ck = str(save(create_model("simple_cnn_tiny").eval(), Path(tmp.name) / "ck"))
    images = make_images(8, args.image_size)

    # ---- baseline: the same scoring in this process, no HTTP
    from fakescope.inference import Detector

    det = Detector.from_pretrained(ck, device="cpu")
    decoded = [Image.open(io.BytesIO(b)).convert("RGB") for _, b in images]
    det.predict(decoded[0])
    base = []
    for i in range(args.baseline):
        t0 = time.perf_counter()
        rec = det.predict(Image.open(io.BytesIO(images[i % len(images)][1])))
        base.append(time.perf_counter() - t0)
        if rec["error"]:
            print(f"baseline prediction failed: {rec['error']}")
            return 1
    del det

    # ---- the server, loopback only
    port = free_port()
    cmd = [sys.executable, "-m", "fakescope.cli", "serve", ck, "--host", HOST, "--port", str(port), "--device", "cpu",
           "--workers", str(args.workers), "--queue", str(args.queue), "--max-upload-mb", str(args.max_upload_mb), "--threads", str(args.threads)]
    log = open(Path(tmp.name) / "server.log", "w")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    ok = True
    try:
        if wait_ready(port, server, Path(tmp.name) / "server.log") is None:  # the workers have loaded the model
            return 1
        workers = worker_pids(server.pid)
        print(f"server pid {server.pid} on http://{HOST}:{port}  model {ck}; worker processes {workers}")
        print(f"load: {args.requests} requests, {args.concurrency} at a time, {len(images)} images of "
              f"{args.image_size} px (PNG and JPEG); server workers {args.workers}, queue {args.queue}, "
              f"torch threads {args.threads}")

        results: list[tuple[int, int, float, float]] = []  # index, status, seconds, server RSS after
        stop_at = time.time() + args.max_seconds

        def one(i: int):
            if time.time() > stop_at:
                return i, -1, 0.0, float("nan")
            name, data = images[i % len(images)]
            body, ctype = multipart(name, data)
            try:
                status, _, secs = request(port, "POST", "/v1/detect", body, ctype)
            except OSError:
                status, secs = 0, float("nan")
            return i, status, secs, rss_mib(server.pid, workers)

        t_start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            results = list(pool.map(one, range(args.requests)))
        wall = time.perf_counter() - t_start

        results.sort()
        statuses = [s for _, s, _, _ in results]
        lat = [t for _, s, t, _ in results if s == 200]
        busy = statuses.count(503)
        skipped = statuses.count(-1)
        errors = [s for s in statuses if s not in (200, 503, -1)]
        first = [r for _, s, _, r in results[:100] if s != -1]
        last = [r for _, s, _, r in results[-100:] if s != -1]

        # ---- bad input: each a 4xx with a JSON error, and the server stays up
        print("\nbad input:")
        good_png = images[0][1]
        cases = [("zero-byte upload", "empty.png", b""),
                 ("non-media file", "notes.png", b"this is a text file, not an image\n" * 20),
                 ("truncated image", "cut.png", good_png[: len(good_png) // 3]),
                 ("oversized upload", "big.png", good_png + b"\0" * int((args.max_upload_mb + 1) * 1024 * 1024))]
        for label, name, data in cases:
            body, ctype = multipart(name, data, "image/png")
            try:
                status, payload, _ = request(port, "POST", "/v1/detect", body, ctype)
                msg = json.loads(payload).get("error")
            except (OSError, ValueError) as exc:
                status, msg = 0, f"no JSON answer ({exc})"
            fine = 400 <= status < 500 and bool(msg)
            ok &= fine
            print(f"  {label:<18} -> {status} {'ok ' if fine else 'BAD'} {msg}")
        try:
            status, body, _ = request(port, "GET", "/healthz", timeout=5)
            health = json.loads(body) if status == 200 else {}
        except (OSError, ValueError):
            status, health = 0, {}
        alive = server.poll() is None and status == 200
        ok &= alive
        print(f"  server still up after bad input: {'yes' if alive else 'NO'}; workers {health.get('workers')}, "
              f"processes {'unchanged' if worker_pids(server.pid) == workers else 'CHANGED'}")

        print("\nresults:")
        print(f"  completed {len(lat)} ok, {busy} busy (503, deliberate), {len(errors)} errors"
              + (f" (statuses {sorted(set(errors))})" if errors else "")
              + (f", {skipped} not sent (time limit)" if skipped else "") + f" in {wall:.1f} s "
              f"({len(lat) / wall:.1f} requests/s)")
        print(f"  latency p50 {percentile(lat, 50) * 1000:.1f} ms, p95 {percentile(lat, 95) * 1000:.1f} ms "
              f"(at concurrency {args.concurrency}, queueing included)")
        print(f"  in-process baseline (Detector.predict, no HTTP, one at a time): p50 "
              f"{percentile(base, 50) * 1000:.1f} ms, p95 {percentile(base, 95) * 1000:.1f} ms")
        mf, ml = statistics.fmean(first), statistics.fmean(last)
        print(f"  service RSS (server + {len(workers)} worker process(es)): first hundred requests {mf:.1f} MiB, "
              f"last hundred {ml:.1f} MiB "
              f"(max over the run {max(r for *_, r in results if r == r):.1f} MiB)")
        ok &= not errors
        print(f"  p50 ratio service / in-process: {percentile(lat, 50) / percentile(base, 50):.2f}")
        print(f"memory ratio last / first hundred: {ml / mf:.3f}")
        return 0 if ok else 1
    finally:
        stop_server(server)
        log.close()
        tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
