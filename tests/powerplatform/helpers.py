"""Shared pieces: the connector rules (from the lint), a live server on loopback, a webhook receiver."""
from __future__ import annotations

import copy
import queue
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema

# The connector rules live in connector/powerplatform/lint.py (`odconnect connector lint` runs them
# too); the tests call the same functions.
from connector.powerplatform.lint import MAX_BYTES, check_definition, swagger2_schema  # noqa: F401
from connector.spec import load_spec

SPEC = load_spec()  # read once: YAML parsing takes a second on a busy machine


def check_connector(swagger: dict, raw: bytes | None = None, structure: bool = True) -> list[str]:
    """The lint's rules on a definition, with the served spec (it gives the reasons for two 2xx)."""
    return check_definition(swagger, raw, SPEC, structure=structure)


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
