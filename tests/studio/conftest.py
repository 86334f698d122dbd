"""Browser tests of the studio: a real server on a loopback port, a real headless Chromium.

Chromium is Debian's (`apt-get install chromium`), driven by Playwright for Python with
`executable_path` (Playwright's own browser download is not used). In CI (CI=true) a missing
browser fails the run; elsewhere these tests skip and say how to install it.
"""
from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import KEY, make_config

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
INSTALL = "install it with `apt-get install chromium` and `pip install playwright` (or `pip install -e .[test]`)"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "bench" / "out" / "studio-screenshots"


def chromium_path() -> str | None:
    for candidate in (os.environ.get("ODCONNECT_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def _missing(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests cannot run in CI: {reason}; {INSTALL}", pytrace=False)
    pytest.skip(f"{reason}; {INSTALL}")


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python is not installed")
    path = chromium_path()
    if path is None:
        _missing("Chromium was not found")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The app served by uvicorn on a free loopback port, in a thread of the test process."""

    def __init__(self, root: Path, **config):
        import uvicorn
        from connector.app import create_app
        self.app = create_app(make_config(root, **config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, name="studio-server", daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(self.url + "/api/v1/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.time() < deadline, "the server did not start"
            time.sleep(0.05)

    def api(self):
        """The in-process API client (same store) for setting up and checking data."""
        from tests.conftest import Api
        return Api(self.app)

    def close(self):
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.app.odconnect.close()


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path / "store")
    yield srv
    srv.close()


@pytest.fixture(scope="session")
def trained_server(tmp_path_factory):
    """A server with model "shapes": 8 drawn images with boxes and one tiny trained version (fast
    preset, 3 iterations; detectron2 is told to keep even unsure boxes so there is always something
    to draw). Shared by the modules that need a version but do not test training itself."""
    from tests.test_inference_api import INFER
    from tests.training_data import LABELS, poll, upload_shapes
    srv = Server(tmp_path_factory.mktemp("trained") / "store", **INFER)
    api = srv.api()
    m = api.model("shapes", LABELS)
    upload_shapes(api, m, 8)
    r = api.post(f"/models/{m['id']}/train", json={"preset": "fast", "maxIterations": 3, "seed": 1})
    assert poll(api, r.headers["Location"], timeout=600)["status"] == "succeeded"
    yield srv, api, m
    srv.close()


class Console:
    """Console messages and page errors of a page, to assert that none is a CSP violation or a bug."""

    def __init__(self, page):
        self.messages: list[str] = []
        self.errors: list[str] = []
        page.on("console", lambda m: self.messages.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def problems(self) -> list[str]:
        bad = [m for m in self.messages if m.startswith("error") or "Content Security Policy" in m]
        # a 4xx the page expects (a wrong key, a missing draft) is logged by the browser as a failed load
        bad = [m for m in bad if "Failed to load resource" not in m]
        return bad + self.errors


@pytest.fixture
def new_page(browser, request):
    """new_page(server, viewport=(w, h), signed_in=True) -> (page, console)."""
    contexts = []

    def make(srv: Server, viewport=(1280, 800), signed_in=True, **kw):
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, **kw)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        console = Console(page)
        if signed_in:
            sign_in(page, srv)
        return page, console

    yield make
    for c in contexts:
        c.close()


def sign_in(page, srv: Server, key: str = KEY):
    page.goto(srv.url + "/studio/#/signin")
    page.get_by_role("textbox", name="API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("h1:text('Models')")


def shot(page, name: str) -> Path:
    """Save a screenshot of the page under bench/out/studio-screenshots (git ignores bench/out)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path
