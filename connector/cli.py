"""The `odconnect` command: the server (serve, weights, connector, db) and the client commands that talk to a running server."""
from __future__ import annotations

import argparse
import logging
import os
import secrets
import warnings
import sys
from pathlib import Path

from .config import ConfigError, load_config
from .routes import API_PREFIX, SWAGGER_UI


def ensure_api_key(cfg: dict) -> str | None:
    """With no key configured, create one in <root>/api_key (0600) so the service is never open."""
    if cfg["security"]["api_keys"]:
        return None
    key_file = Path(cfg["storage"]["root"]) / "api_key"
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32) + "\n")
    cfg["security"]["api_keys"] = [key_file.read_text().strip()]
    return str(key_file)


def cmd_serve(args) -> int:
    cfg = load_config(args.config)
    if args.host:
        cfg["server"]["host"] = args.host
    if args.port:
        cfg["server"]["port"] = args.port
    key_file = ensure_api_key(cfg)
    if cfg["server"]["tune_malloc"]:
        from .malloc_tuning import tune_glibc_malloc
        tune_glibc_malloc()  # before create_app starts any thread
    from .app import create_app

    app = create_app(cfg)
    host, port = cfg["server"]["host"], cfg["server"]["port"]
    api = f"http://{host}:{port}{API_PREFIX}"
    print(f"odconnect: store {cfg['storage']['root']}, API at {api}, Swagger UI at {api}{SWAGGER_UI}", flush=True)
    if key_file:
        print(f"odconnect: API key (header X-API-Key) is in {key_file}", flush=True)
    import uvicorn  # the ASGI server Connexion's own runner wraps, without its development warning
    try:
        uvicorn.run(app, host=host, port=port, log_level="info")
    finally:
        app.odconnect.close()
    return 0


def cmd_weights_add(args) -> int:
    from model_store import Store
    from .errors import OdError
    from .services.weights import add_weights

    cfg = load_config(args.config)
    store = Store(cfg["storage"]["database_url"], cfg["storage"]["root"])
    try:
        entry = add_weights(store, args.path, args.name)
    except OdError as exc:
        print(f"odconnect: {exc.detail}", file=sys.stderr)
        return 2
    finally:
        store.dispose()
    print(f"added weights {entry['name']!r} ({entry['sizeBytes']} bytes, sha256 {entry['sha256'][:12]}); "
          f"train with {{\"weights\": \"{entry['name']}\"}}")
    return 0


def cmd_connector_export(args) -> int:
    """The Power Platform custom connector package as a zip (no server or store needed)."""
    from .powerplatform import package
    files = package.build(args.host, [args.scheme] if args.scheme else None)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(package.zip_bytes(files))
    host = args.host or f"{package.swagger2.PLACEHOLDER_HOST} (a placeholder: set your host at import)"
    print(f"wrote {out}: {', '.join(package.FILES)}; host {host}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="odconnect", description=__doc__)
    parser.add_argument("--config", help="YAML config file (defaults: connector/config.py)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=cmd_serve)
    weights = sub.add_parser("weights", help="local pretrained weight files").add_subparsers(dest="action", required=True)
    add = weights.add_parser("add", help="copy a detectron2 model-zoo or backbone .pth/.pkl file into the store")
    add.add_argument("path")
    add.add_argument("--name", help="name to train with (default: the file name)")
    add.set_defaults(func=cmd_weights_add)
    connector = sub.add_parser("connector", help="the Power Platform custom connector").add_subparsers(
        dest="action", required=True)
    export = connector.add_parser("export", help="write the connector package (swagger, properties, icon, readme) as a zip")
    export.add_argument("--out", default="odconnect-connector.zip", help="zip to write (default: %(default)s)")
    export.add_argument("--host", help="your server's host[:port] (default: a placeholder to set at import)")
    export.add_argument("--scheme", choices=["https", "http"], help="scheme the connector calls (default: https)")
    export.set_defaults(func=cmd_connector_export)
    from .client import register as register_client_commands
    register_client_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # connexion imports starlette's test client at start-up, which warns about httpx; not ours to fix
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"odconnect: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
