"""The served OpenAPI 3.0 spec -> the Swagger 2.0 definition a Power Platform custom connector imports.

Deterministic: the same spec gives the same bytes (`dumps` sorts keys), so the checked-in
``openapi/apiDefinition.swagger.json`` is compared with this output by a test.

Conversion rules, and the choices made where OpenAPI 3 says more than Swagger 2.0 can:

* ``servers[0].url`` -> ``basePath``; ``host`` is a placeholder (``odconnect.invalid``): each
  connection names its server, through the ``dynamichosturl`` policy of apiProperties.json (or pass
  ``host``: the server fills in its own when it serves the definition).
* ``components/schemas`` -> ``definitions``; ``nullable`` -> ``x-nullable``; ``allOf`` is merged
  into one object (Power Automate lists the properties of a merged object, not of an allOf).
* Component parameters and responses are inlined; path-level parameters are copied into each
  operation (Power Platform reads parameters per operation).
* A request body with several content types becomes ONE Swagger 2.0 form, in this order:
  ``application/json`` (a ``body`` parameter: images are ``format: byte`` properties, which is
  what a flow's "Get file content" gives), else ``multipart/form-data`` (``formData``
  parameters; a binary field is ``type: file``, and an array of files becomes one file, since
  Swagger 2.0 has no array of files), else a binary body (``format: binary``, with ``consumes``
  listing the media types, ``image/*`` spelt out). The server keeps accepting every form.
* A response with several content types keeps the JSON one (QuickTest's ``image/png`` and
  ExportCoco's zip stay reachable from the server, not from the connector); a binary response
  is ``{type: string, format: binary}``.
* OpenAPI 3 ``callbacks`` of a trigger (``x-ms-trigger``) become the path's
  ``x-ms-notification-content``: the schema of what the flow receives.
* ``anyOf`` made only of ``required`` lists (one of two properties must be there) is left out: the
  server checks it; any other ``oneOf``/``anyOf`` is an error (merge it in the spec).
* ``x-ms-summary`` is derived from the name where the spec has none ("budgetMinutes" ->
  "Budget minutes"); ``x-ms-visibility`` defaults to ``important`` for required parameters and
  request properties and ``advanced`` for the others (response properties get none).
* Server-only extensions (``x-openapi-*``, ``x-odconnect-*``) are dropped, and operations marked
  ``x-odconnect-connector: exclude`` (the definition download itself) are left out.
* The API-key scheme is renamed ``api_key``, the name Power Platform's API-key connections use.
"""
from __future__ import annotations

import copy
import json
import re

from ..spec import SPEC_PATH, load_spec

PLACEHOLDER_HOST = "odconnect.invalid"  # the reserved .invalid domain: never a real server
DEFAULT_SCHEMES = ("https",)
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
IMAGE_TYPES = ["image/jpeg", "image/png", "image/bmp", "image/gif", "image/webp"]
EXCLUDE = "x-odconnect-connector"
SECURITY_NAME = "api_key"
# Keys a Swagger 2.0 schema object may have (besides x-*).
SCHEMA_KEYS = {"$ref", "format", "title", "description", "default", "multipleOf", "maximum",
               "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern",
               "maxItems", "minItems", "uniqueItems", "maxProperties", "minProperties", "required",
               "enum", "type", "items", "allOf", "properties", "additionalProperties", "discriminator",
               "readOnly", "xml", "externalDocs", "example"}
# Keys a non-body Swagger 2.0 parameter takes from its OpenAPI 3 schema.
PARAM_SCHEMA_KEYS = ("type", "format", "items", "default", "maximum", "exclusiveMaximum", "minimum",
                     "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems",
                     "uniqueItems", "enum", "multipleOf")
ACRONYMS = {"id": "ID", "ids": "IDs", "url": "URL", "ap": "AP", "ap50": "AP50", "ap75": "AP75",
            "sha256": "SHA-256", "eta": "ETA", "coco": "COCO", "png": "PNG", "ms": "(ms)"}
# Words title case leaves in lower case (unless first): what Power Platform's labels do.
SMALL_WORDS = {"a", "an", "and", "as", "at", "by", "for", "from", "in", "of", "on", "or", "per", "the", "to",
               "with"}


def readable(name: str) -> str:
    """A label in title case: budgetMinutes -> Budget Minutes, publishedVersionId -> Published Version ID."""
    words = re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+[0-9]*|[A-Z]+[0-9]*|[0-9]+", name) or [name]
    out = []
    for i, word in enumerate(words):
        low = word.lower()
        if low in ACRONYMS:
            out.append(ACRONYMS[low])
        elif i > 0 and low in SMALL_WORDS:
            out.append(low)
        else:
            out.append(low.capitalize())
    return " ".join(out)




def _required_only(alternatives: list) -> bool:
    """An anyOf of `required` lists only ("labelId or labelName"): a check the server makes, which
    Swagger 2.0 cannot say; the connector leaves it out and the server still refuses what fails it."""
    return all(set(alt) == {"required"} for alt in alternatives)


def _ext(node: dict) -> dict:
    """The x-* keys Power Platform understands (server-only ones dropped)."""
    return {k: copy.deepcopy(v) for k, v in node.items()
            if k.startswith("x-") and not k.startswith(("x-openapi-", "x-odconnect-"))}


class Converter:
    def __init__(self, spec: dict):
        self.spec = spec
        self.components = spec.get("components", {})
        self.request_defs: set[str] = set()

    # --- references -------------------------------------------------------------------------
    def _resolve(self, node: dict) -> dict:
        while isinstance(node, dict) and "$ref" in node:
            parts = node["$ref"].lstrip("#/").split("/")
            target = self.spec
            for part in parts:
                target = target[part]
            node = target
        return node

    def _schema_refs(self, schema, seen: set[str]) -> None:
        """Names of component schemas reachable from `schema` (request-side definitions)."""
        if isinstance(schema, dict):
            ref = schema.get("$ref", "")
            if ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[1]
                if name not in seen:
                    seen.add(name)
                    self._schema_refs(self.components["schemas"][name], seen)
            for value in schema.values():
                self._schema_refs(value, seen)
        elif isinstance(schema, list):
            for value in schema:
                self._schema_refs(value, seen)

    # --- schemas ----------------------------------------------------------------------------
    def schema(self, node: dict, request: bool) -> dict:
        ref = node.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            return {"$ref": "#/definitions/" + ref.rsplit("/", 1)[1]}
        if "oneOf" in node or ("anyOf" in node and not _required_only(node["anyOf"])):
            raise ValueError("oneOf/anyOf have no Swagger 2.0 form; merge them in the spec")
        if "allOf" in node:
            node = self._merge_all_of(node)
        out: dict = {}
        required = set(node.get("required", []))
        for key, value in node.items():
            if key == "nullable":
                if value:
                    out["x-nullable"] = True
            elif key == "properties":
                out["properties"] = {name: self.prop(name, sub, request, name in required)
                                     for name, sub in value.items()}
            elif key == "items":
                out["items"] = self.schema(value, request)
            elif key == "additionalProperties" and isinstance(value, dict):
                out["additionalProperties"] = self.schema(value, request)
            elif key in SCHEMA_KEYS or (key.startswith("x-") and not key.startswith(("x-openapi-", "x-odconnect-"))):
                out[key] = copy.deepcopy(value)
            # writeOnly, deprecated and other OpenAPI 3-only keys are dropped
        return out

    def prop(self, name: str, node: dict, request: bool, required: bool) -> dict:
        out = self.schema(node, request)
        out.setdefault("x-ms-summary", readable(name))
        if request:
            out.setdefault("x-ms-visibility", "important" if required else "advanced")
        return out

    def _merge_all_of(self, node: dict) -> dict:
        merged: dict = {"type": "object", "properties": {}}
        required: list[str] = []
        for part in node["allOf"]:
            part = self._resolve(part)
            if part.get("type", "object") != "object":
                raise ValueError("allOf of non-objects has no flat form")
            merged["properties"].update(part.get("properties", {}))
            required += [r for r in part.get("required", []) if r not in required]
        if required:
            merged["required"] = required
        for key, value in node.items():
            if key != "allOf":
                merged[key] = value
        return merged

    # --- parameters -------------------------------------------------------------------------
    def parameter(self, node: dict) -> dict:
        node = self._resolve(node)
        schema = self._resolve(node.get("schema", {"type": "string"}))
        required = bool(node.get("required")) or node["in"] == "path"
        out = {"name": node["name"], "in": node["in"], "required": required}
        if node.get("description"):
            out["description"] = node["description"]
        for key in PARAM_SCHEMA_KEYS:
            if key in schema:
                out[key] = copy.deepcopy(schema[key]) if key != "items" else self.schema(schema[key], True)
        if out.get("type") == "array":
            out["collectionFormat"] = "csv" if node.get("explode") is False else "multi"
        out.update(_ext(schema))
        out.update(_ext(node))
        out.setdefault("x-ms-summary", readable(node["name"]))
        out.setdefault("x-ms-visibility", "important" if required else "advanced")
        return out

    def request_body(self, body: dict) -> tuple[list[dict], list[str]]:
        body = self._resolve(body)
        content = body.get("content", {})
        required = bool(body.get("required"))
        ext = _ext(body)
        if "application/json" in content:
            schema = self.schema(content["application/json"].get("schema", {"type": "object"}), True)
            # Power Automate shows a JSON body as its properties, each with its own visibility.
            param = {"name": "body", "in": "body", "required": required, "schema": schema,
                     "x-ms-summary": ext.pop("x-ms-summary", "Body"), "x-ms-visibility": "important"}
            if body.get("description"):
                param["description"] = body["description"]
            param.update(ext)
            return [param], ["application/json"]
        if "multipart/form-data" in content:
            schema = self._resolve(content["multipart/form-data"].get("schema", {}))
            needed = set(schema.get("required", []))
            params = []
            for name, sub in schema.get("properties", {}).items():
                sub = self._resolve(sub)
                is_file = sub.get("format") == "binary" or (sub.get("type") == "array" and
                                                             self._resolve(sub.get("items", {})).get("format") == "binary")
                p = {"name": name, "in": "formData", "required": name in needed}
                if sub.get("description"):
                    p["description"] = sub["description"]
                if is_file:
                    p["type"] = "file"
                else:
                    for key in PARAM_SCHEMA_KEYS:
                        if key in sub:
                            p[key] = copy.deepcopy(sub[key])
                p.update(_ext(sub))
                p.setdefault("x-ms-summary", readable(name))
                p.setdefault("x-ms-visibility", "important" if name in needed else "advanced")
                params.append(p)
            return params, ["multipart/form-data"]
        types: list[str] = []
        for media in content:
            for t in (IMAGE_TYPES if media == "image/*" else [media]):
                if t not in types:
                    types.append(t)
        param = {"name": "body", "in": "body", "required": required,
                 "schema": {"type": "string", "format": "binary"},
                 "x-ms-summary": ext.pop("x-ms-summary", "File Content"),
                 "x-ms-visibility": "important" if required else "advanced"}
        param["description"] = body.get("description", "The file itself, as the request body.")
        param.update(ext)
        return [param], types

    # --- responses --------------------------------------------------------------------------
    def response(self, node: dict) -> tuple[dict, str | None]:
        node = self._resolve(node)
        out = {"description": node.get("description", "")}
        content = node.get("content", {})
        media = next((m for m in ("application/json", "application/problem+json") if m in content), None)
        if media is None and content:
            media = next(iter(content))
        if media is not None:
            raw = content[media].get("schema", {"type": "object"})
            if self._resolve(raw).get("format") == "binary":
                out["schema"] = {"type": "string", "format": "binary"}
            else:
                out["schema"] = self.schema(raw, False)
        headers = {}
        for name, header in node.get("headers", {}).items():
            header = self._resolve(header)
            h = {k: v for k, v in self._resolve(header.get("schema", {"type": "string"})).items()
                 if k in ("type", "format")}
            if header.get("description"):
                h["description"] = header["description"]
            headers[name] = h
        if headers:
            out["headers"] = headers
        return out, media

    # --- operations ---------------------------------------------------------------------------
    def operation(self, path_params: list, op: dict) -> dict:
        out: dict = {}
        for key in ("tags", "summary", "description", "operationId", "deprecated"):
            if key in op:
                out[key] = copy.deepcopy(op[key])
        out.update(_ext(op))
        params: dict[tuple, dict] = {}
        for node in list(path_params) + list(op.get("parameters", [])):
            p = self.parameter(node)
            params[(p["name"], p["in"])] = p
        parameters = list(params.values())
        consumes = None
        if "requestBody" in op:
            extra, consumes = self.request_body(op["requestBody"])
            parameters += extra
        if parameters:
            out["parameters"] = parameters
        if consumes:
            out["consumes"] = consumes
        responses, produces = {}, []
        for code, node in op.get("responses", {}).items():
            responses[str(code)], media = self.response(node)
            if str(code).startswith("2") and media:
                for t in (IMAGE_TYPES if media == "image/*" else [media]):
                    if t not in produces:
                        produces.append(t)
        out["responses"] = responses
        out["produces"] = produces or ["application/json"]
        if "security" in op:
            out["security"] = [{SECURITY_NAME if k in self._api_key_schemes() else k: v for k, v in req.items()}
                               for req in op["security"]]
        return out

    def notification_content(self, op: dict) -> dict | None:
        """An OpenAPI 3 callback's request body: what Power Automate receives from a trigger."""
        for callback in op.get("callbacks", {}).values():
            for item in self._resolve(callback).values():
                post = item.get("post", {})
                body = self._resolve(post.get("requestBody", {}))
                schema = body.get("content", {}).get("application/json", {}).get("schema")
                if schema is not None:
                    return {"description": post.get("description") or post.get("summary", "The event."),
                            "schema": self.schema(schema, False)}
        return None

    def _api_key_schemes(self) -> set[str]:
        return {name for name, s in self.components.get("securitySchemes", {}).items() if s.get("type") == "apiKey"}

    def included(self):
        for path, item in self.spec["paths"].items():
            for method in METHODS:
                op = item.get(method)
                if op is not None and op.get(EXCLUDE) != "exclude":
                    yield path, item, method, op

    # --- the document -------------------------------------------------------------------------
    def convert(self, host: str = PLACEHOLDER_HOST, schemes=DEFAULT_SCHEMES) -> dict:
        spec = self.spec
        # Request-side definitions get x-ms-visibility defaults on their properties.
        for _, _, _, op in self.included():
            if "requestBody" in op:
                self._schema_refs(self._resolve(op["requestBody"]), self.request_defs)
        definitions = {name: self.schema(schema, name in self.request_defs)
                       for name, schema in self.components.get("schemas", {}).items()}
        paths: dict = {}
        for path, item, method, op in self.included():
            node = paths.setdefault(path, {})
            node[method] = self.operation(item.get("parameters", []), op)
            notification = self.notification_content(op)
            if notification is not None:
                node["x-ms-notification-content"] = notification
        info = {k: copy.deepcopy(v) for k, v in spec["info"].items() if k in ("title", "version", "description",
                                                                               "contact", "license")}
        security_definitions = {}
        for name, scheme in self.components.get("securitySchemes", {}).items():
            if scheme.get("type") == "apiKey":
                security_definitions[SECURITY_NAME] = {"type": "apiKey", "in": scheme["in"], "name": scheme["name"]}
        used_tags = {t for _, _, _, op in self.included() for t in op.get("tags", [])}
        out = {
            "swagger": "2.0",
            "info": info,
            "host": host,
            "basePath": spec.get("servers", [{"url": "/"}])[0]["url"],
            "schemes": list(schemes),
            "consumes": ["application/json"],
            "produces": ["application/json"],
            "paths": paths,
            "definitions": definitions,
            "securityDefinitions": security_definitions,
            "security": [{SECURITY_NAME if k in self._api_key_schemes() else k: v for k, v in req.items()}
                         for req in spec.get("security", [])],
            "tags": [copy.deepcopy(t) for t in spec.get("tags", []) if t["name"] in used_tags],
        }
        out.update(_ext(spec))
        return out


def convert(spec: dict | None = None, host: str = PLACEHOLDER_HOST, schemes=DEFAULT_SCHEMES) -> dict:
    return Converter(spec if spec is not None else load_spec()).convert(host, schemes)


def dumps(swagger: dict) -> str:
    """Four-space indents and sorted keys: stable bytes for the checked-in file."""
    return json.dumps(swagger, indent=4, sort_keys=True, ensure_ascii=False) + "\n"
