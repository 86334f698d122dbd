"""The `odconnect` command: the server (serve, weights, connector, db) and the client commands that talk to a running server."""
from __future__ import annotations

import argparse
import logging
import os
import warnings
import sys
from pathlib import Path

from .config import ConfigError, load_config
from .routes import API_PREFIX, SWAGGER_UI

EXAMPLES = Path(__file__).resolve().parent.parent / "flows_examples"  # in a checkout


def cmd_serve(args) -> int:
    from .serving import ensure_api_key, serve
    cfg = load_config(args.config)
    if args.host:
        cfg["server"]["host"] = args.host
    if args.port:
        cfg["server"]["port"] = args.port
    key_file = ensure_api_key(cfg)
    host, port = cfg["server"]["host"], cfg["server"]["port"]
    api = f"http://{host}:{port}{API_PREFIX}"
    print(f"odconnect: store {cfg['storage']['root']}, API at {api}, Swagger UI at {api}{SWAGGER_UI}"
          + (f", {args.workers} processes" if args.workers > 1 else ""), flush=True)
    if key_file:
        print(f"odconnect: API key (header X-API-Key) is in {key_file}", flush=True)
    serve(cfg, args.config, args.workers)
    return 0


def cmd_worker(args) -> int:
    """A Celery training worker: one run at a time, on this machine's CPU or GPU."""
    cfg = load_config(args.config)
    if not cfg["jobs"]["broker_url"]:
        print("odconnect: set jobs.broker_url (e.g. ODCONNECT_JOBS__BROKER_URL=redis://host:6379/0) "
              "to run training workers", file=sys.stderr)
        return 2
    if args.threads is not None:
        cfg["jobs"]["worker_threads"] = args.threads
    if cfg["jobs"]["worker_threads"] < 0:
        print("odconnect: worker threads must be 0 (every core) or more", file=sys.stderr)
        return 2
    from .jobs.celery_app import run_worker
    run_worker(cfg, args.device)
    return 0


def cmd_db(args) -> int:
    """Schema migrations of the store's database (Alembic)."""
    from sqlalchemy import create_engine
    from model_store.migrate import current_revision, head_revision, upgrade
    cfg = load_config(args.config)
    engine = create_engine(cfg["storage"]["database_url"])
    try:
        if args.action == "upgrade":
            before, after = upgrade(engine)
            print(f"odconnect: database upgraded from {before or 'empty'} to {after}")
        else:
            with engine.connect() as conn:
                print(f"odconnect: database at {current_revision(conn) or 'no revision'}; "
                      f"this odconnect needs {head_revision()}")
    finally:
        engine.dispose()
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


def _open_store(cfg: dict):
    from model_store import Store
    return Store(cfg["storage"]["database_url"], cfg["storage"]["root"])


def cmd_keys(args) -> int:
    """Scoped API keys in the store: a running server sees a new or revoked key on its next request."""
    from .errors import OdError
    from .services import keys

    store = _open_store(load_config(args.config))
    try:
        if args.action == "create":
            key, row = keys.create_key(store, args.name, args.scope)
            print(f"created API key {row['id']} ({row['name']}, scope {row['scope']}):\n{key}\n"
                  "It is shown only now: store it where the client keeps secrets.")
        elif args.action == "revoke":
            row = keys.revoke_key(store, args.id)
            print(f"revoked API key {row['id']} ({row['name']}, scope {row['scope']})")
        else:
            rows = keys.list_keys(store)
            head = ("id", "name", "scope", "prefix", "created", "lastUsed", "revoked")
            table = [head] + [tuple(str(r[c] if r[c] is not None else "-") for c in head) for r in rows]
            widths = [max(len(line[i]) for line in table) for i in range(len(head))]
            for line in table:
                print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
    except OdError as exc:
        print(f"odconnect: {exc.detail}", file=sys.stderr)
        return 2
    finally:
        store.dispose()
    return 0


def _connector_package(args) -> dict[str, bytes]:
    """The package for the configured publisher (`connector` settings) and the host given, if any."""
    from .powerplatform import package
    publisher = package.Publisher.from_config(load_config(args.config)["connector"])
    return package.build(args.host, [args.scheme] if args.scheme else None, None, publisher)


def cmd_connector_export(args) -> int:
    """The Power Platform custom connector package as a zip (no server or store needed)."""
    from .powerplatform import package
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(package.zip_bytes(_connector_package(args)))
    host = args.host or "none (each connection gives its server address)"
    print(f"wrote {out}: {', '.join(package.FILES)}; host {host}")
    return 0


def cmd_connector_lint(args) -> int:
    """Every certification rule on the package export would write; exit 1 when one fails."""
    from .powerplatform.lint import lint
    from .spec import load_spec
    problems = lint(_connector_package(args), load_spec(), tenant=not args.neutral)
    for line in problems:
        print(line)
    what = "the neutral package" if args.neutral else "the package for your tenant"
    print(f"{what}: {len(problems)} problem{'s' if len(problems) != 1 else ''}" if problems else f"{what}: no problems")
    return 1 if problems else 0


def cmd_flows_export(args) -> int:
    """The example flows as a solution zip and legacy packages, for the connector's API name."""
    from .powerplatform.flows import FlowPackageError, export
    try:
        written = export(args.examples, args.connector_name, args.out)
    except FlowPackageError as exc:
        print(f"odconnect: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {written[0]} (a solution with {len(written) - 1} flows) and {len(written) - 1} legacy packages "
          f"in {written[0].parent / 'legacy'}; see flows_examples/README.md to import them")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="odconnect", description=__doc__)
    parser.add_argument("--config", help="YAML config file (defaults: connector/config.py)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, default=1,
                       help="server processes sharing the port and the store (default: %(default)s)")
    serve.set_defaults(func=cmd_serve)
    worker = sub.add_parser("worker", help="train queued runs from the broker (jobs.broker_url), one at a time")
    worker.add_argument("--device", default="cpu", help="cpu or cuda[:n] (default: %(default)s)")
    worker.add_argument("--threads", type=int, default=None,
                        help="CPU threads for training (default: jobs.worker_threads; 0: every core)")
    worker.set_defaults(func=cmd_worker)
    db = sub.add_parser("db", help="the store's database schema")
    db.add_argument("action", choices=["upgrade", "current"], help="upgrade to this version's schema, or show it")
    db.set_defaults(func=cmd_db)
    weights = sub.add_parser("weights", help="local pretrained weight files").add_subparsers(dest="action", required=True)
    add = weights.add_parser("add", help="copy a detectron2 model-zoo or backbone .pth/.pkl file into the store")
    add.add_argument("path")
    add.add_argument("--name", help="name to train with (default: the file name)")
    add.set_defaults(func=cmd_weights_add)
    keys = sub.add_parser("keys", help="scoped API keys (detect, train, admin)").add_subparsers(
        dest="action", required=True)
    create = keys.add_parser("create", help="make a key and print it (once)")
    create.add_argument("--scope", required=True, choices=["detect", "train", "admin"],
                        help="detect: detect and read models; train: also data, training, publishing; "
                             "admin: also deletes")
    create.add_argument("--name", required=True, help="what the key is for, e.g. \"Field app\"")
    create.set_defaults(func=cmd_keys)
    keys.add_parser("list", help="the stored keys (never the keys themselves)").set_defaults(func=cmd_keys)
    revoke = keys.add_parser("revoke", help="refuse a key from the next request on")
    revoke.add_argument("id", type=int)
    revoke.set_defaults(func=cmd_keys)
    connector = sub.add_parser("connector", help="the Power Platform custom connector").add_subparsers(
        dest="action", required=True)
    export = connector.add_parser("export", help="write the connector package (swagger, properties, icon, readme) as a zip")
    export.add_argument("--out", default="odconnect-connector.zip", help="zip to write (default: %(default)s)")
    lint = connector.add_parser("lint", help="check the package against Power Platform's certification rules")
    lint.add_argument("--neutral", action="store_true",
                      help="check the generic package (placeholders allowed for the publisher), not a tenant's")
    for command in (export, lint):
        command.add_argument("--host", help="your server's host[:port][/path] (default: none; each connection "
                                            "gives its server address)")
        command.add_argument("--scheme", choices=["https", "http"], help="scheme the connector calls (default: https)")
    export.set_defaults(func=cmd_connector_export)
    lint.set_defaults(func=cmd_connector_lint)
    flows = sub.add_parser("flows", help="the example flows").add_subparsers(dest="action", required=True)
    flows_export = flows.add_parser("export", help="write the example flows as importable packages")
    flows_export.add_argument("--connector-name", required=True,
                              help="your custom connector's API name, e.g. shared_odconnect-5f3c9e8d4b2a1c0d9e")
    flows_export.add_argument("--out", default="odconnect-flows", help="folder to write (default: %(default)s)")
    flows_export.add_argument("--examples", default=str(EXAMPLES), help="folder of flow JSON files (default: %(default)s)")
    flows_export.set_defaults(func=cmd_flows_export)
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
    except Exception as exc:
        # imported only here: the client commands start without the store's database stack
        from model_store.migrate import SchemaOutOfDate
        if not isinstance(exc, SchemaOutOfDate):
            raise
        print(f"odconnect: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
