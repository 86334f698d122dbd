"""The HTTP side of the client: one httpx.Client with the base URL and the key header.

Every request goes through `Api.request`, which turns a refused connection or a
timeout into `Unreachable` and an error answer into `ApiError` carrying the
server's problem+json (status, title, detail), so commands only handle success.
httpx's Client is thread-safe: the parallel upload and detect pools share one
and with it one connection pool.
"""
from __future__ import annotations

import html
import importlib.metadata
import re
from pathlib import Path
from typing import Callable

import httpx

from .errors import ApiError, Unreachable
from .files import atomic_file

API_KEY_HEADER = "X-API-Key"  # the spec's apiKey security scheme
# Publishing loads and warms a model and exporting may trace one: reads wait minutes, not seconds.
DEFAULT_TIMEOUT_S = 600.0
CONNECT_TIMEOUT_S = 10.0


def _user_agent() -> str:
    try:
        return f"odconnect-cli/{importlib.metadata.version('odconnect')}"
    except importlib.metadata.PackageNotFoundError:
        return "odconnect-cli"


def _text_of(response: httpx.Response, limit: int = 300) -> str:
    """A non-JSON body in one short line: an HTML page (a proxy's, another server's) by its
    title or its text without tags, never the whole page."""
    text = response.text
    if "html" in response.headers.get("Content-Type", "") or re.match(r"\s*<(!doctype|html)", text, re.I):
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
        text = title.group(1) if title else re.sub(r"<[^>]+>", " ", text)
        text = "an HTML page: " + html.unescape(text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def not_the_api(response: httpx.Response) -> Unreachable:
    """A 2xx or 3xx answer that is not the odconnect API's: the URL points elsewhere."""
    request = response.request
    where = f"{request.method} {request.url}"
    if response.is_redirect:
        return Unreachable(f"{where} was redirected to {response.headers.get('Location', '?')}: "
                           "give that address with --url (or odconnect login --url)")
    kind = response.headers.get("Content-Type", "no content type").split(";")[0]
    return Unreachable(f"{where} answered {response.status_code} with {kind}, not the odconnect API's JSON "
                       f"({_text_of(response, 120) or 'empty'}): is the URL the odconnect server's address?")


def problem_of(response: httpx.Response) -> ApiError:
    """The server's problem details, or the best summary of a non-problem error body."""
    title = response.reason_phrase or "Error"
    body: dict = {}
    try:
        parsed = response.json()
        body = parsed if isinstance(parsed, dict) else {}
    except ValueError:
        pass
    detail = body.get("detail")
    if not isinstance(detail, str):
        detail = _text_of(response) if not body else ""
        if not body and response.status_code == 404:
            detail += f" (is {response.request.url.copy_with(query=None)} on an odconnect server? check --url)"
    return ApiError(response.status_code, str(body.get("title") or title), detail, body)


class Api:
    def __init__(self, url: str, key: str, timeout: float = DEFAULT_TIMEOUT_S):
        self.url = url
        self.http = httpx.Client(
            base_url=url,
            headers={API_KEY_HEADER: key, "User-Agent": _user_agent()},
            timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT_S)),
            # the upload and detect pools run up to this many requests at once
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kw)
        except httpx.TimeoutException as exc:
            raise Unreachable(f"{self.url} did not answer in time ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach {self.url}: {exc}") from exc
        if response.is_error:
            raise problem_of(response)
        if response.is_redirect:
            raise not_the_api(response)
        return response

    @staticmethod
    def json_of(response: httpx.Response):
        try:
            return response.json()
        except ValueError as exc:
            raise not_the_api(response) from exc

    def get(self, path: str, **kw):
        return self.json_of(self.request("GET", path, **kw))

    def post(self, path: str, **kw):
        response = self.request("POST", path, **kw)
        return self.json_of(response) if response.content else None

    def delete(self, path: str, **kw):
        response = self.request("DELETE", path, **kw)
        return self.json_of(response) if response.content else None

    def download(self, path: str, choose_dest: Callable[[httpx.Response], Path],
                 on_progress: Callable[[int, int | None], None] = lambda done, total: None,
                 **kw) -> tuple[Path, httpx.Response]:
        """Stream a GET answer into the file choose_dest(response) names: a temporary file
        beside it, renamed when complete, so that an interrupted download leaves nothing."""
        try:
            with self.http.stream("GET", path, **kw) as response:
                if response.is_error or response.is_redirect:
                    response.read()
                    raise problem_of(response) if response.is_error else not_the_api(response)
                dest = choose_dest(response)
                total = int(response.headers["Content-Length"]) if "Content-Length" in response.headers else None
                with atomic_file(dest) as fh:
                    for chunk in response.iter_bytes():
                        fh.write(chunk)
                        on_progress(response.num_bytes_downloaded, total)
                return dest, response
        except httpx.TimeoutException as exc:
            raise Unreachable(f"{self.url} did not answer in time ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach {self.url}: {exc}") from exc
