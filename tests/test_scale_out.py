"""Scale-out on real servers: PostgreSQL, Redis, two API servers (one of them `serve --workers 2`) and two
Celery training workers.

Everything runs as a person would deploy it: `odconnect db upgrade`, `odconnect worker` twice and
`odconnect serve` twice, all as child processes on one shared store folder and database.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
import yaml

from tests.conftest import KEY
from tests import servers
from tests.servers import free_port, postgres_server, redis_server, wait_until
from tests.test_training_api import TINY
from tests.training_data import LABELS, shapes_image

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
HEARTBEAT, STALE, REAP = 0.5, 4.0, 1.0


def call(base: str, path: str, method: str = "GET", body=None, timeout: float = 30):
    return servers.call(base, path, KEY, method, body, timeout)


class Cluster:
    def __init__(self, stack: ExitStack, tmp: Path, database_url: str, broker_url: str):
        self.stack, self.tmp = stack, tmp
        config = {
            "storage": {"root": str(tmp / "shared"), "database_url": database_url},
            "security": {"api_keys": [KEY]},
            # Two workers and two API processes share this machine's cores: one thread each.
            "jobs": {"broker_url": broker_url, "heartbeat_seconds": HEARTBEAT, "stale_after_seconds": STALE,
                     "reaper_seconds": REAP, "worker_threads": 1},
            "inference": {"warm_poll_seconds": 1.0, "torch_threads": 1},
            "scheduler": {"lease_seconds": 3.0, "renew_seconds": 1.0, "cron_seconds": True},
            **{k: {kk: (list(vv) if isinstance(vv, tuple) else vv) for kk, vv in v.items()} for k, v in TINY.items()},
        }
        config["training"]["overrides"] = {k: list(v) if isinstance(v, tuple) else v
                                           for k, v in config["training"]["overrides"].items()}
        self.config_file = tmp / "odconnect.yaml"
        self.config_file.write_text(yaml.safe_dump(config))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ODCONNECT_")}
        self.env["PYTHONPATH"] = str(ROOT)

    def odconnect(self, *args) -> list[str]:
        return [sys.executable, "-m", "connector.cli", "--config", str(self.config_file), *args]

    def run(self, *args) -> subprocess.CompletedProcess:
        return subprocess.run(self.odconnect(*args), env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=180)

    def start(self, *args, name: str) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "w")
        proc = subprocess.Popen(self.odconnect(*args), env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

        def stop():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            log.close()
        self.stack.callback(stop)
        return proc

    def api(self, name: str, processes: int = 1) -> str:
        port = free_port()
        self.start("serve", "--port", str(port), "--workers", str(processes), name=name)
        base = f"http://127.0.0.1:{port}/api/v1"
        wait_until(lambda: call(base, "/health")[0] == 200, 120, f"{name} to answer")
        return base


def upload(base: str, model_id: int, dataset_id: int, count: int) -> None:
    images = []
    for seed in range(count):
        data, regions = shapes_image(seed)
        import base64
        images.append({"name": f"s{seed}.jpg", "content": base64.b64encode(data).decode(), "regions": regions})
    status, body = call(base, f"/models/{model_id}/datasets/{dataset_id}/images", "POST", {"images": images})
    assert status == 201, body


def finished(base: str, model_id: int, run_id: int):
    status, run = call(base, f"/models/{model_id}/runs/{run_id}")
    return run if status == 200 else None


def test_two_api_processes_two_workers_postgres_and_redis(tmp_path):
    with ExitStack() as stack:
        database_url = stack.enter_context(postgres_server())
        broker_url = stack.enter_context(redis_server())
        cluster = Cluster(stack, tmp_path, database_url, broker_url)

        # A shared database is never changed by whichever server starts first.
        refused = cluster.run("serve", "--port", str(free_port()))
        assert refused.returncode == 2 and "odconnect db upgrade" in refused.stderr, refused.stderr
        upgraded = cluster.run("db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr

        workers = [cluster.start("worker", name=f"worker-{i}") for i in (1, 2)]
        api1, api2 = cluster.api("api-1"), cluster.api("api-2", processes=2)  # api-2: `serve --workers 2`
        health = wait_until(lambda: (h := call(api1, "/health")[1])["parts"]["workers"]["alive"] == 2 and h,
                            90, "two live workers")
        assert health["status"] == "ok" and health["parts"]["broker"]["status"] == "up"

        # Two models train at the same time, one on each worker.
        models = []
        for name, base in (("left", api1), ("right", api2)):
            status, m = call(base, "/models", "POST", {"name": name, "labels": list(LABELS)})
            assert status == 201, m
            dataset_id = call(base, f"/models/{m['id']}/datasets")[1][0]["id"]
            upload(base, m["id"], dataset_id, 6)
            models.append(m)
        runs = []
        for m, base in zip(models, (api1, api2)):
            status, run = call(base, f"/models/{m['id']}/train", "POST", {"maxIterations": 10})
            assert status == 202, run
            runs.append(run)
        done = [wait_until(lambda m=m, r=r: finished(api2, m["id"], r["id"]), 600, "both runs")
                for m, r in zip(models, runs)]
        assert [r["status"] for r in done] == ["succeeded", "succeeded"], done
        from model_store import Store
        store = Store(database_url, tmp_path / "shared")
        from model_store.schema import TrainingRun
        with store.transaction() as s:
            rows = [s.get(TrainingRun, r["id"]) for r in runs]
            assert rows[0].worker != rows[1].worker  # one run on each worker
            assert rows[0].started_at < rows[1].finished_at and rows[1].started_at < rows[0].finished_at

        # Published through one API process, detected through the other.
        assert call(api1, f"/models/{models[0]['id']}/versions/1/publish", "POST")[0] == 200
        import base64
        probe = {"content": base64.b64encode(shapes_image(11)[0]).decode()}
        for base in (api1, api2, api2, api2, api2):
            status, answer = call(base, f"/models/{models[0]['id']}/detect", "POST", probe)
            assert status == 200 and answer["version"] == 1, answer

        # A worker killed mid-run: its run ends failed within STALE + REAP seconds (plus a poll).
        status, run = call(api1, f"/models/{models[1]['id']}/train", "POST", {"maxIterations": 100000})
        assert status == 202
        trainer = wait_until(lambda: (w := _worker_of(store, run["id"])) and w, 120, "the long run to start")
        pid = int(trainer.rsplit(":", 2)[1])
        os.kill(pid, signal.SIGKILL)
        killed_at = time.time()
        failed = wait_until(lambda: finished(api2, models[1]["id"], run["id"]), STALE + REAP + 30, "the reaper")
        assert failed["status"] == "failed" and "heartbeats" in failed["reason"], failed
        assert time.time() - killed_at < STALE + REAP + 10

        # One schedule, two API processes on one PostgreSQL: each scheduled second fires once.
        status, sch = call(api2, f"/models/{models[0]['id']}/schedule", "PUT", {"cron": "* * * * * *"})
        assert status == 200, sch
        history = f"/models/{models[0]['id']}/schedule/history?limit=500"
        entries = wait_until(lambda: (h := [e for e in call(api1, history)[1] if e["trigger"] == "schedule"])
                             and len(h) >= 4 and h, 120, "four firings")
        assert call(api2, f"/models/{models[0]['id']}/schedule", "DELETE")[0] == 204
        times = [e["scheduledFor"] for e in entries]
        assert len(times) == len(set(times))  # never twice for one scheduled time
        assert len({e["firedBy"] for e in entries}) == 1  # the lease holder fired them all
        assert {e["outcome"] for e in entries} <= {"skipped", "training"}  # no new data since version 1

        # Each server counts its own requests (api-2 sums its two processes); the database's
        # figures are the same in both.
        for base, detects in ((api1, 1), (api2, 4)):
            status, metrics = call(base.removesuffix("/api/v1"), "/metrics")
            assert status == 200, metrics
            metrics = metrics.decode()
            assert 'odconnect_runs{state="succeeded"} 2.0' in metrics, metrics
            assert 'odconnect_runs{state="failed"} 1.0' in metrics, metrics
            assert ('odconnect_request_seconds_count{method="POST",operation="DetectObjects",status="200"} '
                    f'{detects:.1f}') in metrics, metrics
        store.dispose()
        assert any(w.poll() is not None for w in workers)  # the killed one


def _worker_of(store, run_id: int) -> str | None:
    from model_store.schema import TrainingRun
    with store.transaction() as s:
        run = s.get(TrainingRun, run_id)
        return run.worker if run.status == "training" and run.worker else None
