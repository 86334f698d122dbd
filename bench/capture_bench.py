"""What capture costs a detect: p50 / p95 latency and requests/s with capture `all` against `off`.

One real server on loopback (`odconnect serve`, fresh store), one trained and published version
(the `fast` preset by default, a few iterations: latency does not depend on how well it trained).
Every request sends a different image (a 1024x768 JPEG with a one-pixel change), so that with
capture `all` each one is really written (no dedupe). The two modes are measured in the same run,
interleaved round by round (off, all, all, off, ...) so that both share whatever else loads the
machine; the load average is printed before and after.

Per round and mode: `--requests` sequential requests (latency), then the same number from 4
concurrent clients (throughput). At the end: what the capture kept and dropped (queue full).

Usage: python bench/capture_bench.py [--rounds 4] [--requests 30] [--preset fast]
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detect_bench import KEY, dataset, percentile, probe_jpeg, start_server, stop_server  # noqa: E402


def variants(probe: bytes, count: int) -> list[dict]:
    """`count` distinct JPEG bodies of the probe picture (one pixel differs)."""
    base = Image.open(io.BytesIO(probe)).convert("RGB")
    out = []
    for i in range(count):
        img = base.copy()
        img.putpixel((i % img.width, (i // img.width) % img.height), (i % 256, 255 - i % 256, 7))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        out.append({"content": base64.b64encode(buf.getvalue()).decode()})
    return out


def run(client, path: str, bodies: list[dict], clients: int) -> tuple[float, list[float]]:
    latencies, lock, it = [], threading.Lock(), iter(bodies)

    def worker():
        while True:
            with lock:
                body = next(it, None)
            if body is None:
                return
            t0 = time.perf_counter()
            status, _, answer = client.call("POST", path, body)
            assert status == 200, (status, answer)
            with lock:
                latencies.append((time.perf_counter() - t0) * 1000)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies) / (time.perf_counter() - t0), latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=30, help="per round, mode and client count")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--train-iters", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2, help="torch threads in the server")
    args = parser.parse_args()

    training, evaluation, _, _ = dataset()
    images = training + evaluation
    probe = probe_jpeg(evaluation)
    root = Path(tempfile.mkdtemp(prefix="odc-capture-bench-"))
    config = root / "config.yaml"
    config.write_text(json.dumps({
        "storage": {"root": str(root / "data")}, "security": {"api_keys": [KEY]},
        "data_check": {"min_images_per_label": 1}, "inference": {"torch_threads": args.threads},
        "capture": {"max_images": 100000},
    }))
    load_before = os.getloadavg()
    server, client = start_server(config)
    try:
        labels = sorted({r["labelName"] for _, _, regs in images for r in regs})
        _, _, model = client.call("POST", "/models", {"name": "capture-bench", "labels": labels})
        ds = client.call("GET", f"/models/{model['id']}/datasets")[2][0]["id"]
        for i in range(0, len(images), 16):
            chunk = [{"name": n, "content": base64.b64encode(d).decode(), "regions": r} for n, d, r in images[i:i + 16]]
            client.call("POST", f"/models/{model['id']}/datasets/{ds}/images", {"images": chunk})
        status, _, run_ = client.call("POST", f"/models/{model['id']}/train",
                                      {"preset": args.preset, "maxIterations": args.train_iters})
        assert status == 202, run_
        while run_["status"] in ("queued", "training"):
            time.sleep(1)
            run_ = client.call("GET", f"/models/{model['id']}/runs/{run_['id']}")[2]
        assert run_["status"] == "succeeded", run_
        client.call("POST", f"/models/{model['id']}/versions/{run_['version']}/publish")
        path = f"/models/{model['id']}/detect"
        per_mode = args.rounds * args.requests * 2
        pool = {"off": variants(probe, per_mode + 10), "all": variants(probe, 2 * per_mode + 10)[per_mode + 10:]}
        w, h = Image.open(io.BytesIO(probe)).size
        print(f"capture benchmark: image {w}x{h}, {os.cpu_count()} CPU cores, torch threads {args.threads}, "
              f"preset {args.preset}, {args.rounds} rounds x {args.requests} requests per mode and client count",
              flush=True)
        run(client, path, pool["off"][-10:], 1)  # warm up
        results = {m: {"seq": [], "rps1": [], "rps4": [], "conc": []} for m in ("off", "all")}
        used = {"off": 0, "all": 0}
        for r in range(args.rounds):
            for mode in (("off", "all") if r % 2 == 0 else ("all", "off")):
                client.call("PUT", f"/models/{model['id']}/capture", {"mode": mode})
                take = lambda n: pool[mode][used[mode]:used[mode] + n]  # noqa: E731
                rps1, seq = run(client, path, take(args.requests), 1)
                used[mode] += args.requests
                rps4, conc = run(client, path, take(args.requests), 4)
                used[mode] += args.requests
                results[mode]["seq"] += seq
                results[mode]["conc"] += conc
                results[mode]["rps1"].append(rps1)
                results[mode]["rps4"].append(rps4)
        time.sleep(2)  # let the writer finish before reading its counts
        outcomes = client.call("GET", f"/models/{model['id']}/capture")[2]["outcomes"]
    finally:
        stop_server(server)
    load_after = os.getloadavg()
    print(f"load average (1, 5, 15 min): before {load_before[0]:.1f} {load_before[1]:.1f} {load_before[2]:.1f}, "
          f"after {load_after[0]:.1f} {load_after[1]:.1f} {load_after[2]:.1f}")
    print("| capture | p50 ms | p95 ms | req/s, 1 client | p50 ms @4 | p99 ms @4 | req/s @4 |")
    print("|---|---|---|---|---|---|---|")
    for mode in ("off", "all"):
        x = results[mode]
        print(f"| {mode} | {percentile(x['seq'], 50):.0f} | {percentile(x['seq'], 95):.0f} | "
              f"{sum(x['rps1']) / len(x['rps1']):.1f} | {percentile(x['conc'], 50):.0f} | "
              f"{percentile(x['conc'], 99):.0f} | {sum(x['rps4']) / len(x['rps4']):.1f} |")
    print(f"capture `all` outcomes: {outcomes}")


if __name__ == "__main__":
    main()
