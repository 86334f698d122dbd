"""The rules a Power Platform connector package must follow, checked in one place.

`odconnect connector lint` prints what fails; the tests (tests/powerplatform) run the same function
on the checked-in package and on packages made for a configured server. The rules come from the
PowerPlatformConnectors repository's requirements and its certified connectors: valid Swagger 2.0
under 1 MB; the server chosen per connection (a host connection parameter and the
``dynamichosturl`` policy); publisher metadata (website, privacy policy, categories, contact,
brand colour, icon); PascalCase operationIds; summaries of at most 80 characters without end
punctuation or forbidden characters; descriptions that end with a period and name no product;
every parameter described and labelled in title case; one 2xx answer per operation (or a reason
the spec gives); pickers and webhook triggers that point at what exists; a readme whose claims
match the package and the server.

``tenant=True`` is for a package meant for a real tenant: placeholder addresses (``.invalid``,
``example.com``, ``localhost`` ...) in the publisher metadata or the host are problems there, while
the checked-in package keeps neutral placeholders (the publisher is whoever runs the server).
"""
from __future__ import annotations

import importlib.resources
import io
import ipaddress
import json
import re
from urllib.parse import urlsplit

from . import package

PASCAL = re.compile(r"^[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)*$")
VISIBILITY = {"important", "advanced", "internal"}
MAX_BYTES = 1024 * 1024
MAX_SUMMARY = 80
# Characters a summary (the action's name in the designer) must not have.
SUMMARY_FORBIDDEN = set('/\\<>[]{}|"`\n')
PRODUCT_NAMES = ("Power Automate", "Power Apps", "PowerApps", "Power Platform", "Logic Apps", "Microsoft")
SMALL_WORDS = {"a", "an", "and", "as", "at", "by", "for", "from", "in", "of", "on", "or", "per", "the", "to",
               "with"}
UNITS = {"ms"}
INVALID_COLORS = {"#007ee5", "#ffffff"}
PLACEHOLDER = re.compile(r"(^|[.@/])(localhost|example\.(com|org|net)|[^/]*\.(invalid|example|test|localhost|local))"
                         r"(:\d+)?($|[/?#])", re.IGNORECASE)
MULTIPLE_2XX_REASON = "x-odconnect-2xx-reason"


def is_placeholder(address: str) -> bool:
    """localhost, example.com/.org/.net, the reserved .invalid/.example/.test/.localhost names, .local,
    and IP addresses that are not public (Power Platform reaches none of them)."""
    text = address.split("://", 1)[-1]
    host = urlsplit("//" + text).hostname or ""
    try:
        if not ipaddress.ip_address(host).is_global:
            return True
    except ValueError:
        pass
    return bool(PLACEHOLDER.search("/" + text))


def title_case(label: str) -> bool:
    """Power Platform labels: every word capitalized except small words after the first (and units)."""
    words = re.findall(r"[^\s()]+", label)
    for i, word in enumerate(words):
        if not word[0].isalpha() or word in UNITS or (i > 0 and word in SMALL_WORDS):
            continue
        if not word[0].isupper():
            return False
    return True


def _products(text: str) -> list[str]:
    return [name for name in PRODUCT_NAMES if name.lower() in (text or "").lower()]


def swagger2_schema() -> dict:
    """The Swagger 2.0 JSON schema, as openapi-spec-validator ships it (no network)."""
    path = importlib.resources.files("openapi_spec_validator") / "resources/schemas/v2.0/schema.json"
    return json.loads(path.read_text())


class Lint:
    def __init__(self, tenant: bool = False, spec: dict | None = None):
        self.tenant = tenant
        self.spec_ops = {}
        for item in (spec or {}).get("paths", {}).values():
            for op in item.values():
                if isinstance(op, dict) and "operationId" in op:
                    self.spec_ops[op["operationId"]] = op
        self.problems: list[str] = []

    def fail(self, rule: str, message: str) -> None:
        self.problems.append(f"{rule}: {message}")

    # --- the definition ---------------------------------------------------------------------------
    def definition(self, swagger: dict, raw: bytes | None = None, structure: bool = True) -> None:
        if swagger.get("swagger") != "2.0":
            self.fail("swagger2", "not Swagger 2.0")
        if structure:  # the JSON-schema pass takes about a second; rule tests may leave it out
            import jsonschema
            for error in list(jsonschema.Draft4Validator(swagger2_schema()).iter_errors(swagger))[:5]:
                self.fail("swagger2", f"{'/'.join(map(str, error.path))}: {error.message[:160]}")
        if raw is not None and len(raw) >= MAX_BYTES:
            self.fail("size", f"{len(raw)} bytes: custom connectors take under 1 MB")
        if not swagger.get("host") or not swagger.get("basePath"):
            self.fail("host", "host and basePath are needed")
        elif self.tenant and is_placeholder(swagger["host"]) and swagger["host"] != package.swagger2.PLACEHOLDER_HOST:
            self.fail("host", f"host {swagger['host']} is a placeholder or local address Power Platform cannot reach")
        self.info(swagger)
        ids = []
        for path, item in swagger.get("paths", {}).items():
            for method, op in item.items():
                if isinstance(op, dict) and not method.startswith("x-"):
                    ids.append(str(op.get("operationId", "")))
                    self.operation(swagger, path, item, method, op)
        for name in sorted({i for i in ids if ids.count(i) > 1}):
            self.fail("operation-ids", f"operationId {name} is used twice")
        for name, schema in swagger.get("definitions", {}).items():
            self.properties(schema, f"definitions.{name}")

    def info(self, swagger: dict) -> None:
        info = swagger.get("info", {})
        title, description = info.get("title", ""), info.get("description", "")
        if re.search(r"\b(api|connector)\b", title, re.IGNORECASE) or _products(title):
            self.fail("metadata", f"title {title!r} must not say API, Connector or a product name")
        if not 30 <= len(description) <= 500:
            self.fail("metadata", f"info.description has {len(description)} characters (30-500)")
        for name in _products(description):
            self.fail("product-names", f"info.description names {name}")
        contact = info.get("contact", {})
        for key in ("name", "url", "email"):
            if not contact.get(key):
                self.fail("metadata", f"info.contact.{key} is missing")
        if contact.get("email") and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", contact["email"]):
            self.fail("metadata", f"info.contact.email {contact['email']!r} is not an address")
        meta = {m.get("propertyName"): m.get("propertyValue", "") for m in swagger.get("x-ms-connector-metadata", [])}
        for needed in ("Website", "Privacy policy", "Categories"):
            if not meta.get(needed):
                self.fail("metadata", f"x-ms-connector-metadata lacks {needed}")
        for key in ("Website", "Privacy policy"):
            if meta.get(key) and urlsplit(meta[key]).scheme != "https":
                self.fail("metadata", f"{key} {meta[key]!r} must be an https URL")
        if self.tenant:
            email = contact.get("email", "")
            for label, value, address in (
                    ("Website", meta.get("Website", ""), meta.get("Website", "")),
                    ("Privacy policy", meta.get("Privacy policy", ""), meta.get("Privacy policy", "")),
                    ("info.contact.url", contact.get("url", ""), contact.get("url", "")),
                    ("info.contact.email", email, email.rsplit("@", 1)[-1])):
                if address and is_placeholder(address):
                    self.fail("metadata", f"{label} is the placeholder {value}: set the connector settings "
                              "(connector.website, connector.privacy_policy, connector.contact_*)")

    def operation(self, swagger: dict, path: str, item: dict, method: str, op: dict) -> None:
        op_id = str(op.get("operationId", ""))  # the schema check reports a wrong type; go on with the rest
        if not PASCAL.match(op_id):
            self.fail("operation-ids", f"{method.upper()} {path}: operationId {op_id!r} is not PascalCase")
        summary, description = op.get("summary", ""), op.get("description", "")
        if not summary or len(summary) > MAX_SUMMARY or summary[-1] in ".!?:;,":
            self.fail("summaries", f"{op_id}: summary {summary!r} (needed: 1-{MAX_SUMMARY} characters, "
                      "no end punctuation)")
        bad = sorted(set(summary) & SUMMARY_FORBIDDEN)
        if bad:
            self.fail("summaries", f"{op_id}: summary {summary!r} has forbidden characters {''.join(bad)!r}")
        if not description.endswith(".") or description.strip() == summary.strip():
            self.fail("descriptions", f"{op_id}: description must end with a period and differ from the summary")
        for text in (summary, description, op.get("x-ms-trigger-hint", "")):
            for name in _products(text):
                self.fail("product-names", f"{op_id}: {name} in {text[:60]!r}")
        if op.get("x-ms-visibility", "important") not in VISIBILITY:
            self.fail("parameters", f"{op_id}: x-ms-visibility {op['x-ms-visibility']!r}")
        responses = op.get("responses", {})
        success = [c for c in responses if c.startswith("2")]
        if not success:
            self.fail("responses", f"{op_id}: no 2xx response (default-only responses are not allowed)")
        if len(success) > 1 and not self.spec_ops.get(op_id, {}).get(MULTIPLE_2XX_REASON):
            self.fail("responses", f"{op_id}: {len(success)} success answers ({', '.join(success)}) and no "
                      f"{MULTIPLE_2XX_REASON} in the spec saying why")
        for code in success:
            if code not in ("202", "204") and "schema" not in responses[code]:
                self.fail("responses", f"{op_id}: {code} has no schema")
        for p in op.get("parameters", []):
            self.parameter(swagger, op, op_id, p)
        if op.get("x-ms-trigger"):
            self.trigger(swagger, item, op)

    def parameter(self, swagger: dict, op: dict, op_id: str, p: dict) -> None:
        where = f"{op_id}: parameter {p.get('name')}"
        if not p.get("description"):
            self.fail("parameters", f"{where} has no description")
        summary = p.get("x-ms-summary")
        if not summary:
            self.fail("parameters", f"{where} has no x-ms-summary")
        elif not title_case(summary):
            self.fail("titles", f"{where}: x-ms-summary {summary!r} is not in title case")
        for name in _products(p.get("description", "")):
            self.fail("product-names", f"{where} names {name}")
        if p.get("x-ms-visibility") not in VISIBILITY:
            self.fail("parameters", f"{where} has x-ms-visibility {p.get('x-ms-visibility')!r}")
        if p.get("x-ms-visibility") == "internal" and p.get("required") and "default" not in p:
            self.fail("parameters", f"{where}: a required internal parameter needs a default")
        if p.get("in") == "body":
            body = _inline(swagger, p["schema"])
            self.properties(body, f"{op_id}.body")
            for pname, prop in body.get("properties", {}).items():
                if prop.get("x-ms-dynamic-values"):
                    self.dynamic(swagger, op, op_id, pname, prop["x-ms-dynamic-values"])
        if p.get("x-ms-dynamic-values"):
            self.dynamic(swagger, op, op_id, p["name"], p["x-ms-dynamic-values"])

    def properties(self, schema, where: str) -> None:
        """Every property of every (nested) schema: a title-case x-ms-summary, a valid visibility."""
        if not isinstance(schema, dict):
            return
        for name, prop in schema.get("properties", {}).items():
            summary = prop.get("x-ms-summary")
            if not summary:
                self.fail("parameters", f"{where}.{name}: no x-ms-summary")
            elif not title_case(summary):
                self.fail("titles", f"{where}.{name}: x-ms-summary {summary!r} is not in title case")
            for product in _products(prop.get("description", "")):
                self.fail("product-names", f"{where}.{name} names {product}")
            if "x-ms-visibility" in prop and prop["x-ms-visibility"] not in VISIBILITY:
                self.fail("parameters", f"{where}.{name}: x-ms-visibility {prop['x-ms-visibility']!r}")
            if "nullable" in prop:
                self.fail("swagger2", f"{where}.{name}: nullable is OpenAPI 3 (x-nullable in Swagger 2.0)")
            self.properties(prop, f"{where}.{name}")
        if isinstance(schema.get("items"), dict):
            self.properties(schema["items"], where + "[]")
        if isinstance(schema.get("additionalProperties"), dict):
            self.properties(schema["additionalProperties"], where + "{}")
        for part in schema.get("allOf", []):
            self.properties(part, where)

    def dynamic(self, swagger: dict, op: dict, op_id: str, name: str, dyn: dict) -> None:
        found = _operation(swagger, dyn.get("operationId"))
        if found is None:
            self.fail("pickers", f"{op_id}.{name}: x-ms-dynamic-values calls missing {dyn.get('operationId')}")
            return
        _, method, target = found
        if method != "get":
            self.fail("pickers", f"{op_id}.{name}: x-ms-dynamic-values must call a GET")
        if not dyn.get("value-path") or not dyn.get("value-title"):
            self.fail("pickers", f"{op_id}.{name}: x-ms-dynamic-values needs value-path and value-title")
        own = {p["name"] for p in op.get("parameters", [])}
        wanted = {p["name"] for p in target.get("parameters", []) if p.get("required")}
        given = dyn.get("parameters", {})
        for pname, ref in given.items():
            if isinstance(ref, dict) and ref.get("parameter") not in own:
                self.fail("pickers", f"{op_id}.{name}: dynamic parameter {pname} refers to missing {ref.get('parameter')}")
        if wanted - set(given):
            self.fail("pickers", f"{op_id}.{name}: {dyn['operationId']} needs {sorted(wanted - set(given))}")
        items = target.get("responses", {}).get("200", {}).get("schema", {})
        item = _inline(swagger, items.get("items", {}))
        for key in ("value-path", "value-title"):
            if dyn.get(key) not in item.get("properties", {}):
                self.fail("pickers", f"{op_id}.{name}: {dyn['operationId']} items have no {dyn.get(key)}")

    def trigger(self, swagger: dict, item: dict, op: dict) -> None:
        op_id = op["operationId"]
        if op["x-ms-trigger"] != "single":
            self.fail("triggers", f"{op_id}: x-ms-trigger should be single")
        body = next((p for p in op.get("parameters", []) if p["in"] == "body"), None)
        props = _inline(swagger, body["schema"]).get("properties", {}) if body else {}
        url = [k for k, v in props.items() if v.get("x-ms-notification-url") is True]
        if len(url) != 1 or props[url[0]].get("x-ms-visibility") != "internal":
            self.fail("triggers", f"{op_id}: needs one internal body property with x-ms-notification-url")
        if "Location" not in op.get("responses", {}).get("201", {}).get("headers", {}):
            self.fail("triggers", f"{op_id}: 201 must declare the Location header")
        if "schema" not in item.get("x-ms-notification-content", {}):
            self.fail("triggers", f"{op_id}: the path needs x-ms-notification-content with the event schema")

    # --- apiProperties.json, icon, readme ---------------------------------------------------------------
    def properties_file(self, props: dict, swagger: dict) -> None:
        p = props.get("properties", {})
        params = p.get("connectionParameters", {})
        hosts = [t for t in p.get("policyTemplateInstances", []) if t.get("templateId", "").lower() == "dynamichosturl"]
        if len(hosts) != 1:
            self.fail("host", "apiProperties needs one dynamichosturl policy (the server per connection)")
        else:
            template = hosts[0].get("parameters", {}).get("x-ms-apimTemplateParameter.urlTemplate", "")
            named = re.findall(r"@connectionParameters\('([^']+)'", template)
            if not named or any(params.get(n, {}).get("type") != "string" for n in named):
                self.fail("host", f"urlTemplate {template!r} must use a string connection parameter")
            elif not template.startswith("https://"):
                self.fail("host", f"urlTemplate {template!r} must call https")
            if not template.endswith(swagger.get("basePath", "/")):
                self.fail("host", f"urlTemplate {template!r} must end with the basePath {swagger.get('basePath')}")
            for n in named:
                ui = params.get(n, {}).get("uiDefinition", {})
                if not ui.get("displayName") or ui.get("constraints", {}).get("required") != "true":
                    self.fail("host", f"connection parameter {n} needs a display name and must be required")
                default = params.get(n, {}).get("defaultValue")
                if self.tenant and default and is_placeholder(default):
                    self.fail("host", f"connection parameter {n} defaults to {default}, which Power Platform cannot reach")
        key = params.get(package.swagger2.SECURITY_NAME, {})
        if key.get("type") != "securestring":
            self.fail("properties", "the API key connection parameter must be a securestring")
        color = p.get("iconBrandColor", "")
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", color) or color.lower() in INVALID_COLORS:
            self.fail("metadata", f"iconBrandColor {color!r} (needed: #RRGGBB, not {', '.join(sorted(INVALID_COLORS))})")
        for field in ("publisher", "stackOwner"):
            if not p.get(field):
                self.fail("metadata", f"apiProperties {field} is missing")
        gateway = any(v.get("type") == "gatewaySetting" for v in params.values())
        if gateway != ("gateway" in p.get("capabilities", [])):
            self.fail("properties", "a gateway connection parameter and the gateway capability go together")

    def icon(self, data: bytes) -> None:
        from PIL import Image
        try:
            img = Image.open(io.BytesIO(data))
            img.load()
        except Exception as exc:
            self.fail("metadata", f"icon.png cannot be read ({exc})")
            return
        if img.format != "PNG" or img.size[0] != img.size[1] or not 100 <= img.size[0] <= 230:
            self.fail("metadata", f"icon must be a square PNG of 100-230 px, not {img.format} {img.size}")
        corner = img.convert("RGBA").getpixel((0, 0))
        if corner[3] < 255 or corner[:3] == (255, 255, 255):
            self.fail("metadata", "the icon background must be neither white nor transparent")

    def readme(self, text: str, swagger: dict, props: dict) -> None:
        for section in ("## Publisher", "## Prerequisites", "## Supported Operations", "## Obtaining Credentials",
                        "## Known Issues and Limitations", "## Deployment Instructions"):
            if section not in text:
                self.fail("readme", f"no {section!r} section")
        for item in swagger.get("paths", {}).values():
            for op in item.values():
                if isinstance(op, dict) and op.get("x-ms-visibility") != "internal" and "operationId" in op:
                    if f"`{op['operationId']}`" not in text:
                        self.fail("readme", f"{op['operationId']} is not listed")
        # claims that must match the server and the package
        location = [s for s in re.split(r"(?<=[.;])\s", text) if "Location" in s and "header" in s]
        if not any("absolute" in s for s in location) or any(re.search(r"not absolute|are paths", s) for s in location):
            self.fail("readme", "the readme must say Location headers are absolute URLs (as the server sends them)")
        params = props.get("properties", {}).get("connectionParameters", {})
        gateway = any(v.get("type") == "gatewaySetting" for v in params.values())
        # a gateway mentioned anywhere, other than to say there is none, is a claim of one
        mentions = len(re.findall(r"(?i)data gateway", text))
        denials = len(re.findall(r"(?i)offers no on-premises data gateway", text))
        claims = mentions > denials
        if claims != gateway:
            self.fail("readme", "the readme claims an on-premises data gateway the package does not offer"
                      if claims else "the package offers a gateway the readme does not explain")
        if package.HOST_DISPLAY_NAME not in text:
            self.fail("readme", f"the readme must explain the {package.HOST_DISPLAY_NAME!r} connection parameter")


def _inline(swagger, schema):
    return swagger["definitions"][schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema


def _operation(swagger, op_id):
    for path, item in swagger["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and op.get("operationId") == op_id:
                return path, method, op
    return None


def check_definition(swagger: dict, raw: bytes | None = None, spec: dict | None = None,
                     tenant: bool = False, structure: bool = True) -> list[str]:
    """The definition's problems alone (tests mutate a definition to see each rule bite);
    `structure=False` leaves out the Swagger 2.0 JSON-schema pass."""
    lint = Lint(tenant, spec)
    lint.definition(swagger, raw, structure)
    return lint.problems


def lint(files: dict[str, bytes], spec: dict | None = None, tenant: bool = False,
         structure: bool = True) -> list[str]:
    """Every rule, on the four files of a package: a list of "rule: problem" lines (empty: fine).
    `structure=False` leaves out the Swagger 2.0 JSON-schema pass (tests of other rules)."""
    check = Lint(tenant, spec)
    raw = files[package.DEFINITION]
    swagger = json.loads(raw)
    props = json.loads(files[package.PROPERTIES])
    check.definition(swagger, raw, structure)
    check.properties_file(props, swagger)
    check.icon(files[package.ICON])
    check.readme(files[package.README].decode("utf-8"), swagger, props)
    return check.problems
