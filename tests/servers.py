"""Real PostgreSQL and Redis servers for the tests, started as child processes on loopback.

PostgreSQL refuses to run as root, so a throwaway cluster is made with initdb in a temp folder
owned by the `postgres` user and run as that user. Both servers are Debian's packages, installed
by .ci/run; outside CI a missing one skips the tests that need it, saying how to install it.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _missing(what: str, install: str) -> None:
    message = f"{what} is not installed here ({install})"
    if IN_CI:
        pytest.fail(message + ": CI must have it, see .ci/run")
    pytest.skip(message)


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_postgres(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


@contextmanager
def postgres_server() -> Iterator[str]:
    """A fresh cluster; yields a SQLAlchemy URL of an empty database `odconnect`."""
    bindir = _pg_bin()
    if bindir is None:
        _missing("PostgreSQL", "apt-get install postgresql")
    workdir = Path(tempfile.mkdtemp(prefix="odconnect-pg-"))
    data = workdir / "data"
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres", "postgres")
    port = free_port()
    try:
        _as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"])
        _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "60", "-l", str(workdir / "log"),
                      "-o", f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off", "start"])
        _as_postgres([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "odconnect"])
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/odconnect"
    finally:
        if (data / "postmaster.pid").exists():
            _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"])
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def redis_server() -> Iterator[str]:
    """A Redis with no persistence; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("Redis", "apt-get install redis-server")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.time() < deadline, "redis-server did not start"
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def call(base: str, path: str, key: str, method: str = "GET", body=None, timeout: float = 60):
    """(status, body) of a request to a server started as a process: JSON decoded, other bodies
    (the /metrics page) as bytes."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"X-API-Key": key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw and r.headers.get_content_type().endswith("json") else raw or None)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def wait_until(check, timeout: float, what: str):
    """`check()`'s first true value, retried while the servers start (connection errors count as
    not yet); TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.time() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
        except OSError:  # URLError and ConnectionError are OSErrors
            pass
        if time.time() >= deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.3)
