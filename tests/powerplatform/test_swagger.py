"""The connector package: valid Swagger 2.0, Power Platform's rules, in lockstep with the served spec."""
from __future__ import annotations

import copy
import io
import json
import zipfile
from pathlib import Path

import jsonschema
import pytest
from openapi_spec_validator import OpenAPIV2SpecValidator
from PIL import Image

from connector.powerplatform import package, swagger2
from tests.conftest import Api
from connector.powerplatform.lint import lint
from tests.powerplatform.helpers import MAX_BYTES, check_connector, swagger2_schema

OPENAPI = Path(__file__).resolve().parents[2] / "openapi"
RAW = (OPENAPI / package.DEFINITION).read_bytes()
SWAGGER = json.loads(RAW)
REGENERATE = "run `python -m connector.powerplatform` to regenerate it"


def op(operation_id: str) -> dict:
    for item in SWAGGER["paths"].values():
        for method, o in item.items():
            if isinstance(o, dict) and o.get("operationId") == operation_id:
                return o
    raise KeyError(operation_id)


def param(o: dict, name: str) -> dict:
    return next(p for p in o["parameters"] if p["name"] == name)


def test_checked_in_package_equals_the_generator_output():
    built = package.build()
    for name in (package.DEFINITION, package.PROPERTIES, package.README):
        assert (OPENAPI / name).read_bytes() == built[name], f"openapi/{name} drifted from the spec: {REGENERATE}"
    # deterministic: a second run gives the same bytes
    assert swagger2.dumps(package.definition()) == RAW.decode()


def test_valid_swagger_2_under_one_megabyte():
    assert len(RAW) < MAX_BYTES
    errors = list(jsonschema.Draft4Validator(swagger2_schema()).iter_errors(SWAGGER))
    assert errors == [], [e.message for e in errors[:5]]
    assert list(OpenAPIV2SpecValidator(SWAGGER).iter_errors()) == []


def test_schema_check_catches_openapi3_leftovers():
    """The JSON-schema check is live: an OpenAPI 3 keyword or a missing type fails it."""
    validator = jsonschema.Draft4Validator(swagger2_schema())
    bad = copy.deepcopy(SWAGGER)
    bad["definitions"]["Model"]["properties"]["publishedVersionId"]["nullable"] = True
    assert list(validator.iter_errors(bad))
    bad = copy.deepcopy(SWAGGER)
    bad["paths"]["/models"]["get"]["parameters"][0].pop("type")
    assert list(validator.iter_errors(bad))


def test_power_platform_rules_hold():
    """The same lint `odconnect connector lint --neutral` runs, on the checked-in package."""
    files = {name: (OPENAPI / name).read_bytes() for name in package.FILES}
    assert lint(files, swagger2.load_spec()) == []
    assert check_connector(SWAGGER, RAW) == []


@pytest.mark.parametrize("mutate, needle", [
    (lambda s: s["paths"]["/models"]["get"].update(operationId="listModels"), "PascalCase"),
    (lambda s: s["paths"]["/models"]["get"].update(summary="List the models."), "summary"),
    (lambda s: s["paths"]["/models"]["get"].update(summary="x" * 81), "summary"),
    (lambda s: s["paths"]["/models"]["get"].update(description="List models"), "period"),
    (lambda s: s["paths"]["/models"]["get"]["parameters"][0].pop("x-ms-summary"), "x-ms-summary"),
    (lambda s: s["definitions"]["Label"]["properties"]["name"].pop("x-ms-summary"), "x-ms-summary"),
    (lambda s: s["paths"]["/models"]["get"].update(responses={"default": {"description": "x"}}), "default-only"),
    (lambda s: s["paths"]["/models/{modelId}/versions/{version}"]["get"]["parameters"][1]
     ["x-ms-dynamic-values"].update(operationId="Nope"), "missing Nope"),
    (lambda s: s["paths"]["/webhooks/version-published"].pop("x-ms-notification-content"), "notification"),
    (lambda s: s["paths"]["/models"]["get"]["parameters"][0].update({"x-ms-summary": "Include archived"}),
     "titles: ListModels: parameter includeArchived: x-ms-summary 'Include archived' is not in title case"),
    (lambda s: s["paths"]["/models"]["get"]["parameters"][0].pop("description"),
     "parameter includeArchived has no description"),
    (lambda s: s["paths"]["/models"]["get"].update(description="Lists models for Power Automate."),
     "product-names: ListModels: Power Automate"),
    (lambda s: s["definitions"]["Model"]["properties"]["name"].update(description="Shown in Power Apps."),
     "product-names: definitions.Model.name names Power Apps"),
    (lambda s: s["paths"]["/models"]["get"].update(summary="List models / labels"), "forbidden characters"),
    (lambda s: s["paths"]["/models"]["get"]["responses"].update({"201": {"description": "x", "schema": {}}}),
     "ListModels: 2 success answers"),
    (lambda s: s["x-ms-connector-metadata"].pop(0), "lacks Website"),
    (lambda s: s["info"].update(title="odconnect API"), "must not say API"),
    (lambda s: s["info"].pop("contact"), "info.contact.email is missing"),
    (lambda s: s["paths"]["/models"]["get"].update(operationId=42), "swagger2"),
])
def test_the_checker_catches_each_rule(mutate, needle):
    bad = copy.deepcopy(SWAGGER)
    mutate(bad)
    structure = needle == "swagger2"  # the JSON-schema pass is slow: only where it is the rule under test
    problems = check_connector(bad, structure=structure)
    assert any(needle in p for p in problems), problems[:5]
    assert check_connector(SWAGGER, b"x" * MAX_BYTES, structure=False) == [
        f"size: {MAX_BYTES} bytes: custom connectors take under 1 MB"]


def test_every_served_operation_is_in_the_connector_with_its_id():
    spec = swagger2.load_spec()
    served = {o["operationId"] for item in spec["paths"].values() for m, o in item.items()
              if m in swagger2.METHODS and o.get("x-odconnect-connector") != "exclude"}
    connector = {o["operationId"] for item in SWAGGER["paths"].values() for o in item.values()
                 if isinstance(o, dict) and "operationId" in o}
    assert served == connector
    assert {"DetectObjects", "QuickTest", "TrainModel", "GetTrainingRun", "PublishVersion", "ListModels",
            "ListLabels", "ListVersions", "OnTrainingRunFinished", "OnVersionPublished"} <= connector
    assert "GetConnectorDefinition" not in connector  # the download itself stays out


def test_images_are_base64_in_json_and_binary_where_raw():
    detect = op("DetectObjects")
    assert detect["consumes"] == ["application/json"]
    body = SWAGGER["definitions"]["ImageInput"]
    assert body["properties"]["content"]["format"] == "byte" and body["required"] == ["content"]
    assert body["properties"]["content"]["x-ms-visibility"] == "important"
    # the query duplicates of the body options are hidden, the query ones have pickers
    assert body["properties"]["threshold"]["x-ms-visibility"] == "internal"
    assert param(detect, "labels")["x-ms-dynamic-values"]["operationId"] == "ListLabels"
    raw = op("UploadImageBinary")
    assert param(raw, "body")["schema"] == {"type": "string", "format": "binary"}
    assert raw["consumes"][0] == "application/octet-stream" and "image/png" in raw["consumes"]
    files = op("UploadImageFiles")
    assert files["consumes"] == ["multipart/form-data"] and param(files, "files")["type"] == "file"
    content = op("GetImageContent")["responses"]["200"]["schema"]
    assert content == {"type": "string", "format": "binary"}
    quick = op("QuickTest")["responses"]["200"]["schema"]
    assert quick["properties"]["annotatedImage"]["format"] == "byte"  # allOf merged into one object
    assert "predictions" in quick["properties"] and "allOf" not in quick


def test_pickers_and_visibility_defaults():
    publish = op("PublishVersion")
    model, version = param(publish, "modelId"), param(publish, "version")
    assert model["x-ms-dynamic-values"] == {"operationId": "ListModels", "value-path": "id", "value-title": "name"}
    assert version["x-ms-dynamic-values"]["parameters"] == {"modelId": {"parameter": "modelId"}}
    assert model["x-ms-visibility"] == version["x-ms-visibility"] == "important"
    assert param(op("ListModels"), "includeArchived")["x-ms-visibility"] == "advanced"
    assert param(op("ListModels"), "includeArchived")["x-ms-summary"] == "Include Archived"
    train = SWAGGER["definitions"]["TrainRequest"]["properties"]
    assert train["budgetMinutes"]["x-ms-visibility"] == "important"  # set in the spec
    assert train["maxIterations"]["x-ms-summary"] == "Max Iterations"  # derived from the name, title case
    assert train["maxIterations"]["x-nullable"] is True
    # response-only schemas get summaries but no visibility
    assert "x-ms-visibility" not in SWAGGER["definitions"]["Model"]["properties"]["name"]


def test_long_running_training_keeps_its_202_contract():
    train = op("TrainModel")["responses"]
    assert set(train["202"]["headers"]) == {"Location", "Retry-After"}
    assert train["202"]["schema"] == {"$ref": "#/definitions/TrainingRun"}
    run = op("GetTrainingRun")["responses"]
    assert run["200"]["schema"] == run["202"]["schema"] == {"$ref": "#/definitions/TrainingRun"}
    assert set(run["202"]["headers"]) == {"Location", "Retry-After"}


def test_webhook_triggers_and_their_delete():
    for op_id, event in (("OnTrainingRunFinished", "TrainingRunFinishedEvent"),
                         ("OnVersionPublished", "VersionPublishedEvent"),
                         ("OnModelNeedsAttention", "ModelNeedsAttentionEvent")):
        trigger = op(op_id)
        assert trigger["x-ms-trigger"] == "single"
        path = next(p for p, item in SWAGGER["paths"].items() if item.get("post") is trigger)
        assert SWAGGER["paths"][path]["x-ms-notification-content"]["schema"] == {"$ref": f"#/definitions/{event}"}
        create = SWAGGER["definitions"]["WebhookSubscriptionCreate"]["properties"]["callbackUrl"]
        assert create["x-ms-notification-url"] is True and create["x-ms-visibility"] == "internal"
        assert "Location" in trigger["responses"]["201"]["headers"]
    delete = op("DeleteWebhook")
    assert delete["x-ms-visibility"] == "internal" and "204" in delete["responses"]


def test_properties_icon_and_readme():
    props = json.loads((OPENAPI / package.PROPERTIES).read_text())["properties"]
    key = props["connectionParameters"]["api_key"]
    assert key["type"] == "securestring" and key["uiDefinition"]["constraints"]["required"] == "true"
    # the server is chosen per connection: a host parameter and the dynamichosturl policy, as certified
    # connectors do; the generic package names no server
    host = props["connectionParameters"]["hostUrl"]
    assert host["type"] == "string" and "defaultValue" not in host
    assert props["policyTemplateInstances"] == [{
        "templateId": "dynamichosturl", "title": "Call the server of the connection",
        "parameters": {"x-ms-apimTemplateParameter.urlTemplate": "https://@connectionParameters('hostUrl')/api/v1"}}]
    assert SWAGGER["host"] == "odconnect.invalid" and SWAGGER["basePath"] == "/api/v1"
    assert SWAGGER["securityDefinitions"] == {"api_key": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
    assert props["iconBrandColor"].startswith("#") and len(props["iconBrandColor"]) == 7
    assert isinstance(props["capabilities"], list)
    icon = Image.open(OPENAPI / package.ICON)
    assert icon.format == "PNG" and icon.size[0] == icon.size[1] and 100 <= icon.size[0] <= 230
    readme = (OPENAPI / package.README).read_text()
    for section in ("## Publisher", "## Prerequisites", "## Supported Operations", "## Obtaining Credentials",
                    "## Known Issues and Limitations", "## Deployment Instructions"):
        assert section in readme
    for o in ("DetectObjects", "QuickTest", "TrainModel", "PublishVersion", "OnTrainingRunFinished"):
        assert f"`{o}`" in readme


def test_the_server_serves_the_definition_and_package(make_app):
    api = Api(make_app())
    r = api.client.get("/api/v1/connector/apiDefinition.swagger.json")  # no API key needed
    assert r.status_code == 200
    served = r.json()
    assert served["host"] == "testserver" and served["schemes"] == ["http"]
    assert {**served, "host": SWAGGER["host"], "schemes": SWAGGER["schemes"]} == SWAGGER
    r = api.client.get("/api/v1/connector/package")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    assert sorted(zf.namelist()) == sorted(package.FILES)
    assert json.loads(zf.read(package.DEFINITION))["host"] == "testserver"


def test_cli_export_writes_the_zip(tmp_path):
    from connector.cli import main
    out = tmp_path / "pkg" / "connector.zip"
    assert main(["connector", "export", "--out", str(out), "--host", "odconnect.contoso.com"]) == 0
    zf = zipfile.ZipFile(out)
    assert sorted(zf.namelist()) == sorted(package.FILES)
    exported = json.loads(zf.read(package.DEFINITION))
    assert exported["host"] == "odconnect.contoso.com"
    assert {**exported, "host": SWAGGER["host"]} == SWAGGER
    assert zf.read(package.ICON) == (OPENAPI / package.ICON).read_bytes()
    # the host is baked in as the connection's default server address; the rest is the generic package
    props = json.loads(zf.read(package.PROPERTIES))
    assert props["properties"]["connectionParameters"]["hostUrl"].pop("defaultValue") == "odconnect.contoso.com"
    assert props == json.loads((OPENAPI / package.PROPERTIES).read_bytes())
    # deterministic bytes: the same package twice is the same zip
    again = tmp_path / "again.zip"
    main(["connector", "export", "--out", str(again), "--host", "odconnect.contoso.com"])
    assert again.read_bytes() == out.read_bytes()
    main(["connector", "export", "--out", str(tmp_path / "default.zip")])
    assert json.loads(zipfile.ZipFile(tmp_path / "default.zip").read(package.DEFINITION)) == SWAGGER
