"""`odconnect connector lint`: every certification rule, on the checked-in package and on a tenant's.

The neutral package (checked in) may keep placeholder publisher details; a package for a tenant
(publisher settings given, maybe a host) may not. The server-side facts the readme claims (absolute
Location headers, a gateway only when offered) are checked against the package and the server."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
import yaml

from connector.cli import main
from connector.powerplatform import package
from connector.powerplatform.lint import is_placeholder, lint, title_case
from connector.spec import load_spec
from tests.conftest import Api

OPENAPI = Path(__file__).resolve().parents[2] / "openapi"
SPEC = load_spec()
TENANT = {"publisher": "Contoso Vision Team", "website": "https://vision.contoso.com",
          "privacy_policy": "https://vision.contoso.com/privacy", "contact_name": "Contoso Vision Team",
          "contact_email": "vision@contoso.com", "contact_url": "https://vision.contoso.com/support",
          "brand_color": "#1F4E79"}


def checked_in() -> dict[str, bytes]:
    return {name: (OPENAPI / name).read_bytes() for name in package.FILES}


def tenant_package(host="od.contoso.com", **settings) -> dict[str, bytes]:
    connector = {**TENANT, "gateway": False, **settings}
    return package.build(host, None, SPEC, package.Publisher.from_config(connector))


def test_the_neutral_package_passes_but_is_not_ready_for_a_tenant():
    assert lint(checked_in(), SPEC) == []
    problems = lint(checked_in(), SPEC, tenant=True)
    assert problems == [
        "metadata: Website is the placeholder https://odconnect.invalid/: set the connector settings "
        "(connector.website, connector.privacy_policy, connector.contact_*)",
        "metadata: Privacy policy is the placeholder https://odconnect.invalid/privacy: set the connector "
        "settings (connector.website, connector.privacy_policy, connector.contact_*)",
        "metadata: info.contact.url is the placeholder https://odconnect.invalid/contact: set the connector "
        "settings (connector.website, connector.privacy_policy, connector.contact_*)",
        "metadata: info.contact.email is the placeholder contact@odconnect.invalid: set the connector "
        "settings (connector.website, connector.privacy_policy, connector.contact_*)"]


def test_a_configured_package_passes_for_a_tenant_and_carries_its_publisher():
    files = tenant_package()
    assert lint(files, SPEC, tenant=True) == []
    swagger = json.loads(files[package.DEFINITION])
    props = json.loads(files[package.PROPERTIES])["properties"]
    assert swagger["host"] == "od.contoso.com"
    assert swagger["info"]["contact"] == {"name": "Contoso Vision Team", "url": "https://vision.contoso.com/support",
                                          "email": "vision@contoso.com"}
    assert swagger["x-ms-connector-metadata"][:2] == [
        {"propertyName": "Website", "propertyValue": "https://vision.contoso.com"},
        {"propertyName": "Privacy policy", "propertyValue": "https://vision.contoso.com/privacy"}]
    assert props["publisher"] == props["stackOwner"] == "Contoso Vision Team" and props["iconBrandColor"] == "#1F4E79"
    assert props["connectionParameters"]["hostUrl"]["defaultValue"] == "od.contoso.com"
    readme = files[package.README].decode()
    assert "Contoso Vision Team: website https://vision.contoso.com" in readme
    assert "odconnect.invalid/" not in readme and "@odconnect.invalid" not in readme  # no placeholder publisher
    from PIL import Image
    assert Image.open(io.BytesIO(files[package.ICON])).getpixel((0, 0))[:3] == (0x1F, 0x4E, 0x79)  # drawn in the colour
    # a proxy path prefix goes with the connection's address, not into the definition's host
    prefixed = tenant_package("od.contoso.com/odconnect")
    assert json.loads(prefixed[package.DEFINITION])["host"] == "od.contoso.com"
    assert json.loads(prefixed[package.PROPERTIES])["properties"]["connectionParameters"]["hostUrl"][
        "defaultValue"] == "od.contoso.com/odconnect"


@pytest.mark.parametrize("change, needle", [
    ({"website": "https://example.com"}, "Website is the placeholder https://example.com"),
    ({"contact_email": "me@corp.example"}, "info.contact.email is the placeholder me@corp.example"),
    ({"brand_color": "#007ee5"}, "iconBrandColor '#007ee5'"),
    ({"brand_color": "blue"}, "iconBrandColor 'blue'"),
    ({"privacy_policy": "http://vision.contoso.com/privacy"}, "must be an https URL"),
])
def test_tenant_settings_that_certification_refuses(change, needle):
    problems = lint(tenant_package(**change), SPEC, tenant=True, structure=False)
    assert any(needle in p for p in problems), problems


@pytest.mark.parametrize("host, needle", [
    ("localhost:8080", "host localhost:8080 is a placeholder or local address"),
    ("10.0.0.5", "host 10.0.0.5 is a placeholder"),
    ("odconnect.local", "host odconnect.local is a placeholder"),
])
def test_a_host_power_platform_cannot_reach_is_refused_for_a_tenant(host, needle):
    problems = lint(tenant_package(host), SPEC, tenant=True, structure=False)
    assert any(needle in p for p in problems) and any("defaults to" in p for p in problems), problems


def edit(files: dict[str, bytes], name: str, change) -> dict[str, bytes]:
    out = dict(files)
    if name == package.README:
        out[name] = change(files[name].decode()).encode()
    else:
        data = json.loads(files[name])
        change(data)
        out[name] = json.dumps(data).encode()
    return out


@pytest.mark.parametrize("name, change, needle", [
    (package.PROPERTIES, lambda p: p["properties"].pop("policyTemplateInstances"), "one dynamichosturl policy"),
    (package.PROPERTIES, lambda p: p["properties"]["policyTemplateInstances"][0]["parameters"].update(
        {"x-ms-apimTemplateParameter.urlTemplate": "https://@connectionParameters('server')/api/v1"}),
     "must use a string connection parameter"),
    (package.PROPERTIES, lambda p: p["properties"]["policyTemplateInstances"][0]["parameters"].update(
        {"x-ms-apimTemplateParameter.urlTemplate": "https://@connectionParameters('hostUrl')"}),
     "must end with the basePath /api/v1"),
    (package.PROPERTIES, lambda p: p["properties"]["connectionParameters"]["api_key"].update(type="string"),
     "must be a securestring"),
    (package.PROPERTIES, lambda p: p["properties"].update(publisher=""), "publisher is missing"),
    (package.README, lambda t: t.replace("are absolute URLs", "are paths on the server, not absolute URLs"),
     "Location headers are absolute"),
    (package.README, lambda t: t.replace(package.GATEWAY_TEXT[False], package.GATEWAY_TEXT[True]),
     "claims an on-premises data gateway the package does not offer"),
    (package.README, lambda t: t.replace("## Obtaining Credentials", "## Credentials"), "Obtaining Credentials"),
    (package.README, lambda t: t.replace("`DetectObjects`", "DetectObjects"), "DetectObjects is not listed"),
    (package.DEFINITION, lambda s: s["info"].update(description="Too short."), "info.description has 10"),
])
def test_each_package_rule_bites(name, change, needle):
    problems = lint(edit(checked_in(), name, change), SPEC, structure=False)
    assert any(needle in p for p in problems), problems


def test_a_gateway_is_offered_only_when_configured_and_then_explained():
    files = tenant_package(gateway=True)
    props = json.loads(files[package.PROPERTIES])["properties"]
    assert props["connectionParameters"]["gateway"]["type"] == "gatewaySetting"
    assert props["capabilities"] == ["gateway"]
    assert package.GATEWAY_TEXT[True] in files[package.README].decode()
    assert lint(files, SPEC, tenant=True) == []
    assert "gateway" not in json.loads(checked_in()[package.PROPERTIES])["properties"]["connectionParameters"]
    silent = edit(files, package.README, lambda t: t.replace(package.GATEWAY_TEXT[True], "on a public address"))
    assert any("offers a gateway the readme does not explain" in p for p in lint(silent, SPEC, structure=False))


def test_what_the_readme_claims_is_what_the_server_does(make_app):
    """Location headers are absolute (the readme says so and the lint holds it to that)."""
    api = Api(make_app(training={"retry_after_seconds": 1}))
    m = api.model("fruit")
    r = api.post(f"/models/{m['id']}/train", json={})
    assert r.status_code == 400  # no images: the data check refuses; the 202 path is tested in test_training_api
    sub = api.post("/webhooks/training-run-finished", json={"callbackUrl": "https://20.50.2.7/hook"})
    assert sub.status_code == 201 and sub.headers["Location"].startswith("http://testserver/api/v1/webhooks/")
    assert "are absolute URLs" in checked_in()[package.README].decode()


def test_title_case_and_placeholders():
    assert title_case("Time Budget (Minutes)") and title_case("Finished at") and title_case("Duration (ms)")
    assert not title_case("Include archived") and not title_case("minimum Probability")
    assert all(is_placeholder(a) for a in ("https://odconnect.invalid/", "localhost:8080", "https://example.com/x",
                                           "od.example.org", "api.test", "127.0.0.1", "10.1.2.3", "x.local"))
    assert not any(is_placeholder(a) for a in ("https://vision.contoso.com", "od.contoso.com:8443", "20.50.2.7"))


def test_the_cli_prints_what_fails_and_exits_1(tmp_path, capsys):
    assert main(["connector", "lint", "--neutral"]) == 0
    assert capsys.readouterr().out.strip() == "the neutral package: no problems"
    assert main(["connector", "lint"]) == 1  # the default settings are placeholders for a tenant
    out = capsys.readouterr().out
    assert "metadata: Website is the placeholder" in out and out.rstrip().endswith("4 problems")
    config = tmp_path / "tenant.yaml"
    config.write_text(yaml.safe_dump({"connector": TENANT}))
    assert main(["--config", str(config), "connector", "lint", "--host", "od.contoso.com"]) == 0
    assert main(["--config", str(config), "connector", "lint", "--host", "localhost:8080"]) == 1
    assert "Power Platform cannot reach" in capsys.readouterr().out
    out_zip = tmp_path / "pkg.zip"
    assert main(["--config", str(config), "connector", "export", "--host", "od.contoso.com", "--out", str(out_zip)]) == 0
    exported = {n: zipfile.ZipFile(out_zip).read(n) for n in package.FILES}
    assert lint(exported, SPEC, tenant=True) == []  # what export writes is what lint checked


def test_the_server_serves_its_own_package_for_its_public_address(make_app):
    api = Api(make_app(server={"public_url": "https://vision.contoso.com/od/"}, connector=TENANT))
    r = api.client.get("/api/v1/connector/package")
    files = {n: zipfile.ZipFile(io.BytesIO(r.content)).read(n) for n in package.FILES}
    assert json.loads(files[package.DEFINITION])["host"] == "vision.contoso.com"
    props = json.loads(files[package.PROPERTIES])["properties"]
    assert props["connectionParameters"]["hostUrl"]["defaultValue"] == "vision.contoso.com/od"
    assert lint(files, SPEC, tenant=True) == []
    definition = api.client.get("/api/v1/connector/apiDefinition.swagger.json").json()
    assert definition["host"] == "vision.contoso.com" and definition["schemes"] == ["https"]
