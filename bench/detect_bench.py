"""Detect over HTTP through each serving engine, side by side from one run.

Trains one version through the service (fork-scissors: its train split in the model's training
dataset, its test split as the evaluation dataset; drawn shapes when the dataset is absent),
publishes it under each engine asked for (publishing under onnxruntime exports the version and
checks it against torch; ``int8`` also quantizes it and checks AP on the test split), then serves it from one freshly started
`odconnect serve` per engine, all up together, and measures:

  * sequential latency p50 / p99 of a 1024x768 JPEG sent as the raw body (decode included),
    the engines interleaved request by request so that other load on the cores hits them alike;
  * requests/s and p99 with 4 concurrent clients, one engine at a time, and how that compares
    with the sequential rate (1000 / mean sequential latency);
  * AP50 / AP of each engine's detect answers on the test split (threshold 0, pycocotools as
    training's evaluation does it);
  * each serving process's peak RSS (VmHWM): a fresh process, so neither training's nor the
    export's memory is in it.

Usage: nice -n 10 python bench/detect_bench.py [--engine torch,onnxruntime,int8] [--preset fast]
       [--budget 1.5] [--requests 60] [--onnx-threads 1] [--root DIR]

``--root DIR`` keeps the store in DIR; a later run with the same DIR serves the version trained
there instead of training again (compare serving settings on one version, in minutes).
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

    def call(self, method: str, path: str, body=None, timeout=900, raw: bytes | None = None):
        """(status, headers, JSON body) of one request: JSON ``body``, or ``raw`` JPEG bytes."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        kind = "image/jpeg" if raw is not None else "application/json"
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"X-API-Key": KEY, "Content-Type": kind})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), json.loads(e.read() or b"null")


def dataset() -> tuple[list, list, list | None, list[str] | None]:
    """(training items, evaluation items, test ImageRecords for AP or None, labels or None);
    an item is (name, bytes, regions). fork-scissors' split when present, else drawn shapes."""
    if (SHARED / "coco.json").exists():
        from bench.train_bench import load_dataset
        from connector.modeling.boxes import pixels_to_fraction
        coco = json.loads((SHARED / "coco.json").read_text())
        split = json.loads((SHARED / "split.json").read_text())
        cats = {c["id"]: c["name"] for c in coco["categories"]}
        items = {}
        for img in coco["images"]:
            anns = [a for a in coco["annotations"] if a["image_id"] == img["id"]]
            regions = [{"labelName": cats[a["category_id"]],
                        **pixels_to_fraction(x, y, x + w, y + h, img["width"], img["height"])}
                       for a in anns for x, y, w, h in [a["bbox"]]]
            items[img["id"]] = (Path(img["file_name"]).name, (SHARED / img["file_name"]).read_bytes(), regions)
        labels, _, test_records = load_dataset(SHARED)
        return [items[i] for i in split["train"]], [items[i] for i in split["test"]], test_records, labels
    from tests.training_data import shapes_image
    shapes = [(f"shape-{i}.jpg", *shapes_image(i)) for i in range(36)]
    return shapes[:30], shapes[30:], None, None


def probe_jpeg(evaluation) -> bytes:
    """An evaluation photo as a 1024x768 JPEG (quality 90): what a phone photo scaled down looks like."""
    img = Image.open(io.BytesIO(evaluation[0][1])).convert("RGB").resize((1024, 768), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def number(value) -> float:
    """A metric that may be undefined (None) as a float to print."""
    return float("nan") if value is None else float(value)


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def timed_detect(client: Client, path: str, probe: bytes) -> float:
    t0 = time.perf_counter()
    status, _, body = client.call("POST", path, raw=probe)
    if status != 200:
        raise RuntimeError(f"detect: {status} {body}")
    return (time.perf_counter() - t0) * 1000


def concurrent(client: Client, path: str, probe: bytes, clients: int, requests: int) -> tuple[float, list[float]]:
    """(requests/s, latencies ms) of ``clients`` clients sending ``requests`` detects in all."""
    latencies: list[float] = []
    lock = threading.Lock()

    def worker():
        for _ in range(requests // clients):
            ms = timed_detect(client, path, probe)
            with lock:
                latencies.append(ms)

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


# What each --engine name runs: inference.engine, and whether onnxruntime may serve int8.
SETTINGS = {"torch": ("torch", "off"), "onnxruntime": ("onnxruntime", "off"), "int8": ("onnxruntime", "auto")}


def write_config(root: Path, engine: str, threads: int, onnx_threads: int) -> Path:
    config = root / f"config-{engine}.yaml"
    name, int8 = SETTINGS[engine]
    config.write_text(json.dumps({
        "storage": {"root": str(root / "data")},
        "security": {"api_keys": [KEY]},
        "data_check": {"min_images_per_label": 1},
        "inference": {"engine": name, "int8": int8, "torch_threads": threads, "onnx_threads": onnx_threads},
    }))
    return config


def start_server(config: Path):
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "connector.cli", "--config", str(config), "serve",
                               "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = Client(f"http://127.0.0.1:{port}/api/v1")
    deadline = time.time() + 180
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


def train(client: Client, training, evaluation, preset: str, budget: float) -> tuple[int, dict]:
    """(model id, version view) of one version trained through the service."""
    labels = sorted({r["labelName"] for _, _, regs in training for r in regs})
    _, _, model = client.call("POST", "/models", {"name": f"bench-{preset}", "labels": labels})
    mid = model["id"]
    train_ds = client.call("GET", f"/models/{mid}/datasets")[2][0]["id"]
    status, _, eval_ds = client.call("POST", f"/models/{mid}/datasets", {"name": "test split", "kind": "evaluation"})
    if status != 201:
        raise RuntimeError(f"evaluation dataset: {status} {eval_ds}")
    for ds, items in ((train_ds, training), (eval_ds["id"], evaluation)):
        for i in range(0, len(items), 16):
            chunk = [{"name": n, "content": base64.b64encode(d).decode(), "regions": r} for n, d, r in items[i:i + 16]]
            status, _, body = client.call("POST", f"/models/{mid}/datasets/{ds}/images", {"images": chunk})
            if status not in (200, 201):
                raise RuntimeError(f"upload: {status} {body}")
    status, _, run = client.call("POST", f"/models/{mid}/train", {"preset": preset, "budgetMinutes": budget,
                                                                   "evaluationDatasetId": eval_ds["id"]})
    if status != 202:
        raise RuntimeError(f"train: {status} {run}")
    while status == 202 or run["status"] in ("queued", "training"):
        time.sleep(2)
        status, _, run = client.call("GET", f"/models/{mid}/runs/{run['id']}")
    if run["status"] != "succeeded":
        raise RuntimeError(f"training failed: {run['reason']}")
    return mid, client.call("GET", f"/models/{mid}/versions/{run['version']}")[2]


def ap_over_http(client: Client, path: str, records, labels: list[str]) -> dict:
    """AP50 / AP of the served answers on ``records`` (every box the engine keeps: threshold 0)."""
    from connector.modeling.detection import Detection
    from connector.training.evaluation import evaluate

    def detections(record):
        status, _, body = client.call("POST", path + "?threshold=0", raw=Path(record.path).read_bytes())
        if status != 200:
            raise RuntimeError(f"detect: {status} {body}")
        w, h = body["image"]["width"], body["image"]["height"]
        out = []
        for p in body["predictions"]:
            b = p["boundingBox"]
            out.append(Detection(labels.index(p["tagName"]), p["probability"], b["left"] * w, b["top"] * h,
                                 (b["left"] + b["width"]) * w, (b["top"] + b["height"]) * h))
        return out
    return evaluate(detections, records, labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", default="torch,onnxruntime,int8",
                        help="comma-separated: torch, onnxruntime (float), int8 (onnxruntime, inference.int8 auto)")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--budget", type=float, default=1.5, help="training minutes")
    parser.add_argument("--requests", type=int, default=60, help="sequential detects per engine")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2, help="torch threads in the server")
    parser.add_argument("--onnx-threads", type=int, default=0,
                        help="intra-op threads of each ONNX Runtime session (0: the machine's cores)")
    parser.add_argument("--concurrent-requests", type=int, default=200,
                        help="detects in all from the concurrent clients (p99 needs a few hundred)")
    parser.add_argument("--root", help="keep the store here and reuse the version trained in it")
    args = parser.parse_args()
    engines = [e.strip() for e in args.engine.split(",") if e.strip()]
    training, evaluation, test_records, labels = dataset()
    probe = probe_jpeg(evaluation)
    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="odc-detect-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    trained = root / "trained.json"
    configs = {e: write_config(root, e, args.threads, args.onnx_threads) for e in engines}
    print(f"detect benchmark: raw 1024x768 JPEG body, {os.cpu_count()} CPU cores, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; torch threads {args.threads}; "
          f"preset {args.preset}, {args.budget:g} min training", flush=True)

    server, client = start_server(write_config(root, "torch", args.threads, args.onnx_threads))
    try:
        t0 = time.perf_counter()
        if trained.exists():
            mid, version_number = json.loads(trained.read_text())
            version = client.call("GET", f"/models/{mid}/versions/{version_number}")[2]
        else:
            mid, version = train(client, training, evaluation, args.preset, args.budget)
            trained.write_text(json.dumps([mid, version["number"]]))
    finally:
        stop_server(server)
    metrics = version["metrics"]
    print(f"trained version {version['number']}: {version['iterations']} iterations in "
          f"{(time.perf_counter() - t0) / 60:.1f} min wall; training's evaluation (torch, full decode) "
          f"AP50 {number(metrics.get('ap50')):.3f}, AP {number(metrics.get('ap')):.3f}", flush=True)

    publish_s, decided = {}, {}
    for engine in engines:  # each setting decides (and records) on its own
        server, client = start_server(configs[engine])
        try:
            t0 = time.perf_counter()
            status, _, body = client.call("POST", f"/models/{mid}/versions/{version['number']}/publish")
            publish_s[engine] = time.perf_counter() - t0
            if status != 200:
                raise RuntimeError(f"publish under {engine}: {status} {body}")
            decided[engine] = client.call("GET", f"/models/{mid}/versions/{version['number']}")[2]["engine"]
            print(f"publish under inference.engine {engine}: {body['engine']} serves "
                  f"({publish_s[engine]:.1f} s): {decided[engine]['reason']}", flush=True)
        finally:
            stop_server(server)

    servers = {}
    try:
        for engine in engines:  # fresh processes: serving's memory only
            servers[engine] = start_server(configs[engine])
        path = f"/models/{mid}/detect"
        for engine, (_, client) in servers.items():
            for _ in range(10):  # the HTTP path, allocator and kernels for this size
                timed_detect(client, path, probe)
        sequential: dict[str, list[float]] = {e: [] for e in engines}
        for i in range(args.requests):
            for engine in engines[i % len(engines):] + engines[:i % len(engines)]:  # rotate who goes first
                sequential[engine].append(timed_detect(servers[engine][1], path, probe))
        rows = []
        for engine in engines:
            server, client = servers[engine]
            rps, lat = concurrent(client, path, probe, args.clients, max(args.concurrent_requests, args.clients * 10))
            seq_rps = 1000 / (sum(sequential[engine]) / len(sequential[engine]))
            ap = (ap_over_http(client, path, test_records, labels) if test_records
                  else {"ap50": float("nan"), "ap": float("nan")})
            rows.append({"engine": engine, "serves": decided[engine]["name"] + (" int8" if decided[engine].get("precision") == "int8" else ""),
                         "p50": percentile(sequential[engine], 50), "p99": percentile(sequential[engine], 99),
                         "seq_rps": seq_rps, "rps": rps, "p99_c": percentile(lat, 99),
                         "rss": peak_rss_mb(server.pid), "ap50": number(ap["ap50"]), "ap": number(ap["ap"]),
                         "publish_s": publish_s[engine]})
    finally:
        for server, _ in servers.values():
            stop_server(server)

    print(f"\n{args.requests} sequential detects per engine, interleaved; {args.clients} clients: "
          f"{max(args.concurrent_requests, args.clients * 10)} detects; load average at end "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    header = ["inference.engine", "serves", "p50 ms", "p99 ms", "req/s seq", f"req/s @{args.clients}",
              f"x seq", f"p99 ms @{args.clients}", "serving peak MB", "AP50", "AP", "publish s"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print(f"| {r['engine']} | {r['serves']} | {r['p50']:.1f} | {r['p99']:.1f} | {r['seq_rps']:.1f} | "
              f"{r['rps']:.1f} | {r['rps'] / r['seq_rps']:.2f} | {r['p99_c']:.0f} | {r['rss']:.0f} | "
              f"{r['ap50']:.3f} | {r['ap']:.3f} | {r['publish_s']:.1f} |")


if __name__ == "__main__":
    main()
