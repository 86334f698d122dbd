"""`odconnect login` and `logout`: check a URL and key against the server, then keep them."""
from __future__ import annotations

import getpass
import os
import sys

from .. import config
from ..errors import AuthMissing, Unreachable
from ..http import Api
from .base import command


def read_key(args) -> str:
    """The key from --key, stdin (--key-stdin), $ODCONNECT_KEY, or a prompt that does not echo."""
    if args.key_stdin:
        key = sys.stdin.readline().strip()
    else:
        key = args.key or os.environ.get(config.KEY_ENV, "")
        if not key:
            if not sys.stdin.isatty():
                raise AuthMissing("no API key: pass it on stdin with --key-stdin, or set "
                                  f"{config.KEY_ENV}, or run login in a terminal")
            key = getpass.getpass("API key (not shown): ").strip()
    if not key:
        raise AuthMissing("the API key is empty")
    return key


def login(session, args):
    url = config.resolve_url(args.url)
    key = read_key(args)
    with Api(url, key, args.timeout) as api:
        versions = api.get("/version")  # needs the key: a 401 here says it is wrong
    if not isinstance(versions, dict) or "odconnect" not in versions:
        raise Unreachable(f"{url}/version answered, but not as an odconnect server does: check --url")
    path = config.save(config.Target(url, key))
    data = {"url": url, "configFile": str(path), "server": versions}
    session.out.result(data, lambda: session.out.line(
        f"Logged in to {url} (odconnect {versions.get('odconnect', '?')}, "
        f"{versions.get('device', '?')}); saved to {path} (mode 0600)"))


def logout(session, args):
    path = config.forget()
    data = {"configFile": str(config.config_file()), "removed": path is not None}
    session.out.result(data, lambda: session.out.line(
        f"Removed {path}" if path else f"Not logged in ({config.config_file()} does not exist)"))


def register(sub) -> None:
    p = command(sub, "login", login, "check a server URL and API key, then save them for the other commands",
                """
                odconnect login --url http://od.example.org:8080      # asks for the key
                echo "$KEY" | odconnect login --url od.example.org:8080 --key-stdin
                """,
                description="Checks the URL and key against the server (GET /version) and saves both "
                            f"in {config.config_file()} (mode 0600). The key is never printed. "
                            "A server started with `odconnect serve` and no configured key writes its key "
                            "to <storage root>/api_key (./data/api_key by default) and says where at start.")
    p.add_argument("--key-stdin", action="store_true", help="read the key from the first line of stdin")
    command(sub, "logout", logout, "forget the saved URL and key", "odconnect logout")

