"""A small, honest replayer of flow definitions against a live odconnect server (a test tool).

It reads a flow (a solution's workflow JSON, ``{"properties": {"definition": ...}}``, or a bare
Logic Apps workflow definition), walks the trigger's ``actions`` in ``runAfter`` order and, for each
``OpenApiConnection`` action of the odconnect connector, turns ``inputs.host.operationId`` and
``inputs.parameters`` into the HTTP call the Swagger 2.0 definition describes (path, query and
header parameters by name; ``body`` or ``body/a/b`` into the JSON body), as Power Automate does.
A 202 answer with ``Location`` is polled like Power Automate's asynchronous pattern (GET the
Location after ``Retry-After`` seconds until the answer is not 202).

What it does not do: call other connectors (their actions get the outputs you stub, or none; their
evaluated inputs are recorded so you can check them), retry policies, loops, variables, scopes
other than ``If``, or more of the expression language than the flows here use: ``@expr``,
``@{expr}`` inside strings, ``?['key']`` / ``['key']`` / ``[0]`` / ``.key`` accessors, and the
functions in ``FUNCTIONS``. Anything else raises ``ReplayError`` instead of guessing.

Only the Python standard library: ``python flows_examples/replay.py FLOW.json --base URL --key KEY``.
"""
from __future__ import annotations

import argparse
import base64
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

CONNECTOR = "shared_odconnect"


class ReplayError(Exception):
    pass


# --- the expression language (a subset) ---------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
                    r"|(?P<op>\?\[|\[|\]|\(|\)|,|\.|\?))")


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ReplayError(f"cannot read expression at {text[pos:]!r}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _num(x):
    if isinstance(x, bool) or x is None:
        raise ReplayError(f"{x!r} is not a number")
    return x if isinstance(x, (int, float)) else float(x)


def _text(value) -> str:
    """How a value reads inside a string (``@{...}``)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    return json.dumps(value, separators=(",", ":")) if isinstance(value, (dict, list)) else str(value)


FUNCTIONS = {
    "concat": lambda *a: "".join(_text(x) for x in a),
    "join": lambda arr, sep: sep.join(_text(x) for x in (arr or [])),
    "string": _text,
    "int": lambda x: int(float(x)),
    "float": lambda x: float(x),
    "add": lambda a, b: _num(a) + _num(b),
    "sub": lambda a, b: _num(a) - _num(b),
    "equals": lambda a, b: a == b,
    "greater": lambda a, b: _num(a) > _num(b),
    "greaterOrEqual": lambda a, b: _num(a) >= _num(b),
    "less": lambda a, b: _num(a) < _num(b),
    "lessOrEqual": lambda a, b: _num(a) <= _num(b),
    "and": lambda *a: all(bool(x) for x in a),
    "or": lambda *a: any(bool(x) for x in a),
    "not": lambda a: not a,
    "if": lambda c, a, b: a if c else b,
    "coalesce": lambda *a: next((x for x in a if x is not None), None),
    "length": lambda x: len(x),
    "empty": lambda x: not x,
    "first": lambda x: x[0] if x else None,
}


class _Parser:
    def __init__(self, text: str, scope: "Scope"):
        self.toks, self.i, self.scope = _tokens(text), 0, scope

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def take(self, value=None):
        tok = self.peek()
        if tok[0] is None or (value is not None and tok[1] != value):
            raise ReplayError(f"expected {value!r}, found {tok[1]!r}")
        self.i += 1
        return tok

    def parse(self):
        value = self.expr()
        if self.i != len(self.toks):
            raise ReplayError(f"unexpected {self.peek()[1]!r}")
        return value

    def expr(self):
        value = self.primary()
        while True:
            kind, tok = self.peek()
            if tok in ("?[", "["):
                self.take()
                key = self.expr()
                self.take("]")
                value = _index(value, key, safe=tok == "?[")
            elif tok == "?" and self.toks[self.i + 1][1] == ".":  # ?.key
                self.i += 2
                value = _index(value, self.take()[1], safe=True)
            elif tok == ".":
                self.take()
                value = _index(value, self.take()[1], safe=False)
            else:
                return value

    def primary(self):
        kind, tok = self.take()
        if kind == "str":
            return tok[1:-1].replace("''", "'")
        if kind == "num":
            return float(tok) if "." in tok else int(tok)
        if kind == "name":
            if tok in ("true", "false", "null"):
                return {"true": True, "false": False, "null": None}[tok]
            self.take("(")
            args = []
            if self.peek()[1] != ")":
                args.append(self.expr())
                while self.peek()[1] == ",":
                    self.take()
                    args.append(self.expr())
            self.take(")")
            return self.scope.call(tok, args)
        raise ReplayError(f"unexpected {tok!r}")


def _index(value, key, safe: bool):
    if value is None:
        if safe:
            return None
        raise ReplayError(f"cannot read {key!r} of null")
    if isinstance(value, list):
        if not isinstance(key, int):
            raise ReplayError(f"a list is indexed by a number, not {key!r}")
        return value[key] if -len(value) <= key < len(value) else None
    if isinstance(value, dict):
        if key in value:
            return value[key]
        if isinstance(key, str) and "/" in key:  # 'body/{Identifier}': the designer's path keys
            for part in key.split("/"):
                value = _index(value, part, True)
            return value
        if safe:
            return None
        raise ReplayError(f"no property {key!r}")
    if safe:
        return None
    raise ReplayError(f"cannot read {key!r} of {type(value).__name__}")


class Scope:
    """What expressions see: the trigger, finished actions, the current Select item, parameters."""

    def __init__(self, trigger: dict, actions: dict, parameters: dict):
        self.trigger, self.actions, self.parameters = trigger, actions, parameters
        self.item = None

    def call(self, name: str, args: list):
        if name == "triggerOutputs":
            return self.trigger
        if name == "triggerBody":
            return self.trigger.get("body")
        if name in ("outputs", "body", "actions"):
            action = self.actions.get(args[0])
            if action is None:
                raise ReplayError(f"{name}({args[0]!r}): no such action has run")
            if name == "actions":
                return action
            return action["outputs"] if name == "outputs" else (action["outputs"] or {}).get("body")
        if name == "item":
            return self.item
        if name == "parameters":
            return self.parameters.get(args[0])
        if name in FUNCTIONS:
            return FUNCTIONS[name](*args)
        raise ReplayError(f"function {name}() is not supported by the replayer")

    def evaluate(self, value):
        """A workflow value: strings starting with @ are expressions, @{...} interpolates."""
        if isinstance(value, dict):
            return {k: self.evaluate(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.evaluate(v) for v in value]
        if not isinstance(value, str):
            return value
        if value.startswith("@@"):
            return value[1:]
        if value.startswith("@") and not value.startswith("@{"):
            return _Parser(value[1:], self).parse()
        if "@{" not in value:
            return value
        out, pos = [], 0
        while True:
            start = value.find("@{", pos)
            if start < 0:
                out.append(value[pos:])
                return "".join(out)
            end = _closing(value, start + 1)
            out.append(value[pos:start])
            out.append(_text(_Parser(value[start + 2:end], self).parse()))
            pos = end + 1

    def condition(self, expression):
        """An If's expression: a string expression, or the designer's {"and": [{"equals": [a, b]}]} form."""
        if isinstance(expression, str):
            return bool(self.evaluate(expression))
        if isinstance(expression, dict) and len(expression) == 1:
            (op, args), = expression.items()
            values = [self.condition(a) if isinstance(a, dict) else self.evaluate(a) for a in args] \
                if isinstance(args, list) else [self.condition(args) if isinstance(args, dict) else self.evaluate(args)]
            if op not in FUNCTIONS:
                raise ReplayError(f"condition {op} is not supported")
            return bool(FUNCTIONS[op](*values))
        raise ReplayError(f"cannot read condition {expression!r}")


def _closing(text: str, open_at: int) -> int:
    """Index of the } closing the { at open_at, skipping quoted strings."""
    depth, i, quoted = 0, open_at, False
    while i < len(text):
        c = text[i]
        if c == "'":
            quoted = not quoted
        elif not quoted and c == "{":
            depth += 1
        elif not quoted and c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ReplayError(f"unclosed @{{ in {text!r}")


# --- the connector side -----------------------------------------------------------------------

def definition_of(flow: dict) -> dict:
    return flow["properties"]["definition"] if "properties" in flow else flow


def operations(swagger: dict) -> dict[str, tuple[str, str, dict]]:
    out = {}
    for path, item in swagger["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and "operationId" in op:
                out[op["operationId"]] = (method, path, op)
    return out


def is_connector(host: dict, connector: str = CONNECTOR) -> bool:
    name = host.get("connectionName") or host.get("apiId", "").rsplit("/", 1)[-1]
    return name == connector or name.startswith(connector + "-")


def _body_schema(swagger: dict, op: dict) -> dict | None:
    for p in op.get("parameters", []):
        if p["in"] == "body":
            return _deref(swagger, p.get("schema", {}))
    return None


def _deref(swagger: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = swagger["definitions"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def check_parameters(swagger: dict, operation_id: str, parameters: dict) -> list[str]:
    """Problems with an action's parameters: unknown names, body paths the schema lacks."""
    ops = operations(swagger)
    if operation_id not in ops:
        return [f"operation {operation_id} is not in the connector"]
    _, _, op = ops[operation_id]
    named = {p["name"]: p for p in op.get("parameters", []) if p["in"] != "body"}
    body = _body_schema(swagger, op)
    problems = []
    for key in parameters:
        if key in named:
            continue
        if key == "body" or key.startswith("body/"):
            if body is None:
                problems.append(f"{operation_id} takes no body, yet {key} is set")
                continue
            schema = body
            for part in key.split("/")[1:]:
                props = _deref(swagger, schema).get("properties", {})
                if part not in props:
                    problems.append(f"{operation_id}: body has no property {key}")
                    break
                schema = _deref(swagger, props[part])
            continue
        problems.append(f"{operation_id} has no parameter {key}")
    for p in op.get("parameters", []):
        given = p["name"] in parameters if p["in"] != "body" else any(
            k == "body" or k.startswith("body/") for k in parameters)
        if p.get("required") and not given and p.get("x-ms-notification-url") is None:
            problems.append(f"{operation_id}: required parameter {p['name']} is missing")
    return problems


class Headers(dict):
    """HTTP headers: looked up whatever their case (servers send them lower-cased or not)."""

    def _key(self, name):
        return next((k for k in self.keys() if k.lower() == str(name).lower()), name)

    def __getitem__(self, name):
        return super().__getitem__(self._key(name))

    def __contains__(self, name):
        return super().__contains__(self._key(name))

    def get(self, name, default=None):
        return super().get(self._key(name), default)


class Connector:
    """Calls the server as a custom connector would: the Swagger 2.0 definition decides the request."""

    def __init__(self, swagger: dict, base_url: str, api_key: str, poll_timeout: float = 300,
                 sleep=time.sleep, max_retry_after: float | None = None):
        self.swagger, self.ops = swagger, operations(swagger)
        parts = urllib.parse.urlsplit(base_url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.base_path = swagger.get("basePath", "/").rstrip("/")
        self.api_key, self.poll_timeout, self.sleep = api_key, poll_timeout, sleep
        self.max_retry_after = max_retry_after
        scheme = next(iter(swagger.get("securityDefinitions", {}).values()), {})
        self.key_header = scheme.get("name", "X-API-Key")
        self.log: list[dict] = []

    def _http(self, method: str, url: str, body: bytes | None = None, headers: dict | None = None) -> dict:
        headers = {self.key_header: self.api_key, **(headers or {})}
        req = urllib.request.Request(url, data=body, method=method.upper(), headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                status, raw, resp_headers = resp.status, resp.read(), Headers(resp.headers.items())
        except urllib.error.HTTPError as exc:
            status, raw, resp_headers = exc.code, exc.read(), Headers(exc.headers.items())
        ctype = resp_headers.get("Content-Type", "")
        if "json" in ctype:
            parsed = json.loads(raw) if raw else None
        elif raw:  # how Power Automate hands binary content to the next action
            parsed = {"$content-type": ctype, "$content": base64.b64encode(raw).decode()}
        else:
            parsed = None
        self.log.append({"method": method.upper(), "url": url, "status": status})
        return {"statusCode": status, "headers": resp_headers, "body": parsed}

    def url(self, location: str) -> str:
        return location if "://" in location else self.origin + location

    def call(self, operation_id: str, parameters: dict) -> dict:
        problems = check_parameters(self.swagger, operation_id, parameters)
        if problems:
            raise ReplayError("; ".join(problems))
        method, path, op = self.ops[operation_id]
        query, headers, body = [], {}, None
        for p in op.get("parameters", []):
            if p["in"] == "path":
                path = path.replace("{" + p["name"] + "}", urllib.parse.quote(_text(parameters[p["name"]]), safe=""))
            elif p["in"] == "query" and p["name"] in parameters and parameters[p["name"]] is not None:
                query.append((p["name"], _text(parameters[p["name"]])))
            elif p["in"] == "header" and p["name"] in parameters:
                headers[p["name"]] = _text(parameters[p["name"]])
        for key, value in parameters.items():
            if key == "body":
                body = value
            elif key.startswith("body/"):
                body = body if isinstance(body, dict) else {}
                node = body
                parts = key.split("/")[1:]
                for part in parts[:-1]:
                    node = node.setdefault(part, {})
                node[parts[-1]] = value
        data = None
        if body is not None:
            ctype = (op.get("consumes") or self.swagger.get("consumes") or ["application/json"])[0]
            headers["Content-Type"] = ctype
            data = json.dumps(body).encode() if ctype == "application/json" else body
        headers["Accept"] = (op.get("produces") or ["application/json"])[0]
        url = self.origin + self.base_path + path + ("?" + urllib.parse.urlencode(query) if query else "")
        response = self._http(method, url, data, headers)
        return self._follow_async(response)

    def _follow_async(self, response: dict) -> dict:
        """Power Automate's asynchronous pattern: while 202 with Location, wait Retry-After and GET it."""
        deadline = time.monotonic() + self.poll_timeout
        polls = 0
        while response["statusCode"] == 202 and response["headers"].get("Location"):
            if time.monotonic() > deadline:
                raise ReplayError(f"still 202 after {self.poll_timeout}s")
            wait = float(response["headers"].get("Retry-After", 5))
            self.sleep(min(wait, self.max_retry_after) if self.max_retry_after is not None else wait)
            response = self._http("GET", self.url(response["headers"]["Location"]))
            polls += 1
        response["polls"] = polls
        return response

    def subscribe(self, trigger: dict, notification_url: str, evaluate=lambda v: v) -> dict:
        """A webhook trigger being saved: POST the subscription with the flow's callback URL in it."""
        host, params = trigger["inputs"]["host"], evaluate(dict(trigger["inputs"].get("parameters", {})))
        method, path, op = self.ops[host["operationId"]]
        if not op.get("x-ms-trigger"):
            raise ReplayError(f"{host['operationId']} is not a trigger")
        schema = _body_schema(self.swagger, op) or {}
        url_props = [k for k, v in schema.get("properties", {}).items() if v.get("x-ms-notification-url")]
        if len(url_props) != 1:
            raise ReplayError(f"{host['operationId']} has no x-ms-notification-url property")
        params["body/" + url_props[0]] = notification_url
        response = self.call(host["operationId"], params)
        if response["statusCode"] != 201 or "Location" not in response["headers"]:
            raise ReplayError(f"subscribing answered {response['statusCode']} without Location: {response['body']}")
        return response

    def delete_operation(self, location: str) -> str:
        """The DELETE operation of the definition whose path matches a subscription's Location."""
        path = urllib.parse.urlsplit(location).path
        if path.startswith(self.base_path):
            path = path[len(self.base_path):]
        for op_id, (method, template, _) in self.ops.items():
            pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
            if method == "delete" and re.match(pattern, path):
                return op_id
        raise ReplayError(f"no DELETE operation matches {location}")

    def unsubscribe(self, location: str) -> dict:
        """The trigger being removed: DELETE the Location (through the connector's DELETE operation)."""
        self.delete_operation(location)
        return self._http("DELETE", self.url(location))


# --- the flow ---------------------------------------------------------------------------------

class Run:
    def __init__(self):
        self.actions: dict[str, dict] = {}
        self.order: list[str] = []
        self.response = None

    def status(self, name: str) -> str | None:
        return self.actions.get(name, {}).get("status")


def replay(flow: dict, connector: Connector, trigger_outputs: dict | None = None, stubs: dict | None = None,
           connector_name: str = CONNECTOR) -> Run:
    """Run the flow's actions once, for one trigger firing (`trigger_outputs`: its headers and body)."""
    definition = definition_of(flow)
    parameters = {k: v.get("defaultValue") for k, v in definition.get("parameters", {}).items()}
    run = Run()
    scope = Scope(trigger_outputs or {}, run.actions, parameters)
    _run_actions(definition.get("actions", {}), run, scope, connector, stubs or {}, connector_name)
    return run


def _run_actions(actions: dict, run: Run, scope: Scope, connector: Connector, stubs: dict, connector_name: str):
    pending = dict(actions)
    while pending:
        ready = None
        for name, action in pending.items():
            after = action.get("runAfter", {})
            if all(run.status(dep) is not None for dep in after):
                ready = name
                break
        if ready is None:
            raise ReplayError(f"runAfter cannot be satisfied for {sorted(pending)}")
        action = pending.pop(ready)
        allowed = all(run.status(dep) in states for dep, states in action.get("runAfter", {}).items())
        if not allowed:
            run.actions[ready] = {"status": "Skipped", "inputs": None, "outputs": None}
            run.order.append(ready)
            continue
        run.actions[ready] = _run_one(ready, action, run, scope, connector, stubs, connector_name)
        run.order.append(ready)


def _run_one(name: str, action: dict, run: Run, scope: Scope, connector: Connector, stubs: dict,
             connector_name: str) -> dict:
    kind = action["type"]
    if kind == "OpenApiConnection":
        host = action["inputs"]["host"]
        params = scope.evaluate(action["inputs"].get("parameters", {}))
        if is_connector(host, connector_name):
            out = connector.call(host["operationId"], params)
            ok = 200 <= out["statusCode"] < 300
            return {"status": "Succeeded" if ok else "Failed", "inputs": params, "outputs": out,
                    "operationId": host["operationId"]}
        stub = stubs.get(name)
        outputs = stub(params) if callable(stub) else (stub or {"statusCode": 200, "body": None})
        return {"status": "Succeeded", "inputs": params, "outputs": outputs, "operationId": host["operationId"]}
    if kind == "Compose":
        value = scope.evaluate(action["inputs"])
        return {"status": "Succeeded", "inputs": value, "outputs": {"body": value}}
    if kind == "Select":
        items = scope.evaluate(action["inputs"]["from"]) or []
        mapped = []
        for item in items:
            scope.item = item
            mapped.append(scope.evaluate(action["inputs"]["select"]))
        scope.item = None
        return {"status": "Succeeded", "inputs": items, "outputs": {"body": mapped}}
    if kind == "If":
        result = scope.condition(action["expression"])
        branch = action.get("actions", {}) if result else action.get("else", {}).get("actions", {})
        _run_actions(branch, run, scope, connector, stubs, connector_name)
        return {"status": "Succeeded", "inputs": None, "outputs": {"expression": result}}
    if kind == "Response":
        value = scope.evaluate(action["inputs"])
        run.response = value
        return {"status": "Succeeded", "inputs": value, "outputs": value}
    raise ReplayError(f"action {name}: type {kind} is not supported by the replayer")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("flow")
    parser.add_argument("--base", required=True, help="the server, e.g. http://127.0.0.1:8080")
    parser.add_argument("--key", required=True, help="its API key")
    parser.add_argument("--swagger", help="the connector definition (default: the server's)")
    parser.add_argument("--trigger-body", default="null", help="JSON for triggerBody()")
    args = parser.parse_args(argv)
    if args.swagger:
        swagger = json.loads(Path(args.swagger).read_text())
    else:
        with urllib.request.urlopen(args.base.rstrip("/") + "/api/v1/connector/apiDefinition.swagger.json") as r:
            swagger = json.loads(r.read())
    connector = Connector(swagger, args.base, args.key)
    run = replay(json.loads(Path(args.flow).read_text()), connector,
                 {"body": json.loads(args.trigger_body)})
    for name in run.order:
        a = run.actions[name]
        status = (a.get("outputs") or {}).get("statusCode", "")
        print(f"{name}: {a['status']} {status}")
    if run.response is not None:
        print(json.dumps(run.response, indent=2)[:2000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
