"""Micro-batching in `fakescope serve`: throughput and latency with and without it, on this machine's loopback only.

    python benchmarks/serve_batch.py                          # fssnet_tiny, random weights, 16 clients
    python benchmarks/serve_batch.py --model simple_cnn --rounds 2    # a model batching hardly helps on a CPU
    python benchmarks/serve_batch.py --measure npr_tiny,simple_cnn,npr   # their batch 1 vs 8 forward times too

The default model, fssnet_tiny, is the registered image model without a face stage (so the service batches it)
whose forward pass costs the most per image at batch 1 and shrinks the most at batch 8 on a CPU (about 6x): a
small model whose cost is mostly per call. Full-size models are bound by arithmetic on a CPU and gain little or
nothing per image from batching (step 2 with --measure shows it), so on a CPU micro-batching pays for small
models; face-stage models and videos are scored one at a time by the service.

What it does, bounded in count and then stops by itself:

1. prints the CPU model (/proc/cpuinfo), the load average (/proc/loadavg) and the command;
2. saves a checkpoint of --model with random weights (`fakescope.zoo.checkpoint.save`), and measures the model's
   per-image time at batch 1 and at batch --max-batch in this process (also for the --measure models): batching
   can only pay where this shrinks;
3. starts two servers, `fakescope serve CHECKPOINT --host 127.0.0.1` with the same options but `--max-batch 1`
   (the baseline: batching off) and `--max-batch N --max-delay-ms D` (batching on), and waits until each worker
   has loaded the model;
4. one client: --single requests to each server, alternately, one at a time (the same images to both): p50 and
   p99 latency, the latency batching adds, and the largest difference between the two servers' scores of the
   same image. The added latency is taken at the 10th percentile (p10 on minus p10 off): a wait for a batch
   would shift every request's latency, the 10th percentile included, while other work on a shared machine
   delays the two servers' processes unevenly for seconds at a time and moves p50 by more than the delay in
   either direction (the p50 difference is printed too);
5. --clients concurrent clients (default 16), each sending its next request when its last is answered:
   --rounds rounds of --per-round requests per server, alternating baseline and batched rounds so that other
   work on the machine weighs on both alike: throughput (requests/s), p50 and p99 latency, the batches the
   batched server formed (its /healthz);
6. prints the table; the last line is the throughput ratio (batched / baseline) at --clients clients.

Goals (exit status 1 naming each one missed): throughput ratio >= --goal (2.0); one client: added latency (p10)
<= --max-delay-ms; scores equal (within 1e-6) batched and not; every request answered 200; both servers alive.
Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_model  # noqa: E402
from serve_load import (HOST, free_port, make_images, multipart, percentile, request,  # noqa: E402
                        stop_server, wait_ready, worker_pids)

DEFAULT_MODEL = "fssnet_tiny"




def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (from /proc; a process that has gone counts 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    import resource

    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def model_times(name: str, batch: int, seconds: float = 2.0) -> tuple[float, float, int, bool]:
    """Per-image forward time (s) of registered model ``name`` (random weights) at batch 1 and ``batch``, its input
    size, and whether it has a face stage (the service scores those one image at a time)."""
    import torch

    from fakescope.models import create_model

    model = create_model(name).eval()
    size = model.preprocess.input_size
    out = []
    with torch.inference_mode():
        for b in (1, batch):
            x = torch.randint(0, 256, (b, 3, size, size), dtype=torch.uint8)
            model.predict_proba(x)
            n, t0 = 0, time.perf_counter()
            while n < 3 or time.perf_counter() - t0 < seconds:
                model.predict_proba(x)
                n += 1
            out.append((time.perf_counter() - t0) / n / b)
    return out[0], out[1], size, model.preprocess.face is not None


def start_server(ck: str, args, max_batch: int, folder: Path, label: str):
    port = free_port()
    cmd = [sys.executable, "-m", "fakescope.cli", "serve", ck, "--host", HOST, "--port", str(port), "--device",
           "cpu", "--workers", str(args.workers), "--queue", str(max(args.queue, args.clients)),
           "--threads", str(args.threads), "--max-batch", str(max_batch), "--max-delay-ms", str(args.max_delay_ms),
           "--timeout", "120"]
    log_path = folder / f"server-{label}.log"
    log = open(log_path, "w")
    return port, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log, log_path


class Client:
    """One client: a keep-alive connection to one server (opened again when the server has closed it)."""

    def __init__(self, port: int) -> None:
        self.port, self.conn = port, None

    def upload(self, image: tuple[str, bytes]) -> tuple[int, float, float | None]:
        """``(status, seconds, score)`` of one multipart upload; status 0 when no answer came."""
        body, ctype = multipart(*image)
        for attempt in range(2):  # a connection the server closed while idle is opened again, once
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=120)
            t0 = time.perf_counter()
            try:
                self.conn.request("POST", "/v1/detect", body=body, headers={"Content-Type": ctype})
                resp = self.conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt:
                    return 0, float("nan"), None
                continue
            secs = time.perf_counter() - t0
            if (resp.getheader("connection") or "").lower() == "close":
                self.close()
            return resp.status, secs, json.loads(data).get("score") if resp.status == 200 else None
        return 0, float("nan"), None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None


def load_round(port: int, images: list, clients: int, count: int) -> list[tuple[int, float, float | None]]:
    """``count`` uploads from ``clients`` concurrent clients, each sending its next one when its last is answered."""
    local = threading.local()
    opened: list[Client] = []

    def one(i: int):
        if not hasattr(local, "client"):
            local.client = Client(port)
            opened.append(local.client)
        return local.client.upload(images[i % len(images)])

    try:
        with ThreadPoolExecutor(clients) as pool:
            return list(pool.map(one, range(count)))
    finally:
        for client in opened:
            client.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL, help="registered model, random weights (default: %(default)s)")
    ap.add_argument("--measure", default="", help="more registered models whose batch 1 vs --max-batch per-image "
                                                  "time to print first (comma-separated)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=4, help="rounds per server, alternating (default: %(default)s)")
    ap.add_argument("--per-round", type=int, default=128, help="requests per round (default: %(default)s)")
    ap.add_argument("--single", type=int, default=60, help="one-client requests per server (default: %(default)s)")
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--max-delay-ms", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--queue", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads, both servers and step 2")
    ap.add_argument("--goal", type=float, default=2.0, help="throughput ratio to reach (default: %(default)s)")
    args = ap.parse_args()
    if not 1 <= args.clients <= 64 or args.rounds < 1 or args.per_round < 1 or args.single < 10:
        ap.error("--clients must be 1..64, --rounds and --per-round at least 1, --single at least 10")

    import torch

    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs); load average at start {loadavg()}")
    print(f"command: python {' '.join(shlex.quote(a) for a in sys.argv)}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}; torch {torch.__version__}, {args.threads} thread(s)\n")

    print(f"model forward time per image, random weights, batch 1 vs {args.max_batch}:")
    for name in [args.model] + [m for m in args.measure.split(",") if m and m != args.model]:
        one, many, size, face = model_times(name, args.max_batch)
        print(f"  {name:<24} {size:>4} px  batch 1 {one * 1000:8.2f} ms  batch {args.max_batch} {many * 1000:8.2f} ms"
              f"  ({one / many:.2f}x less per image){'  face stage: the service scores it unbatched' if face else ''}")
        if face and name == args.model:
            print(f"  (the service scores {name} one image at a time: expect no gain from batching)")

    tmp = tempfile.TemporaryDirectory(prefix="fakescope-batch-")
    folder = Path(tmp.name)
    from fakescope.models import create_model
    from fakescope.zoo.checkpoint import save

    torch.manual_seed(0)
    ck = str(save(create_model(args.model).eval(), folder / "ck"))
    images = make_images(8, args.image_size)
    servers = {"off": start_server(ck, args, 1, folder, "off"),
               "on": start_server(ck, args, args.max_batch, folder, "on")}
    missed: list[str] = []
    try:
        for label, (port, proc, _, log_path) in servers.items():
            if wait_ready(port, proc, log_path) is None:
                return 1
            warm = Client(port)
            for image in images[:4]:
                warm.upload(image)
            warm.close()
        print(f"\nservers: {args.workers} worker process(es) each; baseline --max-batch 1, batched --max-batch "
              f"{args.max_batch} --max-delay-ms {args.max_delay_ms:g}; {len(images)} images of {args.image_size} px "
              "(PNG and JPEG, multipart)")

        # ---- one client, alternating
        single: dict[str, list[float]] = {"off": [], "on": []}
        scores: dict[str, dict[int, float]] = {"off": {}, "on": {}}
        one = {label: Client(port) for label, (port, *_) in servers.items()}
        failures = 0
        for i in range(args.single):
            for label in ("off", "on") if i % 2 == 0 else ("on", "off"):
                status, secs, score = one[label].upload(images[i % len(images)])
                failures += status != 200
                if status == 200:
                    single[label].append(secs)
                    scores[label][i % len(images)] = score
        for client in one.values():
            client.close()
        diff = max((abs(scores["on"][k] - scores["off"][k]) for k in scores["on"] if k in scores["off"]),
                   default=float("nan"))

        # ---- --clients concurrent clients, alternating rounds
        loaded: dict[str, list[float]] = {"off": [], "on": []}
        wall = {"off": 0.0, "on": 0.0}
        cpu = {label: {"service": 0.0, "client": 0.0} for label in servers}  # CPU seconds, over the rounds
        order = [("off", "on") if r % 2 == 0 else ("on", "off") for r in range(args.rounds)]
        for r, pair in enumerate(order):
            for label in pair:
                pids = [servers[label][1].pid] + worker_pids(servers[label][1].pid)
                s0, c0, t0 = cpu_seconds(pids), own_cpu_seconds(), time.perf_counter()
                answers = load_round(servers[label][0], images, args.clients, args.per_round)
                wall[label] += time.perf_counter() - t0
                cpu[label]["service"] += cpu_seconds(pids) - s0
                cpu[label]["client"] += own_cpu_seconds() - c0
                failures += sum(s != 200 for s, _, _ in answers)
                loaded[label] += [secs for s, secs, _ in answers if s == 200]
            print(f"  round {r + 1}/{args.rounds} done; load average {loadavg()}")
        health = json.loads(request(servers["on"][0], "GET", "/healthz", timeout=10)[1])
        alive = all(proc.poll() is None for _, proc, _, _ in servers.values())
    finally:
        for _, proc, log, _ in servers.values():
            stop_server(proc)
            log.close()
        tmp.cleanup()

    rate = {k: len(loaded[k]) / wall[k] if wall[k] else float("nan") for k in wall}
    added_ms = (percentile(single["on"], 10) - percentile(single["off"], 10)) * 1000
    added_p50_ms = (percentile(single["on"], 50) - percentile(single["off"], 50)) * 1000
    batching = health.get("batching", {})
    mean_batch = batching.get("batched", 0) / max(batching.get("batches", 0), 1)
    print("\n| clients | batching | requests/s | p50 ms | p99 ms | CPU ms per request (service + client) |")
    print("|---|---|---|---|---|---|")
    for label, name in (("off", "off (--max-batch 1)"), ("on", f"on (--max-batch {args.max_batch}, "
                                                              f"--max-delay-ms {args.max_delay_ms:g})")):
        done = single[label]
        print(f"| 1 | {name} | {len(done) / sum(done) if done else float('nan'):.1f} | "
              f"{percentile(done, 50) * 1000:.1f} | {percentile(done, 99) * 1000:.1f} | |")
    per = {}
    for label in ("off", "on"):
        n = max(len(loaded[label]), 1)
        per[label] = (cpu[label]["service"] + cpu[label]["client"]) * 1000 / n
        print(f"| {args.clients} | {label} | {rate[label]:.1f} | {percentile(loaded[label], 50) * 1000:.1f} | "
              f"{percentile(loaded[label], 99) * 1000:.1f} | {per[label]:.2f} ({cpu[label]['service'] * 1000 / n:.2f}"
              f" + {cpu[label]['client'] * 1000 / n:.2f}) |")
    print(f"\nbatched server: {batching.get('batches', 0)} batches of 2 or more, {batching.get('batched', 0)} "
          f"requests in them (mean {mean_batch:.1f}), {batching.get('split', 0)} split after a failure")
    print(f"one client: batching adds {added_ms:+.2f} ms at p10 (allowed: up to {args.max_delay_ms:g} ms; "
          f"at p50: {added_p50_ms:+.2f} ms)")
    print(f"largest score difference, same image, batched vs not: {diff:.2e}")
    print(f"CPU time per request at {args.clients} clients, baseline / batched: {per['off'] / per['on']:.2f}x "
          "(less sensitive than requests/s to other work on the machine)")
    print(f"load average at the end: {loadavg()}")

    ratio = rate["on"] / rate["off"] if rate["off"] else float("nan")
    if not ratio >= args.goal:
        missed.append(f"throughput with batching >= {args.goal:g}x without it at {args.clients} clients "
                      f"(got {ratio:.2f}x)")
    if not added_ms <= args.max_delay_ms:
        missed.append(f"one client: added latency (p10) <= {args.max_delay_ms:g} ms (got {added_ms:.2f} ms)")
    if not diff <= 1e-6:
        missed.append(f"scores equal batched and not, within 1e-6 (got {diff:.2e})")
    if failures:
        missed.append(f"every request answered 200 ({failures} were not)")
    if not alive:
        missed.append("both servers alive to the end")
    for goal in missed:
        print(f"GOAL MISSED: {goal}")
    print(f"throughput ratio batched / baseline at {args.clients} clients: {ratio:.2f}x")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
