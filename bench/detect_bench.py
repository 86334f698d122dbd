"""Detect latency and throughput of the real server on loopback, per preset.

For each preset: start `odconnect serve` on a free loopback port with a fresh store,
import a dataset, train a version for a few iterations (latency does not depend on
how well it was trained), publish it, then measure

  * single-client latency p50 in the process that trained (a finished run must leave
    nothing behind that slows serving), then from a freshly started server:
  * single-client latency p50 / p95 at 512 px (image long side 512),
  * throughput and p99 latency with 4 and 16 concurrent clients,
  * the server's peak resident memory (VmHWM).

Usage: python bench/detect_bench.py [--presets fast,balanced,scratch] [--requests 40]
Data: ../shared/datasets/fork-scissors when present, else drawn shapes.
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "datasets" / "fork-scissors"
KEY = "bench-key"
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    def __init__(self, base: str):
        self.base = base

    def call(self, method: str, path: str, body=None, timeout=600):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"X-API-Key": KEY, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), json.loads(e.read() or b"null")


def dataset_images() -> list[tuple[str, bytes, list[dict]]]:
    """(name, bytes, regions) for training; fork-scissors if present, else drawn shapes."""
    if (SHARED / "coco.json").exists():
        from connector.modeling.boxes import pixels_to_fraction
        coco = json.loads((SHARED / "coco.json").read_text())
        cats = {c["id"]: c["name"] for c in coco["categories"]}
        out = []
        for img in coco["images"]:
            anns = [a for a in coco["annotations"] if a["image_id"] == img["id"]]
            regions = [{"labelName": cats[a["category_id"]],
                        **pixels_to_fraction(x, y, x + w, y + h, img["width"], img["height"])}
                       for a in anns for x, y, w, h in [a["bbox"]]]
            out.append((img["file_name"], (SHARED / img["file_name"]).read_bytes(), regions))
        return out
    from tests.training_data import shapes_image
    return [(f"shape-{i}.jpg", *shapes_image(i)) for i in range(30)]


def probe_image(images) -> bytes:
    """A 512 px (long side) JPEG to detect on."""
    test = SHARED / "images" / "test" / "test_od_image.jpg"
    img = Image.open(io.BytesIO(test.read_bytes() if test.exists() else images[-1][1])).convert("RGB")
    img.thumbnail((512, 512)) if max(img.size) > 512 else None
    if max(img.size) < 512:
        scale = 512 / max(img.size)
        img = img.resize((round(img.width * scale), round(img.height * scale)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def load(client: Client, path: str, body: dict, clients: int, requests: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()
    per = max(1, requests // clients)

    def worker():
        for _ in range(per):
            t0 = time.perf_counter()
            status, _, _ = client.call("POST", path, body)
            dt = (time.perf_counter() - t0) * 1000
            assert status == 200, status
            with lock:
                latencies.append(dt)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies) / (time.perf_counter() - t0), latencies


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(config: Path):
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen([sys.executable, "-m", "connector.cli", "--config", str(config), "serve",
                               "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = Client(f"http://127.0.0.1:{port}/api/v1")
    deadline = time.time() + 120
    while True:
        try:
            if client.call("GET", "/health")[0] == 200:
                return server, client
        except (urllib.error.URLError, ConnectionError):
            pass
        if time.time() > deadline or server.poll() is not None:
            stop_server(server)
            raise RuntimeError("server did not start")
        time.sleep(0.3)


def stop_server(server) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()


def bench_preset(preset: str, images, probe: bytes, args) -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"odc-bench-{preset}-"))
    config = root / "config.yaml"
    config.write_text(json.dumps({
        "storage": {"root": str(root / "data")},
        "security": {"api_keys": [KEY]},
        "data_check": {"min_images_per_label": 1},
        "inference": {"torch_threads": args.threads},
    }))
    server, client = start_server(config)
    try:
        labels = sorted({r["labelName"] for _, _, regs in images for r in regs})
        status, _, model = client.call("POST", "/models", {"name": f"bench-{preset}", "labels": labels})
        ds = client.call("GET", f"/models/{model['id']}/datasets")[2][0]["id"]
        for i in range(0, len(images), 16):
            chunk = [{"name": n, "content": base64.b64encode(d).decode(), "regions": r}
                     for n, d, r in images[i:i + 16]]
            client.call("POST", f"/models/{model['id']}/datasets/{ds}/images", {"images": chunk})
        status, headers, run = client.call("POST", f"/models/{model['id']}/train",
                                           {"preset": preset, "maxIterations": args.train_iters})
        if status != 202:
            raise RuntimeError(f"train: {status} {run}")
        while status == 202 or run["status"] in ("queued", "training"):
            time.sleep(1)
            status, _, run = client.call("GET", f"/models/{model['id']}/runs/{run['id']}")
        if run["status"] != "succeeded":
            raise RuntimeError(f"training failed: {run['reason']}")
        client.call("POST", f"/models/{model['id']}/versions/{run['version']}/publish")
        path = f"/models/{model['id']}/detect"
        body = {"content": base64.b64encode(probe).decode()}
        # Latency must not suffer from a run having trained in the same process.
        for _ in range(10):
            client.call("POST", path, body)
        _, after_training = load(client, path, body, 1, args.requests)
        # Serve from a fresh process, so that peak memory is serving's, not training's.
        stop_server(server)
        server, client = start_server(config)
        for _ in range(10):  # warm the HTTP path and oneDNN for this image size
            client.call("POST", path, body)
        _, single = load(client, path, body, 1, args.requests)
        rows = {"preset": preset, "p50_ms": percentile(single, 50), "p95_ms": percentile(single, 95),
                "p50_after_training_ms": percentile(after_training, 50)}
        for clients in (4, 16):
            rps, lat = load(client, path, body, clients, max(args.requests, clients * 3))
            rows[f"rps_{clients}"] = rps
            rows[f"p99_{clients}_ms"] = percentile(lat, 99)
        rows["server_peak_rss_mb"] = peak_rss_mb(server.pid)
        return rows
    finally:
        stop_server(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="fast,balanced,scratch")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--train-iters", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2, help="torch threads in the server")
    args = parser.parse_args()
    images = dataset_images()
    probe = probe_image(images)
    w, h = Image.open(io.BytesIO(probe)).size
    print(f"detect benchmark: image {w}x{h}, {os.cpu_count()} CPU cores, torch threads {args.threads}, "
          f"{args.requests} requests per measurement", flush=True)
    rows = []
    for preset in args.presets.split(","):
        try:
            rows.append(bench_preset(preset.strip(), images, probe, args))
        except Exception as exc:  # report and go on with the other presets
            print(f"{preset}: {exc}", flush=True)
    header = ["preset", "p50 ms", "p95 ms", "p50 ms, process that trained", "req/s @4", "p99 ms @4", "req/s @16", "p99 ms @16", "serving peak MB"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print(f"| {r['preset']} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['p50_after_training_ms']:.0f} | {r['rps_4']:.1f} | {r['p99_4_ms']:.0f} | "
              f"{r['rps_16']:.1f} | {r['p99_16_ms']:.0f} | {r['server_peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
