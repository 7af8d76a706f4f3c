"""`fakescope serve` under hostile load, on this machine's loopback interface only.

    python benchmarks/serve_hostile.py                    # a tiny random checkpoint made here
    python benchmarks/serve_hostile.py --clients 200 --idle 70 --retry-seconds 30

What it does, bounded in count and time, and then stops by itself:

1. starts `fakescope serve CHECKPOINT --host 127.0.0.1` in a child process (default limits: 1 worker, queue 16,
   256 connections, 10 s header timeout);
2. baseline: --clients clients (default 200) each send one upload at the same instant; counts served (200),
   busy (503) and other answers;
3. attack: opens --idle TCP connections (default 70) that never send a byte, then the same burst of clients;
   checks that every 503 is JSON with `Retry-After`, and how many idle connections the server has closed
   after its header timeout;
4. the same burst again, each client honouring `Retry-After` until --retry-seconds have passed: how many are
   served in the end;
5. decompression bombs: a 4096x4096 H.264 video of a few kB, a 13000x13000 PNG (under Pillow's own limit) and a
   30000x30000 PNG; each must get a JSON 413 or 422 (never 500) and the server's peak memory stays bounded;
6. prints the counts and the server's peak resident memory (VmHWM); the last line is the ratio of clients served
   under attack to clients served without it.

Exit status 1 when a 503 is not JSON with Retry-After, an answer is a 5xx other than 503, a bomb is not refused
with a 4xx, or the server died. Only 127.0.0.1 is ever contacted.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import HOST, free_port, make_images, multipart, stop_server  # noqa: E402

import http.client  # noqa: E402


def vm(pid: int, key: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


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

    write_video(path, [np.full((side, side, 3), 16 * i, np.uint8) for i in range(frames)], fps=8,
                options={"crf": "51", "preset": "ultrafast"})
    return path.read_bytes()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", help="checkpoint folder (default: a tiny random simple_cnn_tiny made here)")
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--idle", type=int, default=70)
    ap.add_argument("--retry-seconds", type=float, default=30.0)
    ap.add_argument("--header-timeout", type=float, default=10.0)
    ap.add_argument("--max-upload-mb", type=float, default=5.0)
    ap.add_argument("--no-bombs", action="store_true")
    args = ap.parse_args()
    if not 1 <= args.clients <= 1000 or not 0 <= args.idle <= 1000:
        ap.error("--clients must be 1..1000 and --idle 0..1000")

    import torch

    tmp = tempfile.TemporaryDirectory(prefix="fakescope-hostile-")
    ck = args.checkpoint
    if ck is None:
        from fakescope.models import create_model
        from fakescope.models.checkpoint import save

        torch.manual_seed(0)
        ck = str(save(create_model("simple_cnn_tiny").eval(), Path(tmp.name) / "ck"))
    image = make_images(1, 128)[0][1]
    port = free_port()
    cmd = [sys.executable, "-m", "fakescope.cli", "serve", ck, "--host", HOST, "--port", str(port), "--device", "cpu",
           "--threads", "1", "--max-upload-mb", str(args.max_upload_mb), "--header-timeout", str(args.header_timeout)]
    log = open(Path(tmp.name) / "server.log", "w")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    ok = True
    idle: list[socket.socket] = []
    try:
        deadline = time.time() + 120
        while post(port, "warm.png", image, timeout=5)[0] != 200:
            if server.poll() is not None or time.time() > deadline:
                print("the server did not start:\n" + (Path(tmp.name) / "server.log").read_text()[-3000:])
                return 1
            time.sleep(0.3)
        print(f"server pid {server.pid} on http://{HOST}:{port}; {args.clients} clients, {args.idle} idle "
              f"connections; RSS at start {vm(server.pid, 'VmRSS'):.0f} MiB")

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

        if not args.no_bombs:
            print("\ndecompression bombs (upload limit "
                  f"{args.max_upload_mb:g} MB):")
            bombs = [("4096x4096 H.264", "bomb.mp4", video_bomb(Path(tmp.name) / "bomb.mp4")),
                     ("13000x13000 PNG", "bomb13k.png", png_bomb(13000)),
                     ("30000x30000 PNG", "bomb30k.png", png_bomb(30000))]
            for label, name, data in bombs:
                before = vm(server.pid, "VmHWM")
                status, payload, _ = post(port, name, data)
                fine = 400 <= status < 500 or status == 200
                ok &= fine
                print(f"  {label:<16} {len(data) / 1024:7.0f} kB -> {status} {'ok ' if fine else 'BAD'} "
                      f"peak RSS {before:.0f} -> {vm(server.pid, 'VmHWM'):.0f} MiB  "
                      f"{(payload.get('error') or 'scored')[:110]}")
        alive = server.poll() is None and post(port, "after.png", image, timeout=10)[0] == 200
        ok &= alive
        print(f"\nserver alive at the end: {'yes' if alive else 'NO'}; peak RSS over the run "
              f"{vm(server.pid, 'VmHWM'):.0f} MiB")
        ratio = attack["served"] / base["served"] if base["served"] else float("nan")
        print(f"served under attack / served without: {ratio:.2f}")
        return 0 if ok else 1
    finally:
        for s in idle:
            s.close()
        stop_server(server)
        log.close()
        tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
