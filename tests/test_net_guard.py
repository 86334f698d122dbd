"""The webhook SSRF guard: https only, public addresses only (after DNS), checked at subscribe time and
again at each delivery, the checked address pinned, no redirects, an allow list for on-premises receivers."""
from __future__ import annotations

import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from connector.config import ConfigError, load_config
from connector.net_guard import CallbackPolicy, Refused
from model_store.schema import WebhookDelivery
from tests.conftest import Api
from tests.powerplatform.helpers import Receiver
from tests.powerplatform.test_webhooks import FAST, finish_a_run

PUBLIC = "20.50.2.7"  # a public address (the guard only looks at it; nothing connects to it)


def dns(names: dict[str, list[str]]):
    def resolve(host, port):
        if host not in names:
            raise OSError(f"{host}: no such name in this test")
        return names[host]
    return resolve


def policy(**kw) -> CallbackPolicy:
    webhooks = {"allow_loopback": False, "allowed_networks": [], **{k: v for k, v in kw.items() if k != "resolve"}}
    return CallbackPolicy.from_config(webhooks, kw.get("resolve", dns({"hooks.example.net": [PUBLIC]})))


@pytest.mark.parametrize("address, kind", [
    ("127.0.0.1", "loopback"), ("127.9.9.9", "loopback"), ("::1", "loopback"),
    ("10.0.0.7", "private"), ("172.16.5.4", "private"), ("192.168.1.20", "private"), ("fd12:3456::1", "private"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("224.0.0.251", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("240.0.0.1", "reserved"),
    ("100.64.0.9", "not globally routable"),  # shared address space (carrier-grade NAT)
    ("::ffff:10.0.0.7", "private"),  # IPv4-mapped IPv6 is the IPv4 address
])
def test_each_refused_address_class(address, kind):
    literal = f"[{address}]" if ":" in address else address
    with pytest.raises(Refused, match=f"a {kind} address"):
        policy().check(f"https://{literal}/hook")
    # the same address behind a DNS name
    with pytest.raises(Refused, match=f"resolves to .*a {kind} address"):
        policy(resolve=dns({"inside.example.net": [address]})).check("https://inside.example.net/hook")


def test_a_public_name_passes_and_every_resolved_address_must_be_public():
    assert policy().check("https://hooks.example.net/x?sig=1") == ("https://hooks.example.net/x?sig=1", [PUBLIC])
    mixed = policy(resolve=dns({"hooks.example.net": [PUBLIC, "10.1.2.3"]}))
    with pytest.raises(Refused, match="10.1.2.3, a private address"):
        mixed.check("https://hooks.example.net/x")
    with pytest.raises(Refused, match="does not resolve"):
        policy().check("https://nowhere.example.net/x")


def test_a_real_name_resolving_to_loopback_is_refused():
    """`localhost` through the system resolver, as a delivery would resolve it."""
    with pytest.raises(Refused, match="resolves to .* loopback address"):
        CallbackPolicy.from_config({"allow_loopback": False, "allowed_networks": []}).check("https://localhost/hook")


def test_https_only_and_loopback_by_setting():
    with pytest.raises(Refused, match="must be https"):
        policy().check("http://hooks.example.net/x")
    with pytest.raises(Refused, match="absolute https URL"):
        policy().check("ftp://hooks.example.net/x")
    with pytest.raises(Refused, match="credentials"):
        policy().check("https://user:secret@hooks.example.net/x")
    local = policy(allow_loopback=True)
    assert local.check("http://127.0.0.1:8000/hook")[1] == ["127.0.0.1"]  # http only to loopback
    assert local.check("https://[::1]/hook")[1] == ["::1"]
    with pytest.raises(Refused, match="private"):  # allowing loopback allows nothing else
        local.check("https://10.0.0.7/hook")


def test_allowed_networks_admit_on_premises_receivers():
    onprem = policy(allowed_networks=["10.20.0.0/16", "fd00:1::/32"],
                    resolve=dns({"hooks.corp.example": ["10.20.3.4"]}))
    assert onprem.check("https://hooks.corp.example/flow")[1] == ["10.20.3.4"]
    assert onprem.check("https://[fd00:1::5]/flow")[1] == ["fd00:1::5"]
    with pytest.raises(Refused, match="10.21.0.1, a private"):
        onprem.check("https://10.21.0.1/flow")
    with pytest.raises(Refused, match="must be https"):  # an allowed network still needs https
        onprem.check("http://hooks.corp.example/flow")
    with pytest.raises(ValueError, match="not a network"):
        CallbackPolicy.from_config({"allow_loopback": False, "allowed_networks": ["10.20.0.0/33"]})
    with pytest.raises(ConfigError, match="webhooks.allowed_networks must be list"):
        load_config(environ={}, overrides={"webhooks": {"allowed_networks": "10.0.0.0/8"}})


def test_subscribing_refuses_what_the_guard_refuses(make_app):
    api = Api(make_app(webhooks={"allow_loopback": False}))
    for url, needle in (("https://169.254.169.254/latest/meta-data", "link-local"),
                        ("https://localhost/hook", "loopback"), ("http://127.0.0.1:9/hook", "loopback"),
                        ("http://hooks.example.net/x", "does not resolve")):
        for trigger in ("training-run-finished", "version-published", "model-needs-attention"):
            r = api.post(f"/webhooks/{trigger}", json={"callbackUrl": url})
            assert r.status_code == 400 and needle in r.json()["detail"], (trigger, url, r.text)
            assert r.headers["content-type"] == "application/problem+json"
    assert api.get("/webhooks").json() == []


def wait_for(api, done, timeout: float = 20.0) -> list[WebhookDelivery]:
    """The deliveries, once `done(deliveries)` holds."""
    deadline = time.monotonic() + timeout
    while True:
        with api.app.odconnect.store.transaction() as s:
            rows = s.query(WebhookDelivery).order_by(WebhookDelivery.id).all()
        if done(rows):
            return rows
        assert time.monotonic() < deadline, [(r.status, r.attempts, r.last_error) for r in rows]
        time.sleep(0.05)


def _use_dns(api, names):
    dispatcher = api.app.odconnect.webhooks
    dispatcher.policy = replace(dispatcher.policy, resolve=dns(names))


def test_each_delivery_checks_again_and_connects_to_the_checked_address(make_app):
    """A name that resolved to a public address at subscribe time and to a private one later (DNS
    rebinding) gets nothing; a name pinned to the receiver's address gets the event with its own Host."""
    api = Api(make_app(**FAST))
    m = api.model("fruit")
    names = {"rebind.example.net": [PUBLIC]}
    _use_dns(api, names)
    api.post("/webhooks/training-run-finished", json={"callbackUrl": "https://rebind.example.net/hook"})
    names["rebind.example.net"] = ["10.0.0.7"]  # the attacker's DNS now points inside
    with Receiver() as rx:
        port = rx.httpd.server_address[1]
        names["receiver.example.net"] = ["127.0.0.1"]  # only this test's resolver knows the name
        r = api.post("/webhooks/training-run-finished",
                     json={"callbackUrl": f"http://receiver.example.net:{port}/hook"})
        assert r.status_code == 201, r.text
        finish_a_run(api, m)
        got = rx.get()
        assert got["headers"]["Host"] == f"receiver.example.net:{port}"
    first = wait_for(api, lambda d: d[0].attempts >= 1 and d[0].last_error)[0]
    assert first.status == "pending"  # retried later: the name may point outside again
    assert "rebind.example.net resolves to 10.0.0.7, a private address" in first.last_error


class _Redirecting(BaseHTTPRequestHandler):
    target = ""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(307)
        self.send_header("Location", self.target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_redirects_are_not_followed(make_app):
    api = Api(make_app(**FAST))
    m = api.model("fruit")
    with Receiver() as inside:
        _Redirecting.target = inside.url
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
            assert api.post("/webhooks/training-run-finished", json={"callbackUrl": url}).status_code == 201
            finish_a_run(api, m)
            [d] = wait_for(api, lambda d: d and d[0].last_error)
            assert d.last_error.startswith("HTTP 307")
            assert inside.none_within(0.5)  # the Location was never called
        finally:
            httpd.shutdown()
            httpd.server_close()


def test_config_defaults_refuse_loopback():
    cfg = load_config(environ={})
    assert cfg["webhooks"]["allow_loopback"] is False and cfg["webhooks"]["allowed_networks"] == []
