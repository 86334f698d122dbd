"""`odconnect flows export`: the example flows as a solution zip and legacy packages, for a connector name.

No tenant is reachable from here, so these tests check structure: every file a package names exists,
every id and reference resolves, the connector's name replaced `shared_odconnect` everywhere it names
the API and nowhere else, and the flows are otherwise the examples unchanged. (Replaying an exported
flow against a live server is in test_flows.py.)
"""
from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

from connector.cli import main
from connector.powerplatform import flows

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = flows.load_examples(ROOT / "flows_examples")
NAME = "shared_odconnect-5f3c9e8d4b2a1c0d9e"
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def unzip(data: bytes) -> dict[str, bytes]:
    zf = zipfile.ZipFile(io.BytesIO(data))
    assert zf.testzip() is None
    return {n: zf.read(n) for n in zf.namelist()}


def hosts(node):
    if isinstance(node, dict):
        if isinstance(node.get("host"), dict):
            yield node["host"]
        for value in node.values():
            yield from hosts(value)
    elif isinstance(node, list):
        for value in node:
            yield from hosts(value)


def without_connector(flow: dict, name: str) -> str:
    """The flow as text with the connector's name put back: what must equal the example."""
    return json.dumps(flow, sort_keys=True).replace(name, "shared_odconnect")


def test_the_solution_is_complete_and_every_reference_resolves():
    files = unzip(flows.solution_zip(EXAMPLES, NAME))
    assert {"[Content_Types].xml", "solution.xml", "customizations.xml"} <= set(files)
    types = ET.fromstring(files["[Content_Types].xml"])
    assert {d.get("Extension") for d in types} >= {"xml", "json"}

    manifest = ET.fromstring(files["solution.xml"]).find("SolutionManifest")
    assert manifest.findtext("UniqueName") == "odconnectFlows" and manifest.findtext("Managed") == "0"
    prefix = manifest.findtext("Publisher/CustomizationPrefix")
    assert prefix == "odc" and re.fullmatch(r"\d{5}", manifest.findtext("Publisher/CustomizationOptionValuePrefix"))
    roots = {r.get("id") for r in manifest.find("RootComponents") if r.get("type") == "29"}

    custom = ET.fromstring(files["customizations.xml"])
    workflows = custom.find("Workflows")
    assert len(workflows) == len(EXAMPLES) == len(roots)
    declared = {r.get("connectionreferencelogicalname"): r.findtext("connectorid")
                for r in custom.find("connectionreferences")}
    seen = set()
    for wf in workflows:
        wid = wf.get("WorkflowId")
        assert wid in roots and GUID.match(wid.strip("{}"))
        assert wf.findtext("Category") == "5" and wf.findtext("Type") == "1"  # a modern cloud flow
        path = wf.findtext("JsonFileName").lstrip("/")
        assert path in files and path.endswith(f"-{wid.strip('{}').upper()}.json")
        flow = json.loads(files[path])
        refs = flow["properties"]["connectionReferences"]
        for key, ref in refs.items():
            logical = ref["connection"]["connectionReferenceLogicalName"]
            assert logical.startswith(prefix + "_") and declared[logical] == f"/providers/Microsoft.PowerApps/apis/{key}"
            assert ref["api"]["name"] == key
        for host in hosts(flow["properties"]["definition"]):
            assert host["connectionName"] in refs  # every action's connection is declared
        assert NAME in refs and "shared_odconnect" not in refs
        stem = next(s for s in EXAMPLES if flows.workflow_file(s, wid.strip("{}")) == path)
        assert without_connector(flow, NAME) == json.dumps(EXAMPLES[stem], sort_keys=True)
        seen.add(stem)
    assert seen == set(EXAMPLES)
    assert declared["odc_odconnect"] == f"/providers/Microsoft.PowerApps/apis/{NAME}"
    assert set(declared) == {"odc_odconnect", "odc_teams", "odc_onedrive", "odc_outlook"}


@pytest.mark.parametrize("stem", sorted(EXAMPLES))
def test_each_legacy_package_resolves(stem):
    files = unzip(flows.legacy_zip(stem, EXAMPLES[stem], NAME))
    manifest = json.loads(files["manifest.json"])
    resources = manifest["resources"]
    [root] = [k for k, r in resources.items() if r["type"] == "Microsoft.Flow/flows"]
    assert manifest["schema"] == "1.0" and GUID.match(manifest["details"]["packageTelemetryId"])
    assert json.loads(files["Microsoft.Flow/flows/manifest.json"]) == {"packageSchemaVersion": "1.0",
                                                                       "flowAssets": {"assetPaths": [root]}}
    folder = f"Microsoft.Flow/flows/{root}"
    assert set(files) == {"manifest.json", "Microsoft.Flow/flows/manifest.json", f"{folder}/definition.json",
                          f"{folder}/apisMap.json", f"{folder}/connectionsMap.json"}
    definition = json.loads(files[f"{folder}/definition.json"])
    apis, connections = (json.loads(files[f"{folder}/{n}"]) for n in ("apisMap.json", "connectionsMap.json"))
    refs = definition["properties"]["connectionReferences"]
    assert set(apis) == set(connections) == set(refs) and NAME in refs
    assert set(resources[root]["dependsOn"]) == set(apis.values()) | set(connections.values())
    for key, ref in refs.items():
        api, conn = resources[apis[key]], resources[connections[key]]
        assert api["type"] == "Microsoft.PowerApps/apis" and api["name"] == key
        assert api["id"] == ref["id"] == f"/providers/Microsoft.PowerApps/apis/{key}"
        assert conn["type"] == "Microsoft.PowerApps/apis/connections" and conn["dependsOn"] == [apis[key]]
    props = definition["properties"]
    assert props["apiId"] == "/providers/Microsoft.PowerApps/apis/shared_logicflows"
    assert definition["id"] == f"/providers/Microsoft.Flow/flows/{definition['name']}"
    assert props["displayName"] == resources[root]["details"]["displayName"] == flows.display_name(stem)
    for host in hosts(props["definition"]):
        assert host["connectionName"] in refs
    assert without_connector(props["definition"], NAME) == json.dumps(EXAMPLES[stem]["properties"]["definition"],
                                                                       sort_keys=True)


def test_the_cli_writes_the_same_bytes_each_time_and_checks_the_name(tmp_path, capsys):
    out = tmp_path / "flows"
    assert main(["flows", "export", "--connector-name", NAME, "--out", str(out)]) == 0
    first = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.zip")}
    assert len(first) == 1 + len(EXAMPLES)
    assert main(["flows", "export", "--connector-name", NAME, "--out", str(out)]) == 0
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*.zip")} == first
    other = flows.solution_zip(EXAMPLES, "shared_odconnect-0000")
    assert other != first[Path("odconnect-flows-solution.zip")]  # ids and names follow the connector
    for bad in ("odconnect", "shared_", "shared_Odconnect", "shared_odc onnect", "shared_../x"):
        assert main(["flows", "export", "--connector-name", bad, "--out", str(tmp_path / "x")]) == 2
    assert "custom connector's API name" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
