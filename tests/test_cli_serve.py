"""`odconnect serve` as a user runs it: a real process, real HTTP on loopback, a generated API key."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url, method="GET", body=None, key=None):
    headers = {"Content-Type": "application/json"}
    if key:
        headers["X-API-Key"] = key
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_serve_creates_a_key_and_answers_http(tmp_path):
    port = free_port()
    env = {**os.environ, "ODCONNECT_STORAGE__ROOT": str(tmp_path / "data")}
    env.pop("ODCONNECT_API_KEYS", None)
    proc = subprocess.Popen([sys.executable, "-m", "connector.cli", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=Path(__file__).resolve().parent.parent)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.time() + 60
        while True:
            try:
                status, body = request(base + "/health")
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stdout.read()
                assert time.time() < deadline, "server did not start"
                time.sleep(0.3)
        assert (status, body["status"]) == (200, "ok")
        key_file = tmp_path / "data" / "api_key"
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
        key = key_file.read_text().strip()
        assert request(base + "/models")[0] == 401
        status, model = request(base + "/models", "POST", {"name": "fruit", "labels": ["apple"]}, key)
        assert status == 201 and model["name"] == "fruit"
        assert request(base + "/models/fruit/data-check", key=key)[1]["labels"][0]["name"] == "apple"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    output = proc.stdout.read()
    assert "optimized for development" not in output  # served by uvicorn itself, not Connexion's runner
    assert key not in output  # the key file is named, never the key


def test_serve_refuses_an_unknown_setting(tmp_path):
    env = {**os.environ, "ODCONNECT_STORAGE__ROOT": str(tmp_path / "data"), "ODCONNECT_SERVER__PROT": "9000"}
    done = subprocess.run([sys.executable, "-m", "connector.cli", "serve"], env=env, capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 2
    assert "ODCONNECT_SERVER__PROT" in done.stderr and "did you mean server.port?" in done.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was written


def test_worker_refuses_without_a_broker_or_with_negative_threads(tmp_path, monkeypatch, capsys):
    from connector.cli import main
    monkeypatch.setenv("ODCONNECT_STORAGE__ROOT", str(tmp_path / "data"))
    assert main(["worker"]) == 2
    assert "set jobs.broker_url" in capsys.readouterr().err
    monkeypatch.setenv("ODCONNECT_JOBS__BROKER_URL", "redis://127.0.0.1:1/0")
    assert main(["worker", "--threads", "-1"]) == 2
    assert "worker threads must be 0 (every core) or more" in capsys.readouterr().err
    monkeypatch.setenv("ODCONNECT_JOBS__WORKER_THREADS", "-2")
    assert main(["worker"]) == 2
    assert not (tmp_path / "data").exists()  # refused before anything was written


def test_several_processes_do_not_spin_on_cores_they_share(monkeypatch):
    """`serve --workers N` turns spinning off when N processes, each spinning on its intra-op
    threads, would need more cores than there are; one process, or enough cores, keeps it."""
    from connector.config import load_config
    from connector.serving import _spinning_would_crowd

    cfg = load_config(environ={})
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert not _spinning_would_crowd(cfg, 1)
    assert _spinning_would_crowd(cfg, 2)  # 2 processes x every core
    cfg["inference"]["onnx_threads"] = 1
    assert not _spinning_would_crowd(cfg, 2)  # 2 x 1 thread fit 2 cores
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    cfg["inference"]["onnx_threads"] = 4
    assert not _spinning_would_crowd(cfg, 4) and _spinning_would_crowd(cfg, 5)
    cfg["inference"]["onnx_spin_when_alone"] = False
    assert not _spinning_would_crowd(cfg, 5)
