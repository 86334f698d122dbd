"""Where the client finds the server and its key: flags, then environment, then the login file.

`odconnect login` saves both in ``<user config dir>/odconnect/client.json`` (on Linux
``$XDG_CONFIG_HOME/odconnect`` or ``~/.config/odconnect``), mode 0600, written atomically.
The saved key is only sent to the saved URL: pointing a command at another server with
``--url`` or ``ODCONNECT_URL`` needs that server's key too, so a key never leaks elsewhere.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

from .errors import AuthMissing, LocalError
from .files import write_atomic

URL_ENV, KEY_ENV = "ODCONNECT_URL", "ODCONNECT_KEY"
DEFAULT_URL = "http://127.0.0.1:8080"
API_PATH = "/api/v1"


@dataclass(frozen=True)
class Target:
    url: str   # the API root, ending in /api/v1
    key: str


def config_file() -> Path:
    return platformdirs.user_config_path("odconnect", appauthor=False) / "client.json"


def normalize_url(url: str) -> str:
    """`host:8080`, `http://host:8080/` or `.../api/v1` -> `http://host:8080/api/v1`."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise LocalError(f"{url!r} is not an http(s) URL of an odconnect server")
    path = parts.path.rstrip("/")
    if not path.endswith(API_PATH):
        path += API_PATH
    return f"{parts.scheme}://{parts.netloc}{path}"


def load_saved() -> dict:
    path = config_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise LocalError(f"cannot read {path}: {exc}; run odconnect login again") from exc
    return data if isinstance(data, dict) else {}


def save(target: Target) -> Path:
    path = config_file()
    body = json.dumps({"url": target.url, "key": target.key}, indent=2) + "\n"
    write_atomic(path, body.encode(), mode=0o600)
    return path


def forget() -> Path | None:
    path = config_file()
    try:
        path.unlink()
    except FileNotFoundError:
        return None
    return path


def resolve_url(flag: str | None) -> str:
    saved = load_saved()
    return normalize_url(flag or os.environ.get(URL_ENV) or saved.get("url") or DEFAULT_URL)


def resolve(url_flag: str | None, key_flag: str | None) -> Target:
    """Flags win over the environment, which wins over the login file."""
    saved = load_saved()
    url = resolve_url(url_flag)
    key = key_flag or os.environ.get(KEY_ENV)
    if not key and saved.get("key") and saved.get("url") and normalize_url(saved["url"]) == url:
        key = saved["key"]
    if not key:
        raise AuthMissing(f"no API key for {url}: run `odconnect login`, set {KEY_ENV} or pass --key")
    return Target(url, key)
