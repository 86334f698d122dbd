"""Shared pieces: the connector rules checker, a live server on loopback, a webhook receiver."""
from __future__ import annotations

import copy
import importlib.resources
import json
import queue
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema

PASCAL = re.compile(r"^[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)*$")
VISIBILITY = {"important", "advanced", "internal"}
MAX_BYTES = 1024 * 1024


def swagger2_schema() -> dict:
    """The Swagger 2.0 JSON schema, as openapi-spec-validator ships it (no network)."""
    path = importlib.resources.files("openapi_spec_validator") / "resources/schemas/v2.0/schema.json"
    return json.loads(path.read_text())


def _walk_properties(schema, where: str, problems: list[str]) -> None:
    """Every property of every (nested) schema has an x-ms-summary and a valid visibility."""
    if not isinstance(schema, dict):
        return
    for name, prop in schema.get("properties", {}).items():
        if not prop.get("x-ms-summary"):
            problems.append(f"{where}.{name}: no x-ms-summary")
        if "x-ms-visibility" in prop and prop["x-ms-visibility"] not in VISIBILITY:
            problems.append(f"{where}.{name}: x-ms-visibility {prop['x-ms-visibility']!r}")
        if "nullable" in prop:
            problems.append(f"{where}.{name}: nullable is OpenAPI 3 (x-nullable in Swagger 2.0)")
        _walk_properties(prop, f"{where}.{name}", problems)
    if isinstance(schema.get("items"), dict):
        _walk_properties(schema["items"], where + "[]", problems)
    if isinstance(schema.get("additionalProperties"), dict):
        _walk_properties(schema["additionalProperties"], where + "{}", problems)
    for part in schema.get("allOf", []):
        _walk_properties(part, where, problems)


def check_connector(swagger: dict, raw: bytes | None = None) -> list[str]:
    """The Power Platform rules a certified connector follows, as a list of problems (empty: fine)."""
    problems = []
    if swagger.get("swagger") != "2.0":
        problems.append("not Swagger 2.0")
    if raw is not None and len(raw) >= MAX_BYTES:
        problems.append(f"{len(raw)} bytes: custom connectors take under 1 MB")
    if not swagger.get("host") or not swagger.get("basePath"):
        problems.append("host and basePath are needed")
    names = {m["propertyName"] for m in swagger.get("x-ms-connector-metadata", [])}
    for needed in ("Website", "Privacy policy", "Categories"):
        if needed not in names:
            problems.append(f"x-ms-connector-metadata lacks {needed}")
    ids = []
    for path, item in swagger["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or method.startswith("x-"):
                continue
            where = f"{method.upper()} {path}"
            op_id = op.get("operationId", "")
            ids.append(op_id)
            if not PASCAL.match(op_id):
                problems.append(f"{where}: operationId {op_id!r} is not PascalCase")
            summary, description = op.get("summary", ""), op.get("description", "")
            if not summary or len(summary) > 80 or summary[-1] in ".!?:;,":
                problems.append(f"{op_id}: summary {summary!r} (needed: 1-80 characters, no end punctuation)")
            if not description.endswith(".") or description.strip() == summary.strip():
                problems.append(f"{op_id}: description must end with a period and differ from the summary")
            if op.get("x-ms-visibility", "important") not in VISIBILITY:
                problems.append(f"{op_id}: x-ms-visibility {op['x-ms-visibility']!r}")
            responses = op.get("responses", {})
            success = [c for c in responses if c.startswith("2")]
            if not success:
                problems.append(f"{op_id}: no 2xx response (default-only responses are not allowed)")
            for code in success:
                if code not in ("202", "204") and "schema" not in responses[code]:
                    problems.append(f"{op_id}: {code} has no schema")
            for p in op.get("parameters", []):
                if not p.get("x-ms-summary"):
                    problems.append(f"{op_id}: parameter {p['name']} has no x-ms-summary")
                if p.get("x-ms-visibility") not in VISIBILITY:
                    problems.append(f"{op_id}: parameter {p['name']} has x-ms-visibility {p.get('x-ms-visibility')!r}")
                if p.get("x-ms-visibility") == "internal" and p.get("required") and "default" not in p:
                    problems.append(f"{op_id}: required internal parameter {p['name']} needs a default")
                if p["in"] == "body":
                    body = _inline(swagger, p["schema"])
                    _walk_properties(body, f"{op_id}.body", problems)
                    for pname, prop in body.get("properties", {}).items():
                        if prop.get("x-ms-dynamic-values"):
                            problems += _check_dynamic(swagger, op, op_id, pname, prop["x-ms-dynamic-values"])
                dyn = p.get("x-ms-dynamic-values")
                if dyn:
                    problems += _check_dynamic(swagger, op, op_id, p["name"], dyn)
            if op.get("x-ms-trigger"):
                problems += _check_trigger(swagger, path, item, op)
    for name in {i for i in ids if ids.count(i) > 1}:
        problems.append(f"operationId {name} is used twice")
    for name, schema in swagger.get("definitions", {}).items():
        _walk_properties(schema, f"definitions.{name}", problems)
    return problems


def _inline(swagger, schema):
    return swagger["definitions"][schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema


def _operation(swagger, op_id):
    for path, item in swagger["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and op.get("operationId") == op_id:
                return path, method, op
    return None


def _check_dynamic(swagger, op, op_id, name, dyn) -> list[str]:
    found = _operation(swagger, dyn.get("operationId"))
    if found is None:
        return [f"{op_id}.{name}: x-ms-dynamic-values calls missing {dyn.get('operationId')}"]
    _, method, target = found
    problems = []
    if method != "get":
        problems.append(f"{op_id}.{name}: x-ms-dynamic-values must call a GET")
    if not dyn.get("value-path") or not dyn.get("value-title"):
        problems.append(f"{op_id}.{name}: x-ms-dynamic-values needs value-path and value-title")
    own = {p["name"] for p in op.get("parameters", [])}
    wanted = {p["name"] for p in target.get("parameters", []) if p.get("required")}
    given = dyn.get("parameters", {})
    for pname, ref in given.items():
        if isinstance(ref, dict) and ref.get("parameter") not in own:
            problems.append(f"{op_id}.{name}: dynamic parameter {pname} refers to missing {ref.get('parameter')}")
    if wanted - set(given):
        problems.append(f"{op_id}.{name}: {dyn['operationId']} needs {sorted(wanted - set(given))}")
    items = target.get("responses", {}).get("200", {}).get("schema", {})
    item = _inline(swagger, items.get("items", {}))
    for key in ("value-path", "value-title"):
        if dyn.get(key) not in item.get("properties", {}):
            problems.append(f"{op_id}.{name}: {dyn['operationId']} items have no {dyn.get(key)}")
    return problems


def _check_trigger(swagger, path, item, op) -> list[str]:
    op_id, problems = op["operationId"], []
    if op["x-ms-trigger"] != "single":
        problems.append(f"{op_id}: x-ms-trigger should be single")
    body = next((p for p in op.get("parameters", []) if p["in"] == "body"), None)
    props = _inline(swagger, body["schema"]).get("properties", {}) if body else {}
    url = [k for k, v in props.items() if v.get("x-ms-notification-url") is True]
    if len(url) != 1 or props[url[0]].get("x-ms-visibility") != "internal":
        problems.append(f"{op_id}: needs one internal body property with x-ms-notification-url")
    created = op.get("responses", {}).get("201", {})
    if "Location" not in created.get("headers", {}):
        problems.append(f"{op_id}: 201 must declare the Location header")
    if "schema" not in item.get("x-ms-notification-content", {}):
        problems.append(f"{op_id}: the path needs x-ms-notification-content with the event schema")
    return problems


# --- JSON schema of a response, from the Swagger 2.0 definition ---------------------------------

def _jsonschema(node):
    """Swagger 2.0 schema -> JSON schema draft 4 (x-nullable -> null allowed; format: byte kept loose)."""
    if isinstance(node, list):
        return [_jsonschema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _jsonschema(v) for k, v in node.items() if not k.startswith("x-")}
    if node.get("x-nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = out["enum"] + [None]
    if node.get("x-nullable") and "$ref" in out:
        out = {"anyOf": [{"$ref": out.pop("$ref")}, {"type": "null"}]}
    return out


def response_validator(swagger: dict, schema: dict) -> jsonschema.Draft4Validator:
    full = {**_jsonschema(copy.deepcopy(schema)), "definitions": _jsonschema(swagger["definitions"])}
    return jsonschema.Draft4Validator(full)


def assert_matches(swagger: dict, schema: dict, value) -> None:
    errors = list(response_validator(swagger, schema).iter_errors(value))
    assert not errors, [f"{list(e.path)}: {e.message[:200]}" for e in errors[:5]]


# --- loopback servers --------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """The Connexion app under uvicorn in a thread: real HTTP on 127.0.0.1."""

    def __init__(self, app):
        import uvicorn
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.time() < deadline, "the server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


class Receiver:
    """A webhook receiver on 127.0.0.1: records each POST, answers the queued statuses (then 200)."""

    def __init__(self, statuses=(), port: int = 0):
        self.statuses = list(statuses)
        self.received: queue.Queue = queue.Queue()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = outer.statuses.pop(0) if outer.statuses else 200
                outer.received.put({"path": self.path, "headers": dict(self.headers.items()), "body": body,
                                    "answered": status})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def get(self, timeout: float = 20) -> dict:
        return self.received.get(timeout=timeout)

    def none_within(self, seconds: float) -> bool:
        try:
            self.received.get(timeout=seconds)
            return False
        except queue.Empty:
            return True
