"""The wheel carries the spec and every asset, and runs `odconnect serve` without the checkout."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.test_cli_serve import free_port

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "connector", "model_store", "openapi")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of the sources, so that the checkout gets no build/ folder."""
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "_openapi"))
        else:
            shutil.copy2(path, src / name)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(src)], check=True, capture_output=True, timeout=300)
    (built,) = out.glob("odconnect-*.whl")
    return built


def test_the_wheel_lists_the_spec_and_every_asset(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in (ROOT / "openapi").iterdir():
        assert f"connector/_openapi/{f.name}" in names
    for f in (ROOT / "connector").rglob("*"):
        if f.is_file() and "__pycache__" not in f.parts:
            assert f.relative_to(ROOT).as_posix() in names, f"{f.relative_to(ROOT)} is not in the wheel"
    assert not [n for n in names if n.startswith(("tests/", "bench/", "flows_examples/"))]


def test_the_wheel_serves_from_a_fresh_venv_without_the_checkout(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    # The project's own dependencies (torch, detectron2, ...) come from this environment's site-packages,
    # added as a plain path: its .pth files (the editable install of the checkout) are not processed.
    venv_site = Path(subprocess.check_output([str(venv / "bin" / "python"), "-c",
                                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    (venv_site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ODCONNECT_", "PYTHONPATH"))}
    env["ODCONNECT_STORAGE__ROOT"] = str(tmp_path / "data")
    where = subprocess.check_output([str(venv / "bin" / "python"), "-c", "import connector; print(connector.__file__)"],
                                    env=env, cwd=tmp_path, text=True).strip()
    assert where.startswith(str(venv_site)), where

    port = free_port()
    proc = subprocess.Popen([str(venv / "bin" / "odconnect"), "serve", "--port", str(port)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=5) as r:
                    assert json.loads(r.read())["status"] == "ok"
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stdout.read()
                assert time.time() < deadline, "the installed server did not start"
                time.sleep(0.5)
        with urllib.request.urlopen(base + "/openapi.json", timeout=10) as r:
            assert json.loads(r.read())["info"]["title"] == "odconnect"
        with urllib.request.urlopen(base + "/connector/apiDefinition.swagger.json", timeout=10) as r:
            assert json.loads(r.read())["swagger"] == "2.0"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
