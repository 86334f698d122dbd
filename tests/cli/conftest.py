"""A live `odconnect serve` for the client tests, and the client run as a user runs it.

The server is a real process on a free loopback port with a temp store and a config that
makes training tiny; every client command is a real `python -m connector.cli` process with
its own HOME and XDG_CONFIG_HOME, so the login file lands in a temp folder.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml


ROOT = Path(__file__).resolve().parents[2]
KEY = "cli-test-key-5b1e0c9d"
TINY = {
    "training": {
        "default_preset": "scratch",
        "retry_after_seconds": 1,
        "overrides": {
            # 128 px images and batch 2 keep an iteration well under a second on 2 cores
            "INPUT.MIN_SIZE_TRAIN": [128], "INPUT.MAX_SIZE_TRAIN": 160,
            "INPUT.MIN_SIZE_TEST": 128, "INPUT.MAX_SIZE_TEST": 160, "SOLVER.IMS_PER_BATCH": 2,
            # a model of a few iterations scores every box low: keep its 5 best per image so that
            # detect has objects to count
            "MODEL.RETINANET.SCORE_THRESH_TEST": 0.0, "TEST.DETECTIONS_PER_IMAGE": 5,
        },
    },
    # publish serves with torch as it is: checking an ONNX export (and an int8 copy) of each version
    # took about 20 s of the lifecycle test per publish, and what serves is no business of the client
    "inference": {"engine": "torch"},
    "data_check": {"min_images_per_label": 3},
    "security": {"api_keys": [KEY]},
    "server": {"tune_malloc": False},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra) -> dict:
    """The environment without the developer's own odconnect settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODCONNECT_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


@dataclass
class Server:
    url: str
    root: Path

    def http(self, key: str = KEY) -> httpx.Client:
        return httpx.Client(base_url=self.url + "/api/v1", headers={"X-API-Key": key}, timeout=120)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    config = {**TINY, "storage": {"root": str(root / "store")}}
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = open(root / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "connector.cli", "--config", str(root / "config.yaml"),
                             "serve", "--port", str(port)], env=clean_env(), cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                if httpx.get(url + "/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, (root / "server.log").read_text()
            assert time.time() < deadline, "the server did not start"
            time.sleep(0.3)
        yield Server(url, root)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)

    def json_lines(self) -> list:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


class Cli:
    """`odconnect ...` in a subprocess with a private config folder."""

    def __init__(self, home: Path, cwd: Path):
        self.home, self.cwd = home, cwd
        self.config_home = home / ".config"

    def env(self, **extra) -> dict:
        return clean_env(HOME=str(self.home), XDG_CONFIG_HOME=str(self.config_home), COLUMNS="200", **extra)

    def __call__(self, *args, input: str | None = None, timeout: float = 120, **env) -> Result:
        done = subprocess.run([sys.executable, "-m", "connector.cli", *map(str, args)], input=input,
                              capture_output=True, text=True, timeout=timeout, cwd=self.cwd, env=self.env(**env))
        # the key is never echoed, whatever the command and however it was given
        assert KEY not in done.stdout and KEY not in done.stderr, args
        return Result(done.returncode, done.stdout, done.stderr)

    def popen(self, *args) -> subprocess.Popen:
        # Ctrl+C as a terminal sends it: a shell's background job (a CI runner's, say) starts with
        # SIGINT ignored, which its children inherit, and then Python never raises KeyboardInterrupt.
        return subprocess.Popen([sys.executable, "-m", "connector.cli", *map(str, args)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=self.cwd,
                                env=self.env(), preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def ok_json(self, *args, **kw):
        """Run with --json; it must succeed and print one JSON document."""
        r = self(*args, "--json", **kw)
        assert r.code == 0, (args, r.code, r.stderr)
        return r.json()


@pytest.fixture
def cli(tmp_path) -> Cli:
    (tmp_path / "home").mkdir()
    return Cli(tmp_path / "home", tmp_path)
