"""Two real `odconnect serve` processes on one SQLite file: the schedule fires once per scheduled
time, from the process holding the lease; when that process is killed, the other takes over
within lease_seconds + renew_seconds."""
from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_cli_serve import free_port, request

pytestmark = pytest.mark.slow

KEY = "proc-key"
LEASE, RENEW = 3.0, 1.0
HOST = socket.gethostname()


class Server:
    def __init__(self, root: Path, log: Path):
        self.port = free_port()
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
               "ODCONNECT_STORAGE__ROOT": str(root), "ODCONNECT_API_KEYS": KEY,
               "ODCONNECT_SCHEDULER__CRON_SECONDS": "true",
               "ODCONNECT_SCHEDULER__LEASE_SECONDS": str(LEASE), "ODCONNECT_SCHEDULER__RENEW_SECONDS": str(RENEW),
               "ODCONNECT_SERVER__TUNE_MALLOC": "false"}
        self.log = log.open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "connector.cli", "serve", "--port", str(self.port)],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=Path(__file__).resolve().parent.parent)
        self.base = f"http://127.0.0.1:{self.port}/api/v1"

    def wait_ready(self, timeout=120):
        deadline = time.time() + timeout
        while True:
            try:
                if request(self.base + "/health")[0] == 200:
                    return self
            except OSError:
                pass
            assert self.proc.poll() is None, "server exited"
            assert time.time() < deadline, "server did not start"
            time.sleep(0.3)

    def call(self, path, method="GET", body=None):
        return request(self.base + path, method, body, KEY)

    @property
    def holder_prefix(self) -> str:
        return f"{HOST}:{self.proc.pid}:"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def fired(server, model_id) -> list[dict]:
    status, entries = server.call(f"/models/{model_id}/schedule/history?limit=500")
    assert status == 200, entries
    return [e for e in entries if e["trigger"] == "schedule"]


def test_two_processes_fire_each_scheduled_time_once_and_the_survivor_takes_over(tmp_path):
    a = Server(tmp_path / "data", tmp_path / "a.log").wait_ready()
    b = Server(tmp_path / "data", tmp_path / "b.log").wait_ready()
    try:
        status, model = a.call("/models", "POST", {"name": "counted", "labels": ["thing"]})
        assert status == 201
        # stored through the standby process: the leader takes the schedule up at its next renewal
        status, sch = b.call(f"/models/{model['id']}/schedule", "PUT", {"cron": "* * * * * *"})
        assert status == 200, sch
        deadline = time.time() + 120  # the first firing imports detectron2 (start_training checks presets)
        while len([e for e in fired(b, model["id"]) if e["outcome"] != "training"]) < 3:
            assert time.time() < deadline, fired(b, model["id"])
            time.sleep(0.3)
        before = fired(b, model["id"])
        # only the leader (the first process, which took the lease at its start) fired
        assert {e["firedBy"].rsplit(":", 1)[0] + ":" for e in before} == {a.holder_prefix}
        # each firing is a model with no images: the data check blocks it, recorded as failed
        assert {e["outcome"] for e in before} <= {"failed", "training"}
        assert "the data check blocks training" in before[0]["detail"]

        a.proc.send_signal(signal.SIGKILL)  # no clean shutdown: the lease must expire
        a.proc.wait(timeout=30)
        killed = dt.datetime.now(dt.timezone.utc)
        deadline = time.time() + LEASE + RENEW + 20
        while not any(e["firedBy"].startswith(b.holder_prefix) for e in fired(b, model["id"])):
            assert time.time() < deadline, fired(b, model["id"])[:3]
            time.sleep(0.2)
        time.sleep(3)
        after = fired(b, model["id"])
        taken = [e for e in after if e["firedBy"].startswith(b.holder_prefix)]
        first_b = min(dt.datetime.fromisoformat(e["firedAt"]) for e in taken)
        takeover = (first_b - killed).total_seconds()
        print(f"takeover {takeover:.1f} s after the kill (bound {LEASE + RENEW:g} s + scheduling)")
        assert takeover <= LEASE + RENEW + 2.0

        # once per scheduled second, whoever fired it; after the takeover only the survivor fires
        times = [e["scheduledFor"] for e in after]
        assert len(times) == len(set(times))
        assert all(e["firedBy"].startswith(b.holder_prefix) for e in after
                   if dt.datetime.fromisoformat(e["firedAt"]) > first_b)
        assert {e["firedBy"].rsplit(":", 1)[0] + ":" for e in after} == {a.holder_prefix, b.holder_prefix}
        status, runs = b.call(f"/models/{model['id']}/runs")
        assert status == 200 and runs == []  # blocked by the data check, never started twice
    finally:
        a.stop()
        b.stop()
