"""`odconnect keys` against the store of a running `odconnect serve`: a new key works and a revoked one
fails at once, without a restart.

"At once" means: the first request that starts after `odconnect keys revoke` has returned is refused.
The server reads the api_keys table on every request (no cache of keys), so nothing else is needed.
"""
import os
import re
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

from tests.test_cli_serve import free_port, request

ROOT = Path(__file__).resolve().parent.parent


def odconnect(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "connector.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def test_keys_made_and_revoked_on_a_running_server(tmp_path):
    port = free_port()
    env = {**os.environ, "ODCONNECT_STORAGE__ROOT": str(tmp_path / "data")}
    env.pop("ODCONNECT_API_KEYS", None)
    proc = subprocess.Popen([sys.executable, "-m", "connector.cli", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.time() + 90
        while True:
            try:
                request(base + "/health")
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stdout.read()
                assert time.time() < deadline, "server did not start"
                time.sleep(0.3)
        admin = (tmp_path / "data" / "api_key").read_text().strip()
        assert request(base + "/models", "POST", {"name": "fruit", "labels": ["apple"]}, admin)[0] == 201

        made = odconnect(env, "keys", "create", "--scope", "detect", "--name", "Field app")
        assert made.returncode == 0, made.stderr
        key = re.search(r"^(odk_\S+)$", made.stdout, re.MULTILINE).group(1)
        key_id = re.search(r"created API key (\d+) \(Field app, scope detect\)", made.stdout).group(1)
        # the running server knows the new key at once; its scope allows reading and refuses building
        assert request(base + "/models/fruit", key=key)[0] == 200
        status, problem = request(base + "/models", "POST", {"name": "pears", "labels": ["pear"]}, key)
        assert status == 403 and problem["requiredScope"] == "train"
        listed = odconnect(env, "keys", "list")
        assert listed.returncode == 0 and "Field app" in listed.stdout and key not in listed.stdout
        row = next(line for line in listed.stdout.splitlines() if "Field app" in line)
        assert re.search(r"\d{4}-\d\d-\d\dT", row.split("detect", 1)[1])  # last used is recorded

        revoked = odconnect(env, "keys", "revoke", key_id)
        assert revoked.returncode == 0 and f"revoked API key {key_id}" in revoked.stdout
        status, problem = request(base + "/models/fruit", key=key)  # the first request after the revoke
        assert status == 401 and "revoked" in problem["detail"]
        assert request(base + "/models/fruit", key=admin)[0] == 200  # the configured key is untouched
        again = odconnect(env, "keys", "revoke", key_id)
        assert again.returncode == 2 and "already revoked" in again.stderr
        assert odconnect(env, "keys", "create", "--scope", "root", "--name", "x").returncode == 2  # argparse
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    output = proc.stdout.read()
    assert key not in output and admin not in output  # keys are never logged
