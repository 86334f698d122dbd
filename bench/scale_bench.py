"""Scale-out: what a second training worker and a second API process buy on this machine.

Real servers, as deployed: PostgreSQL and Redis (started like the tests start them, see
tests/servers.py), `odconnect db upgrade`, `odconnect worker` and `odconnect serve --workers N`
as child processes on one store folder. Prints one table:

- training: two runs of the same size (tiny drawn images, --iterations each) queued together,
  on one worker (one after the other) versus two workers (side by side); wall time from the
  first POST /train to the second run's end.
- detect: requests/s of POST /detect (a small JPEG, a tiny trained published model) from
  --clients concurrent clients through `serve --workers 1` versus `--workers 2`.

Each row names its torch threads per process. One process is measured both with every core and
with cores / 2 threads, so that the table separates what the second process buys from what
fewer threads per process buy (on a busy machine, more threads than free cores is much slower).

    python bench/scale_bench.py                        # 20 iterations, 4 clients, 15 s each
    python bench/scale_bench.py --iterations 200 --seconds 30
"""
from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from contextlib import ExitStack
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")  # the tests' helpers

from tests import servers  # noqa: E402
from tests.servers import free_port, postgres_server, redis_server, wait_until  # noqa: E402
from tests.training_data import LABELS, shapes_image  # noqa: E402

KEY = "bench-key"
CORES = os.cpu_count() or 1
TINY_TRAINING = {  # the tests' tiny runs: 128 px images, batch 2
    "default_preset": "scratch",
    "overrides": {"INPUT.MIN_SIZE_TRAIN": [128], "INPUT.MAX_SIZE_TRAIN": 160,
                  "INPUT.MIN_SIZE_TEST": 128, "INPUT.MAX_SIZE_TEST": 160, "SOLVER.IMS_PER_BATCH": 2},
}


def call(base: str, path: str, method: str = "GET", body=None, timeout: float = 60):
    return servers.call(base, path, KEY, method, body, timeout)


class Deployment:
    """Child processes of `odconnect` on one configuration; stopped when the stack closes."""

    def __init__(self, stack: ExitStack, tmp: Path, database_url: str, broker_url: str):
        self.stack, self.tmp = stack, tmp
        config = {"storage": {"root": str(tmp / "shared"), "database_url": database_url},
                  "security": {"api_keys": [KEY]},
                  "jobs": {"broker_url": broker_url, "heartbeat_seconds": 2.0},
                  "data_check": {"min_images_per_label": 3},
                  "training": TINY_TRAINING}
        self.config_file = tmp / "odconnect.yaml"
        self.config_file.write_text(yaml.safe_dump(config))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ODCONNECT_")}
        self.env["PYTHONPATH"] = str(ROOT)

    def command(self, *args) -> list[str]:
        return [sys.executable, "-m", "connector.cli", "--config", str(self.config_file), *args]

    def run(self, *args) -> None:
        subprocess.run(self.command(*args), env=self.env, cwd=ROOT, check=True, capture_output=True, timeout=300)

    def start(self, *args, env: dict | None = None, name: str) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "w")
        proc = subprocess.Popen(self.command(*args), env={**self.env, **(env or {})}, cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT)
        self.stack.callback(log.close)
        self.stack.callback(stop, proc)
        return proc

    def serve(self, processes: int, threads: int, name: str) -> tuple[str, subprocess.Popen]:
        port = free_port()
        proc = self.start("serve", "--port", str(port), "--workers", str(processes),
                          env={"ODCONNECT_INFERENCE__TORCH_THREADS": str(threads)}, name=name)
        base = f"http://127.0.0.1:{port}/api/v1"
        wait_until(lambda: call(base, "/health")[0] == 200, 180, f"{name} to answer")
        return base, proc

    def workers(self, count: int, threads: int, base: str) -> list[subprocess.Popen]:
        procs = [self.start("worker", "--threads", str(threads), name=f"worker-{count}x{threads}-{i}")
                 for i in range(count)]
        wait_until(lambda: call(base, "/health")[1]["parts"]["workers"]["alive"] == count, 180, "the workers")
        return procs


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def make_model(base: str, name: str, images: int) -> int:
    status, model = call(base, "/models", "POST", {"name": name, "labels": list(LABELS)})
    assert status == 201, model
    dataset = call(base, f"/models/{model['id']}/datasets")[1][0]["id"]
    batch = []
    for seed in range(images):
        data, regions = shapes_image(seed)
        batch.append({"name": f"s{seed}.jpg", "content": base64.b64encode(data).decode(), "regions": regions})
    status, body = call(base, f"/models/{model['id']}/datasets/{dataset}/images", "POST", {"images": batch})
    assert status == 201, body
    return model["id"]


def two_runs(base: str, models: list[int], iterations: int) -> float:
    """Seconds from queueing two runs to the end of the later one."""
    started = time.perf_counter()
    runs = []
    for model_id in models:
        status, run = call(base, f"/models/{model_id}/train", "POST", {"maxIterations": iterations, "seed": 1})
        assert status == 202, run
        runs.append((model_id, run["id"]))
    for model_id, run_id in runs:
        run = wait_until(lambda m=model_id, r=run_id: (x := call(base, f"/models/{m}/runs/{r}"))[0] == 200 and x[1],
                         3600, "a training run")
        assert run["status"] == "succeeded", run
    return time.perf_counter() - started


def detect_rate(base: str, model_id: int, clients: int, seconds: float) -> tuple[float, float]:
    """(requests/s, median latency ms) of `clients` threads posting one small JPEG for `seconds`."""
    probe = {"content": base64.b64encode(shapes_image(99, size=160)[0]).decode()}
    for _ in range(2 * clients):  # warm: every process has loaded the model
        status, body = call(base, f"/models/{model_id}/detect", "POST", probe)
        assert status == 200, body
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client():
        while time.perf_counter() < stop_at:
            t = time.perf_counter()
            status, body = call(base, f"/models/{model_id}/detect", "POST", probe)
            assert status == 200, body
            with lock:
                latencies.append(time.perf_counter() - t)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    latencies.sort()
    return len(latencies) / elapsed, 1000 * latencies[len(latencies) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=20, help="iterations of each training run")
    parser.add_argument("--images", type=int, default=8, help="drawn images per model")
    parser.add_argument("--clients", type=int, default=4, help="concurrent detect clients")
    parser.add_argument("--seconds", type=float, default=15, help="length of each detect measurement")
    args = parser.parse_args()

    rows = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="odconnect-scale-bench-")))
        deploy = Deployment(stack, tmp, stack.enter_context(postgres_server()), stack.enter_context(redis_server()))
        deploy.run("db", "upgrade")
        base, api = deploy.serve(1, CORES, "api-setup")
        half = max(1, CORES // 2)
        layouts = ((1, CORES), (1, half), (2, half))  # (processes, threads each)
        models = [make_model(base, f"m{i}", args.images) for i in range(2 * len(layouts))]

        for i, (count, threads) in enumerate(layouts):
            procs = deploy.workers(count, threads, base)
            seconds = two_runs(base, models[2 * i:2 * i + 2], args.iterations)
            rows.append(("training: 2 runs", f"{count} worker{'s' * (count > 1)}", threads, f"{seconds:.1f} s wall"))
            for p in procs:
                stop(p)
        status, body = call(base, f"/models/{models[0]}/versions/1/publish", "POST")
        assert status == 200, body
        stop(api)

        for processes, threads in layouts:
            base, api = deploy.serve(processes, threads, f"api-{processes}x{threads}")
            rate, median = detect_rate(base, models[0], args.clients, args.seconds)
            rows.append((f"detect, {args.clients} clients", f"serve --workers {processes}", threads,
                         f"{rate:.1f} req/s (median {median:.0f} ms)"))
            stop(api)

    print(f"\n{CORES} cores; training: {args.iterations} iterations on {args.images} drawn 256 px images "
          f"(trained at 128 px); detect: one 160 px JPEG, {args.seconds:.0f} s per row\n")
    header = ("what", "processes", "torch threads each", "result")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(4)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))


if __name__ == "__main__":
    main()
