"""`fakescope serve` under hostile load, on this machine's loopback interface only.

    python benchmarks/serve_hostile.py                    # a tiny random checkpoint made here
    python benchmarks/serve_hostile.py --clients 200 --idle 70 --retry-seconds 30
    python benchmarks/serve_hostile.py --stall-requests 50 --stall-concurrency 8 --stall-workers 2

What it does, bounded in count and time, and then stops by itself:

1. starts `fakescope serve CHECKPOINT --host 127.0.0.1` in a child process (default limits: 1 worker process,
   queue 16, 256 connections, 10 s header timeout) and waits until its worker has loaded the model (`/healthz`
   `workers.ready == workers.of`);
2. baseline: --clients clients (default 200) each send one upload at the same instant; counts served (200),
   busy (503) and other answers;
3. attack: opens --idle TCP connections (default 70) that never send a byte, then the same burst of clients;
   checks that every 503 is JSON with `Retry-After`, and how many idle connections the server has closed
   after its header timeout;
4. the same burst again, each client honouring `Retry-After` until --retry-seconds have passed: how many are
   served in the end;
5. decompression bombs: a 4096x4096 H.264 video of a few hundred kB, a 13000x13000 PNG (under Pillow's own
   limit) and a 30000x30000 PNG; each must get a JSON 4xx (or be scored: the video's frames are scaled down to
   the pixel budget while they are decoded), never a 5xx; prints how long each took and the peak memory
   (VmHWM) of the worker process that decoded it;
6. stall: a second server, with --stall-workers worker processes (default 2), gets --stall-requests normal
   uploads (default 50, --stall-concurrency at a time, default 8) while a thread polls `GET /healthz` every
   50 ms; first without a bomb (baseline), then with the 4096x4096 H.264 video of step 5, the bomb that keeps a
   worker busiest (the two PNGs are refused from their headers in milliseconds; --stall-frames makes a longer
   video), sent 0.1 s before the normal uploads start.
   Records the statuses of the normal uploads, the bomb's status and seconds, and /healthz latency p50/p99/max.
   Two workers, because the question is whether one upload that keeps a decoder busy stalls the others: with
   one worker, the normal uploads could only queue behind the bomb (up to --timeout, then 504, by design);
   with two, one worker can be busy with the bomb while the other goes on scoring. /healthz is answered by the
   server's own process, which never decodes an upload, whatever the number of workers;
7. prints the server's and its workers' peak resident memory (VmHWM); the last two lines are the ratio of
   clients served under attack to clients served without it, and /healthz p99 with the bomb to without.

Exit status 1 when a 503 is not JSON with Retry-After, an answer is a 5xx other than 503, a bomb is not refused
with a 4xx (or scored), the server died, or in the stall phase (with or without the bomb) any of the normal
uploads was not answered 200, a /healthz poll failed, /healthz p99 was 1 s or more, or the bomb got no answer or
a 5xx other than 504 (its worker killed at --timeout). Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import (HOST, free_port, make_images, multipart, percentile, proc_mib, request,  # noqa: E402
                        stop_server, wait_ready, worker_pids)

import http.client  # noqa: E402


vm = proc_mib  # vm(pid, "VmRSS" | "VmHWM"): MiB


def workers_peak(pid: int) -> float:
    """The largest peak resident memory (VmHWM) among the worker processes of the server ``pid`` now running."""
    peaks = [v for v in (vm(w, "VmHWM") for w in worker_pids(pid)) if v == v]
    return max(peaks) if peaks else float("nan")


def post(port: int, name: str, data: bytes, timeout: float = 120.0) -> tuple[int, dict, dict]:
    """One upload; (status, JSON body or {}, headers). Status 0: no HTTP answer (connection refused or reset)."""
    body, ctype = multipart(name, data)
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("POST", "/v1/detect", body=body, headers={"Content-Type": ctype})
        resp = conn.getresponse()
        raw = resp.read()
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = {}
        return resp.status, payload, {k.lower(): v for k, v in resp.getheaders()}
    except OSError:
        return 0, {}, {}
    finally:
        conn.close()


def burst(port: int, clients: int, data: bytes, retry_seconds: float = 0.0) -> dict[str, object]:
    """``clients`` uploads released at once; with ``retry_seconds``, a busy client retries after Retry-After."""
    start = threading.Barrier(clients)
    results: list[tuple[int, dict, dict, int]] = [(0, {}, {}, 0)] * clients

    def client(i: int) -> None:
        start.wait()
        give_up = time.time() + retry_seconds
        tries = 0
        while True:
            tries += 1
            status, payload, headers = post(port, f"c{i}.png", data)
            if status != 503 or time.time() >= give_up:
                break
            time.sleep(float(headers.get("retry-after", "1") or 1))
        results[i] = (status, payload, headers, tries)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = [r[0] for r in results]
    busy = [r for r in results if r[0] == 503]
    return {"served": statuses.count(200), "busy": len(busy), "errors": len(statuses) - statuses.count(200) - len(busy),
            "other": sorted({s for s in statuses if s not in (200, 503)}),
            "busy_json": all(r[1].get("status") == 503 and "retry-after" in r[2] for r in busy),
            "tries": sum(r[3] for r in results), "seconds": time.perf_counter() - t0,
            "sample": next((f"{r[0]} {r[1].get('error', '')}"[:200] for r in results if r[0] not in (200, 503)), "")}


def png_bomb(side: int) -> bytes:
    """A grey PNG of side x side pixels, compressed row by row (little memory to make, a few hundred kB)."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (len(payload).to_bytes(4, "big") + kind + payload
                + zlib.crc32(kind + payload).to_bytes(4, "big"))

    z = zlib.compressobj(9)
    row = b"\0" * (side + 1)
    parts = [z.compress(row) for _ in range(side)] + [z.flush()]
    ihdr = side.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def video_bomb(path: Path, side: int = 4096, frames: int = 8) -> bytes:
    import numpy as np

    from fakescope.media.video import write_video

    write_video(path, [np.full((side, side, 3), 16 * i % 256, np.uint8) for i in range(frames)], fps=8,
                options={"crf": "51", "preset": "ultrafast"})
    return path.read_bytes()


def healthz(port: int, timeout: float = 5.0) -> tuple[int, dict]:
    try:
        status, body, _ = request(port, "GET", "/healthz", timeout=timeout)
        return status, json.loads(body)
    except (OSError, ValueError):
        return 0, {}


def stall(port: int, image: bytes, requests: int, concurrency: int, bomb: bytes | None, limit_s: float,
          interval: float = 0.05) -> dict[str, object]:
    """``requests`` normal uploads, ``concurrency`` at a time, while a thread polls /healthz every ``interval``
    seconds; with ``bomb``, that upload is sent (in its own thread) 0.1 s before the normal ones start. Uploads
    not started within ``limit_s`` are not sent (status -1)."""
    stop = threading.Event()
    polls: list[tuple[float, int, str]] = []  # seconds, status, what failed

    def poller() -> None:
        nxt = time.perf_counter()
        while not stop.is_set():
            t0 = time.perf_counter()
            status, health = healthz(port)
            fail = "" if status == 200 and health.get("status") == "ok" else f"status {status}"
            polls.append((time.perf_counter() - t0, status, fail))
            nxt += interval
            stop.wait(max(0.0, nxt - time.perf_counter()))

    deadline = time.time() + limit_s
    watcher = threading.Thread(target=poller, daemon=True)
    watcher.start()
    time.sleep(0.25)  # a few polls before any upload
    bomb_result: dict[str, object] = {}

    def send_bomb() -> None:
        t0 = time.perf_counter()
        status, payload, _ = post(port, "bomb.mp4", bomb, timeout=max(1.0, min(120.0, deadline - time.time())))
        bomb_result.update(status=status, seconds=time.perf_counter() - t0, start=t0, end=time.perf_counter(),
                           error=payload.get("error") or "")

    bomber = threading.Thread(target=send_bomb, daemon=True) if bomb is not None else None
    if bomber is not None:
        bomber.start()
        time.sleep(0.1)  # its upload (a few hundred kB over loopback) is in a worker by then
    t_start = time.perf_counter()

    def one(i: int) -> tuple[int, float, float]:
        remaining = deadline - time.time()
        if remaining <= 1.0:
            return -1, float("nan"), float("nan")
        t0 = time.perf_counter()
        status = post(port, f"n{i}.png", image, timeout=min(120.0, remaining))[0]
        return status, t0, time.perf_counter()

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - t_start  # the normal uploads'
    if bomber is not None:
        bomber.join(max(0.0, deadline - time.time()) + 1.0)
    time.sleep(0.25)  # and a few after
    stop.set()
    watcher.join(10)
    statuses = [r[0] for r in results]
    lat = [r[2] - r[1] for r in results if r[0] == 200]
    out: dict[str, object] = {
        "statuses": statuses, "ok": statuses.count(200), "not_sent": statuses.count(-1),
        "other": sorted({s for s in statuses if s != 200}), "p50": percentile(lat, 50), "max": max(lat, default=0.0),
        "wall": wall, "polls": len(polls), "poll_failures": [f for _, _, f in polls if f],
        "h50": percentile([p[0] for p in polls], 50), "h99": percentile([p[0] for p in polls], 99),
        "hmax": max((p[0] for p in polls), default=float("nan")), "bomb": bomb_result}
    if bomb_result.get("end"):  # how many normal uploads were in flight while the bomb was
        out["overlap"] = sum(1 for s, t0, t1 in results if s != -1 and t0 < bomb_result["end"]
                             and t1 > bomb_result["start"])
    return out


def start_server(ck: str, workers: int, args: argparse.Namespace, folder: Path, name: str):
    """``fakescope serve`` on a free port of 127.0.0.1: (process, port, log file, log path)."""
    port = free_port()
    cmd = [sys.executable, "-m", "fakescope.cli", "serve", ck, "--host", HOST, "--port", str(port), "--device", "cpu",
           "--threads", "1", "--workers", str(workers), "--max-upload-mb", str(args.max_upload_mb),
           "--header-timeout", str(args.header_timeout)]
    path = folder / f"{name}.log"
    log = open(path, "w")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), port, log, path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", help="checkpoint folder (default: a tiny random simple_cnn_tiny made here)")
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--idle", type=int, default=70)
    ap.add_argument("--retry-seconds", type=float, default=30.0)
    ap.add_argument("--header-timeout", type=float, default=10.0)
    ap.add_argument("--max-upload-mb", type=float, default=5.0)
    ap.add_argument("--no-bombs", action="store_true")
    ap.add_argument("--stall-requests", type=int, default=50, help="normal uploads in the stall phase (0: skip it)")
    ap.add_argument("--stall-concurrency", type=int, default=8)
    ap.add_argument("--stall-workers", type=int, default=2, help="worker processes of the stall phase's server")
    ap.add_argument("--stall-frames", type=int, default=8,
                    help="frames of the stall phase's 4096x4096 video bomb (default: the bomb of step 5; 64 frames, "
                         "about 4 MB, keep a worker about 3 times as long)")
    ap.add_argument("--stall-seconds", type=float, default=300.0,
                    help="uploads of a stall run not started after this long are not sent (and count as failed)")
    args = ap.parse_args()
    if not 1 <= args.clients <= 1000 or not 0 <= args.idle <= 1000:
        ap.error("--clients must be 1..1000 and --idle 0..1000")
    if (not 0 <= args.stall_requests <= 1000 or not 1 <= args.stall_concurrency <= 64
            or not 1 <= args.stall_workers <= 16 or not 1 <= args.stall_frames <= 240):
        ap.error("--stall-requests must be 0..1000, --stall-concurrency 1..64, --stall-workers 1..16 and "
                 "--stall-frames 1..240")

    import torch

    tmp = tempfile.TemporaryDirectory(prefix="fakescope-hostile-")
    folder = Path(tmp.name)
    ck = args.checkpoint
    if ck is None:
        from fakescope.models import create_model
        from fakescope.zoo.checkpoint import save

        torch.manual_seed(0)
        ck = str(save(create_model("simple_cnn_tiny").eval(), folder / "ck"))
    image = make_images(1, 128)[0][1]
    video = video_bomb(folder / "bomb.mp4")
    server, port, log, log_path = start_server(ck, 1, args, folder, "server")
    ok = True
    idle: list[socket.socket] = []
    stall_server = slog = None
    try:
        if wait_ready(port, server, log_path) is None:
            return 1
        if post(port, "warm.png", image, timeout=30)[0] != 200:
            print("the server did not score a first upload:\n" + log_path.read_text()[-3000:])
            return 1
        workers = worker_pids(server.pid)
        print(f"server pid {server.pid} on http://{HOST}:{port} (1 worker process, pid {workers}); {args.clients} "
              f"clients, {args.idle} idle connections; RSS at start: server {vm(server.pid, 'VmRSS'):.0f} MiB, "
              f"worker {sum(vm(w, 'VmRSS') for w in workers):.0f} MiB")

        base = burst(port, args.clients, image)
        print(f"\nbaseline, no idle connections: served {base['served']}, 503 {base['busy']}, errors {base['errors']} "
              f"{base['other'] or ''} in {base['seconds']:.1f} s; 503s JSON with Retry-After: {base['busy_json']}")

        for _ in range(args.idle):
            s = socket.create_connection((HOST, port), timeout=5)
            idle.append(s)
        attack = burst(port, args.clients, image)
        print(f"with {args.idle} idle connections: served {attack['served']}, 503 {attack['busy']}, errors "
              f"{attack['errors']} {attack['other'] or ''} in {attack['seconds']:.1f} s; 503s JSON with Retry-After: "
              f"{attack['busy_json']}")
        for r in (base, attack):
            if r["sample"]:
                print(f"  an error: {r['sample']}")
        time.sleep(max(args.header_timeout + 1.0 - attack["seconds"], 0.0))
        closed = 0
        for s in idle:
            s.settimeout(0.5)
            try:
                closed += s.recv(1) == b""
            except (socket.timeout, OSError):
                pass
        print(f"idle connections closed by the server after its {args.header_timeout:g} s header timeout: "
              f"{closed}/{len(idle)}")
        for _ in range(args.idle):  # a fresh idle crowd for the retrying clients
            idle.append(socket.create_connection((HOST, port), timeout=5))
        retry = burst(port, args.clients, image, retry_seconds=args.retry_seconds)
        print(f"clients retrying after Retry-After for up to {args.retry_seconds:g} s: served {retry['served']}, "
              f"503 {retry['busy']}, errors {retry['errors']} {retry['other'] or ''} ({retry['tries']} requests, "
              f"{retry['seconds']:.1f} s)")
        ok &= all(r["busy_json"] and not r["errors"] for r in (base, attack, retry))
        ok &= closed == args.idle
        for s in idle:
            s.close()
        idle.clear()

        if not args.no_bombs:
            print("\ndecompression bombs (upload limit "
                  f"{args.max_upload_mb:g} MB; peak RSS of the worker process that decoded it):")
            bombs = [("4096x4096 H.264", "bomb.mp4", video),
                     ("13000x13000 PNG", "bomb13k.png", png_bomb(13000)),
                     ("30000x30000 PNG", "bomb30k.png", png_bomb(30000))]
            for label, name, data in bombs:
                before = workers_peak(server.pid)
                t0 = time.perf_counter()
                status, payload, _ = post(port, name, data)
                secs = time.perf_counter() - t0
                fine = 400 <= status < 500 or status == 200
                ok &= fine
                print(f"  {label:<16} {len(data) / 1024:7.0f} kB -> {status} {'ok ' if fine else 'BAD'} in "
                      f"{secs:5.2f} s, peak RSS {before:.0f} -> {workers_peak(server.pid):.0f} MiB  "
                      f"{(payload.get('error') or 'scored')[:110]}")
        alive = server.poll() is None and post(port, "after.png", image, timeout=10)[0] == 200
        ok &= alive
        status, health = healthz(port)
        print(f"\nserver alive at the end: {'yes' if alive else 'NO'}; workers {health.get('workers')}; peak RSS over "
              f"the run: server process {vm(server.pid, 'VmHWM'):.0f} MiB, worker {workers_peak(server.pid):.0f} MiB")
        stop_server(server)
        log.close()

        runs: dict[str, dict] = {}
        if args.stall_requests:
            bomb = video if args.stall_frames == 8 else video_bomb(folder / "stall.mp4", frames=args.stall_frames)
            stall_server, sport, slog, slog_path = start_server(ck, args.stall_workers, args, folder, "stall")
            if wait_ready(sport, stall_server, slog_path) is None:
                return 1
            post(sport, "warm.png", image, timeout=30)
            print(f"\nstall: server pid {stall_server.pid} with {args.stall_workers} worker processes; "
                  f"{args.stall_requests} uploads, {args.stall_concurrency} at a time, /healthz polled every 50 ms")
            named = f"with the 4096x4096 H.264 bomb ({args.stall_frames} frames)"
            for label, sent in (("without a bomb", None), (named, bomb)):
                r = stall(sport, image, args.stall_requests, args.stall_concurrency, sent, args.stall_seconds)
                runs[label] = r
                fine = (r["ok"] == args.stall_requests and not r["poll_failures"] and r["h99"] < 1.0)
                b = r["bomb"]
                if sent is not None:  # an answer, and no 5xx but 504 (its worker killed at --timeout)
                    fine &= b.get("status", 0) != 0 and (b.get("status", 0) < 500 or b.get("status") == 504)
                ok &= fine
                print(f"  {label}: {r['ok']}/{args.stall_requests} answered 200"
                      + (f" (other statuses {r['other']}; -1: not sent, time limit)" if r["other"] else "")
                      + f" in {r['wall']:.2f} s, p50 {r['p50'] * 1000:.0f} ms, max {r['max'] * 1000:.0f} ms; "
                      f"/healthz {r['polls']} polls, p50 {r['h50'] * 1000:.1f} ms, p99 {r['h99'] * 1000:.1f} ms, "
                      f"max {r['hmax'] * 1000:.1f} ms, failed {len(r['poll_failures'])}  {'ok' if fine else 'BAD'}")
                if sent is not None:
                    print(f"    bomb ({len(sent) / 1024:.0f} kB): {b.get('status', 'no answer')} in "
                          f"{b.get('seconds', float('nan')):.2f} s ({(b.get('error') or 'scored')[:100]}); "
                          f"normal uploads in flight meanwhile: {r.get('overlap', 0)}")
                if r["poll_failures"]:
                    print(f"    /healthz failures: {sorted(set(r['poll_failures']))}")
            alive = stall_server.poll() is None and post(sport, "after.png", image, timeout=10)[0] == 200
            ok &= alive
            status, health = healthz(sport)
            print(f"  stall server alive at the end: {'yes' if alive else 'NO'}; workers {health.get('workers')}; "
                  f"peak RSS: server process {vm(stall_server.pid, 'VmHWM'):.0f} MiB, largest worker "
                  f"{workers_peak(stall_server.pid):.0f} MiB")
            stop_server(stall_server)
            slog.close()

        print(f"\nresult: {'ok' if ok else 'FAILED'}")
        if runs:
            a, b = runs.values()
            print(f"/healthz p99 with the bomb / without: {b['h99'] / a['h99']:.2f}")
        ratio = attack["served"] / base["served"] if base["served"] else float("nan")
        print(f"served under attack / served without: {ratio:.2f}")
        return 0 if ok else 1
    finally:
        for s in idle:
            s.close()
        stop_server(server)
        if stall_server is not None:
            stop_server(stall_server)
        for f in (log, slog):
            if f is not None and not f.closed:
                f.close()
        tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
