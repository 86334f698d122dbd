"""The custom connector package: apiDefinition.swagger.json, apiProperties.json, icon.png, readme.md.

The layout is the one ``paconn create --api-def --api-prop --icon`` and the PowerPlatformConnectors
repository use. Everything but the icon is generated from ``openapi/odconnect.yaml`` and the
``connector`` settings (publisher, website, privacy policy, contact, brand colour, gateway); the
copies checked in under ``openapi/`` are the ones the default settings give, compared with this
output by a test. Regenerate them with ``python -m connector.powerplatform``.

The server is chosen per connection, as certified connectors do: a ``hostUrl`` connection parameter
and the ``dynamichosturl`` policy template, which sends each call to
``https://<hostUrl>/api/v1/...`` whatever host the definition names. A package made for one server
(``odconnect connector export --host``, or the package a server serves) names that server as the
definition's host and as the parameter's default value.
"""
from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from . import swagger2

OPENAPI_DIR = swagger2.SPEC_PATH.parent
DEFINITION = "apiDefinition.swagger.json"
PROPERTIES = "apiProperties.json"
ICON = "icon.png"
README = "readme.md"
FILES = (DEFINITION, PROPERTIES, ICON, README)
README_TEMPLATE = Path(__file__).resolve().parent / "readme_template.md"
HOST_PARAMETER = "hostUrl"
HOST_DISPLAY_NAME = "Server address"
# What an unset publisher setting becomes: the reserved .invalid domain (RFC 6761) says plainly that
# it is no real address, and `odconnect connector lint` refuses it for a package meant for a tenant.
PLACEHOLDER_DOMAIN = "odconnect.invalid"


@dataclass(frozen=True)
class Publisher:
    """Who publishes the connector: the `connector` settings, with placeholders for what is unset."""
    name: str = "odconnect"
    website: str = f"https://{PLACEHOLDER_DOMAIN}/"
    privacy_policy: str = f"https://{PLACEHOLDER_DOMAIN}/privacy"
    contact_name: str = "odconnect maintainers"
    contact_email: str = f"contact@{PLACEHOLDER_DOMAIN}"
    contact_url: str = f"https://{PLACEHOLDER_DOMAIN}/contact"
    brand_color: str = "#0F6C5C"
    gateway: bool = False

    @classmethod
    def from_config(cls, connector: dict) -> "Publisher":
        given = {key: value for key, value in {
            "name": connector["publisher"], "website": connector["website"],
            "privacy_policy": connector["privacy_policy"], "contact_name": connector["contact_name"],
            "contact_email": connector["contact_email"], "contact_url": connector["contact_url"],
            "brand_color": connector["brand_color"]}.items() if value}
        return cls(**given, gateway=bool(connector["gateway"]))


def definition(spec: dict | None = None, host: str | None = None, schemes=None,
               publisher: Publisher = Publisher()) -> dict:
    """The Swagger 2.0 definition with the publisher's contact and metadata."""
    swagger = swagger2.convert(spec, host or swagger2.PLACEHOLDER_HOST, schemes or swagger2.DEFAULT_SCHEMES)
    swagger["info"]["contact"] = {"name": publisher.contact_name, "url": publisher.contact_url,
                                  "email": publisher.contact_email}
    rest = [m for m in swagger.get("x-ms-connector-metadata", [])
            if m["propertyName"] not in ("Website", "Privacy policy")]
    swagger["x-ms-connector-metadata"] = [{"propertyName": "Website", "propertyValue": publisher.website},
                                          {"propertyName": "Privacy policy",
                                           "propertyValue": publisher.privacy_policy}] + rest
    return swagger


def api_properties(swagger: dict, publisher: Publisher = Publisher(), host: str | None = None,
                   scheme: str = "https") -> dict:
    """apiProperties.json: the connection (server address, API key, maybe a gateway) and the publisher."""
    server = {
        "type": "string",
        "uiDefinition": {
            "displayName": HOST_DISPLAY_NAME,
            "description": "Host name (and port) of your odconnect server, without https://",
            "tooltip": "For example odconnect.contoso.com, or odconnect.contoso.com/od behind a proxy path",
            "constraints": {"tabIndex": 1, "clearText": True, "required": "true"},
        },
    }
    if host:
        server["defaultValue"] = host
    parameters = {
        HOST_PARAMETER: server,
        swagger2.SECURITY_NAME: {
            "type": "securestring",
            "uiDefinition": {
                "displayName": "API key",
                "description": "An API key of your odconnect server",
                "tooltip": "Made with odconnect keys create; a detect key is enough for detection only",
                "constraints": {"tabIndex": 2, "clearText": False, "required": "true"},
            },
        },
    }
    capabilities = []
    if publisher.gateway:
        parameters["gateway"] = {
            "type": "gatewaySetting",
            "gatewaySettings": {"dataSourceType": "CustomConnector", "connectionDetails": []},
            "uiDefinition": {"constraints": {"tabIndex": 3, "required": "true", "capability": ["gateway"]}},
        }
        capabilities.append("gateway")
    return {
        "properties": {
            "connectionParameters": parameters,
            "iconBrandColor": publisher.brand_color,
            "capabilities": capabilities,
            "policyTemplateInstances": [{
                "templateId": "dynamichosturl",
                "title": "Call the server of the connection",
                "parameters": {"x-ms-apimTemplateParameter.urlTemplate":
                               f"{scheme}://@connectionParameters('{HOST_PARAMETER}'){swagger['basePath']}"},
            }],
            "publisher": publisher.name,
            "stackOwner": publisher.name,
        },
    }


def draw_icon(size: int = 230, color: str = Publisher.brand_color) -> bytes:
    """The icon: a white detection box around a dot, on the brand colour (as certification asks)."""
    from PIL import Image, ImageDraw
    img = Image.new("RGB", (size, size), color)
    d = ImageDraw.Draw(img)
    m, w = size // 5, max(3, size // 28)
    d.rectangle([m, m, size - m, size - m], outline="white", width=w)
    d.rectangle([m - w, m - 4 * w, m + 7 * w, m], fill="white")  # the label tab of a box
    r = size // 9
    d.ellipse([size // 2 - r, size // 2 - r, size // 2 + r, size // 2 + r], fill="white")
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def operations_section(swagger: dict) -> str:
    """The readme's operation list, from the definition itself."""
    triggers, actions = [], []
    for path, item in sorted(swagger["paths"].items()):
        for method, op in item.items():
            if not isinstance(op, dict) or "operationId" not in op or op.get("x-ms-visibility") == "internal":
                continue
            line = f"#### {op['summary']}\n\n`{op['operationId']}` ({method.upper()} `{path}`): {op['description']}\n"
            (triggers if op.get("x-ms-trigger") else actions).append((op["summary"].lower(), line))
    out = ["### Triggers\n"] + [x[1] for x in sorted(triggers)] + ["### Actions\n"] + [x[1] for x in sorted(actions)]
    return "\n".join(out).rstrip() + "\n"


GATEWAY_TEXT = {
    True: ("on an address Power Platform reaches, or on one only your network reaches through an "
           "on-premises data gateway (the connection asks for one)"),
    False: ("on an address Power Platform reaches from the internet (this package offers no "
            "on-premises data gateway; `connector.gateway: true` adds one)"),
}


def readme(swagger: dict, publisher: Publisher = Publisher()) -> str:
    text = README_TEMPLATE.read_text(encoding="utf-8")
    values = {
        "operations": operations_section(swagger).rstrip(),
        "placeholder_host": swagger2.PLACEHOLDER_HOST,
        "publisher": publisher.name,
        "host_parameter": HOST_DISPLAY_NAME,
        "gateway": GATEWAY_TEXT[publisher.gateway],
        "website": publisher.website,
        "privacy_policy": publisher.privacy_policy,
        "contact": f"{publisher.contact_name} ({publisher.contact_email}, {publisher.contact_url})",
    }
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def build(host: str | None = None, schemes=None, spec: dict | None = None,
          publisher: Publisher = Publisher()) -> dict[str, bytes]:
    """The four files. Without `host` the definition names a placeholder host (each connection
    gives the real one); `schemes` defaults to https."""
    schemes = list(schemes or swagger2.DEFAULT_SCHEMES)
    swagger = definition(spec, host.split("/", 1)[0] if host else None, schemes, publisher)
    # the readme lists operations as the placeholder package does: it is the same for every host
    listed = definition(spec, None, None, publisher)
    icon_path = OPENAPI_DIR / ICON
    icon = icon_path.read_bytes() if icon_path.exists() and publisher.brand_color == Publisher.brand_color \
        else draw_icon(color=publisher.brand_color)
    return {
        DEFINITION: swagger2.dumps(swagger).encode(),
        PROPERTIES: dumps(api_properties(swagger, publisher, host, schemes[0])).encode(),
        ICON: icon,
        README: readme(listed, publisher).encode(),
    }


def dumps(properties: dict) -> str:
    return json.dumps(properties, indent=4, sort_keys=True) + "\n"


def zip_bytes(files: dict[str, bytes]) -> bytes:
    """A zip with fixed timestamps: the same files give the same bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in FILES:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, files[name])
    return buf.getvalue()


def write(folder: Path = OPENAPI_DIR) -> list[Path]:
    """Regenerate the checked-in copies (the icon only when it is missing)."""
    files = build()
    written = []
    for name, data in files.items():
        path = Path(folder) / name
        if name == ICON and path.exists():
            continue
        path.write_bytes(data)
        written.append(path)
    return written
