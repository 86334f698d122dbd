"""The custom connector package: apiDefinition.swagger.json, apiProperties.json, icon.png, readme.md.

The layout is the one ``paconn create --api-def --api-prop --icon`` and the PowerPlatformConnectors
repository use. Everything but the icon is generated from ``openapi/odconnect.yaml``; the copies
checked in under ``openapi/`` are compared with this output by a test. Regenerate them with
``python -m connector.powerplatform``.
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from . import swagger2

OPENAPI_DIR = swagger2.SPEC_PATH.parent
DEFINITION = "apiDefinition.swagger.json"
PROPERTIES = "apiProperties.json"
ICON = "icon.png"
README = "readme.md"
FILES = (DEFINITION, PROPERTIES, ICON, README)
BRAND_COLOR = "#0F6C5C"
README_TEMPLATE = Path(__file__).resolve().parent / "readme_template.md"


def api_properties() -> dict:
    return {
        "properties": {
            "connectionParameters": {
                swagger2.SECURITY_NAME: {
                    "type": "securestring",
                    "uiDefinition": {
                        "displayName": "API key",
                        "description": "The API key of your odconnect server",
                        "tooltip": "The key in data/api_key on the server, or one of ODCONNECT_API_KEYS",
                        "constraints": {"tabIndex": 2, "clearText": False, "required": "true"},
                    },
                },
            },
            "iconBrandColor": BRAND_COLOR,
            "capabilities": [],
            "publisher": "odconnect",
            "stackOwner": "odconnect",
        },
    }


def draw_icon(size: int = 230) -> bytes:
    """The icon: a white detection box around a dot, on the brand colour (as certification asks)."""
    from PIL import Image, ImageDraw
    img = Image.new("RGB", (size, size), BRAND_COLOR)
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


def readme(swagger: dict) -> str:
    text = README_TEMPLATE.read_text(encoding="utf-8")
    return text.replace("{{operations}}", operations_section(swagger).rstrip()).replace(
        "{{placeholder_host}}", swagger2.PLACEHOLDER_HOST)


def build(host: str | None = None, schemes=None, spec: dict | None = None) -> dict[str, bytes]:
    """The four files. `host`/`schemes` default to the checked-in placeholder."""
    checked_in = swagger2.convert(spec)
    swagger = swagger2.convert(spec, host or swagger2.PLACEHOLDER_HOST, schemes or swagger2.DEFAULT_SCHEMES)
    icon_path = OPENAPI_DIR / ICON
    return {
        DEFINITION: swagger2.dumps(swagger).encode(),
        PROPERTIES: (json.dumps(api_properties(), indent=4, sort_keys=True) + "\n").encode(),
        ICON: icon_path.read_bytes() if icon_path.exists() else draw_icon(),
        README: readme(checked_in).encode(),
    }


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
