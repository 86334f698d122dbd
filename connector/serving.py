"""Running the service under uvicorn: one process, or several (`odconnect serve --workers N`).

Several processes share the store (and, with a broker, the Celery workers); each builds its own
app from the same configuration (uvicorn imports `app_from_environment` in every process), warms
the published versions and answers detects. A publish reaches every process at once: each detect
reads the published version from the database, and each process's warm-up loop loads a newly
published version within `inference.warm_poll_seconds`.
"""
from __future__ import annotations

import atexit
import os
import shutil
import secrets
import tempfile
from pathlib import Path

from .config import load_config


def ensure_api_key(cfg: dict) -> str | None:
    """With no key configured, create one in <root>/api_key (0600) so the service is never open."""
    if cfg["security"]["api_keys"]:
        return None
    key_file = Path(cfg["storage"]["root"]) / "api_key"
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process of the same server made it first
            fd = None
        if fd is not None:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32) + "\n")
    cfg["security"]["api_keys"] = [key_file.read_text().strip()]
    return str(key_file)


def _tune(cfg: dict) -> None:
    if cfg["server"]["tune_malloc"]:
        from .malloc_tuning import tune_glibc_malloc
        tune_glibc_malloc()  # before create_app starts any thread


def app_from_environment():
    """The app of one of several server processes (the configuration comes from the environment)."""
    from .app import create_app
    cfg = load_config()
    ensure_api_key(cfg)
    _tune(cfg)
    app = create_app(cfg)
    atexit.register(app.odconnect.close)
    return app


def _spinning_would_crowd(cfg: dict, workers: int) -> bool:
    """Whether ``workers`` processes, each running a lone forward pass on every intra-op thread it
    has, would need more cores than the machine has."""
    inference, cores = cfg["inference"], os.cpu_count() or 1
    return bool(inference["onnx_spin_when_alone"]) and workers * (inference["onnx_threads"] or cores) > cores


def serve(cfg: dict, config_path: str | None, workers: int) -> None:
    import uvicorn  # the ASGI server Connexion's own runner wraps, without its development warning
    host, port = cfg["server"]["host"], cfg["server"]["port"]
    if workers <= 1:
        from .app import create_app
        _tune(cfg)
        app = create_app(cfg)
        try:
            uvicorn.run(app, host=host, port=port, log_level="info")
        finally:
            app.odconnect.close()
        return
    # Every process reads the same configuration; the metrics of all of them are summed.
    if _spinning_would_crowd(cfg, workers):
        # a process sees only its own requests: its spinning threads would hold cores the others need
        os.environ["ODCONNECT_INFERENCE__ONNX_SPIN_WHEN_ALONE"] = "false"
    if config_path:
        os.environ["ODCONNECT_CONFIG"] = str(Path(config_path).resolve())
    os.environ["ODCONNECT_STORAGE__ROOT"] = cfg["storage"]["root"]
    made = None if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else tempfile.mkdtemp(prefix="odconnect-metrics-")
    if made:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = made
    try:
        uvicorn.run("connector.serving:app_from_environment", factory=True, host=host, port=port,
                    workers=workers, log_level="info")
    finally:
        if made:  # the counters die with the processes that counted them
            shutil.rmtree(made, ignore_errors=True)
