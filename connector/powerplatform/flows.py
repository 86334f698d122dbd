"""Importable packages of the example flows (flows_examples/*.json), made for one custom connector.

Each example is a flow's workflow JSON as a solution holds it (``{"properties": {"connectionReferences":
..., "definition": ...}, "schemaVersion": ...}``) and names the connector ``shared_odconnect``. A custom
connector's API name in an environment has a suffix (``shared_odconnect-5f3c9e...``), so the packages
are made for the name given, in the two forms Power Automate imports:

* a solution (unmanaged) zip, with all the flows: ``[Content_Types].xml``, ``solution.xml`` (the
  manifest: unique name, version, publisher and its prefix, the workflows as root components),
  ``customizations.xml`` (a ``<Workflow>`` per flow naming its JSON file, and a
  ``<connectionreference>`` per connector the flows use) and ``Workflows/<Name>-<GUID>.json`` (each
  flow's workflow JSON). Import: Solutions > Import solution, or ``pac solution import``; the import
  asks for a connection for each connection reference.
* one legacy package zip per flow: ``manifest.json`` (the package and its resources: the flow, each
  API and each connection it needs), ``Microsoft.Flow/flows/manifest.json`` (the flow folders),
  ``Microsoft.Flow/flows/<id>/definition.json`` (the flow: display name, definition, connection
  references), ``apisMap.json`` and ``connectionsMap.json`` (connection reference -> resource id).
  Import: My flows > Import > Import Package (Legacy); the import asks for a connection per resource.

The layout follows published exports of both kinds (the file names, element and key names are
theirs; nothing of their content is copied). Ids are derived from the connector name and the file
name (uuid5), so the same inputs give the same bytes.
"""
from __future__ import annotations

import copy
import io
import json
import re
import uuid
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

from model_store import atomic_write

DEFAULT_CONNECTOR = "shared_odconnect"
CONNECTOR_NAME = re.compile(r"^shared_[a-z0-9][a-z0-9_.-]{0,127}$")
NAMESPACE = uuid.UUID("8e6b2c1a-4f0d-5a7e-9b3c-0d1e2f3a4b5c")  # odconnect's namespace for the derived ids
SOLUTION = "odconnectFlows"
PUBLISHER, PREFIX, OPTION_PREFIX = "odconnect", "odc", "72630"
STAMP = (2024, 1, 1, 0, 0, 0)
API_ID = "/providers/Microsoft.PowerApps/apis/"
DISPLAY = {"shared_onedriveforbusiness": "OneDrive for Business", "shared_teams": "Microsoft Teams",
           "shared_office365": "Office 365 Outlook", DEFAULT_CONNECTOR: "odconnect"}


class FlowPackageError(ValueError):
    pass


def check_connector_name(name: str) -> str:
    if not CONNECTOR_NAME.match(name or ""):
        raise FlowPackageError(f"connector name {name!r}: use the custom connector's API name, like "
                               "shared_odconnect-5f3c9e8d4b2a1c0d9e (pac connector list, or the connector's URL)")
    return name


def _title(api: str, connector: str) -> str:
    return DISPLAY[DEFAULT_CONNECTOR] if api == connector else DISPLAY.get(api, api)


def _id(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


def display_name(stem: str) -> str:
    """a-detect-new-file-post-counts -> odconnect: detect new file post counts."""
    words = stem.split("-")
    if len(words[0]) == 1:  # the a-, b-, ... ordering prefix
        words = words[1:]
    return "odconnect: " + " ".join(words)


def renamed(flow: dict, connector: str) -> dict:
    """The flow with `shared_odconnect` replaced by the connector's API name, wherever it names the API."""
    flow = copy.deepcopy(flow)
    refs = flow["properties"]["connectionReferences"]
    if DEFAULT_CONNECTOR in refs:
        ref = refs.pop(DEFAULT_CONNECTOR)
        ref["api"]["name"] = connector
        refs[connector] = ref

    def walk(node):
        if isinstance(node, dict):
            host = node.get("host")
            if isinstance(host, dict) and host.get("connectionName") == DEFAULT_CONNECTOR:
                host["connectionName"] = connector
                host["apiId"] = API_ID + connector
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(flow["properties"]["definition"])
    return flow


def load_examples(folder: str | Path) -> dict[str, dict]:
    files = sorted(Path(folder).glob("*.json"))
    if not files:
        raise FlowPackageError(f"no flow examples (*.json) in {folder}")
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in files}


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name, date_time=STAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return buf.getvalue()


def _xml(root: ET.Element) -> bytes:
    ET.indent(root)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


# --- the solution -------------------------------------------------------------------------------------

def workflow_file(stem: str, workflow_id: str) -> str:
    return f"Workflows/{re.sub(r'[^A-Za-z0-9]', '', stem.title())}-{workflow_id.upper()}.json"


def solution_zip(flows: dict[str, dict], connector: str) -> bytes:
    check_connector_name(connector)
    entries: dict[str, bytes] = {}
    workflows, references = [], {}
    for stem, flow in flows.items():
        flow = renamed(flow, connector)
        wid = _id(connector, "workflow", stem)
        path = workflow_file(stem, wid)
        entries[path] = (json.dumps(flow, indent=2, ensure_ascii=False) + "\n").encode()
        workflows.append((wid, display_name(stem), path))
        for key, ref in flow["properties"]["connectionReferences"].items():
            logical = ref["connection"]["connectionReferenceLogicalName"]
            references[logical] = ref["api"]["name"]

    types = ET.Element("Types", xmlns="http://schemas.openxmlformats.org/package/2006/content-types")
    for ext in ("xml", "json"):
        _sub(types, "Default", Extension=ext, ContentType="application/octet-stream")

    manifest_root = ET.Element("ImportExportXml", {"version": "9.2.0.0", "SolutionPackageVersion": "9.2",
                                                   "languagecode": "1033", "generatedBy": "CrmLive",
                                                   "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance"})
    manifest = _sub(manifest_root, "SolutionManifest")
    _sub(manifest, "UniqueName", SOLUTION)
    _sub(_sub(manifest, "LocalizedNames"), "LocalizedName", description="odconnect example flows", languagecode="1033")
    _sub(manifest, "Descriptions")
    _sub(manifest, "Version", "1.0.0.0")
    _sub(manifest, "Managed", "0")
    publisher = _sub(manifest, "Publisher")
    _sub(publisher, "UniqueName", PUBLISHER)
    _sub(_sub(publisher, "LocalizedNames"), "LocalizedName", description="odconnect", languagecode="1033")
    _sub(publisher, "Descriptions")
    _sub(publisher, "CustomizationPrefix", PREFIX)
    _sub(publisher, "CustomizationOptionValuePrefix", OPTION_PREFIX)
    roots = _sub(manifest, "RootComponents")
    for wid, _, _ in workflows:
        _sub(roots, "RootComponent", type="29", id="{" + wid + "}", behavior="0")  # 29: a process (flow)
    _sub(manifest, "MissingDependencies")

    custom = ET.Element("ImportExportXml", {"xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance"})
    for tag in ("Entities", "Roles"):
        _sub(custom, tag)
    wf_root = _sub(custom, "Workflows")
    for wid, name, path in workflows:
        wf = _sub(wf_root, "Workflow", WorkflowId="{" + wid + "}", Name=name)
        _sub(wf, "JsonFileName", "/" + path)
        # a modern cloud flow (Category 5), imported turned off: it runs once its connections are set
        for tag, value in (("Type", "1"), ("Subprocess", "0"), ("Category", "5"), ("Mode", "0"), ("Scope", "4"),
                           ("OnDemand", "0"), ("TriggerOnCreate", "0"), ("TriggerOnDelete", "0"),
                           ("AsyncAutodelete", "0"), ("SyncWorkflowLogOnFailure", "0"), ("StateCode", "0"),
                           ("StatusCode", "1"), ("RunAs", "1"), ("IsTransacted", "1"), ("IntroducedVersion", "1.0"),
                           ("IsCustomizable", "1"), ("BusinessProcessType", "0"),
                           ("IsCustomProcessingStepAllowedForOtherPublishers", "1"), ("PrimaryEntity", "none")):
            _sub(wf, tag, value)
        _sub(_sub(wf, "LocalizedNames"), "LocalizedName", languagecode="1033", description=name)
    for tag in ("FieldSecurityProfiles", "Templates", "EntityMaps", "EntityRelationships", "OrganizationSettings",
                "optionsets", "CustomControls", "EntityDataProviders"):
        _sub(custom, tag)
    refs = _sub(custom, "connectionreferences")
    for logical, api in sorted(references.items()):
        ref = _sub(refs, "connectionreference", connectionreferencelogicalname=logical)
        _sub(ref, "connectionreferencedisplayname", f"{_title(api, connector)} (odconnect flows)")
        _sub(ref, "connectorid", API_ID + api)
        _sub(ref, "iscustomizable", "1")
        _sub(ref, "statecode", "0")
        _sub(ref, "statuscode", "1")
    _sub(_sub(custom, "Languages"), "Language", "1033")

    files = {"[Content_Types].xml": _xml(types), "solution.xml": _xml(manifest_root),
             "customizations.xml": _xml(custom), **entries}
    return _zip(files)


# --- the legacy package -------------------------------------------------------------------------------

def legacy_zip(stem: str, flow: dict, connector: str) -> bytes:
    check_connector_name(connector)
    flow = renamed(flow, connector)
    name = display_name(stem)
    res = _id(connector, "legacy", stem)  # the flow's resource id (and its folder)
    flow_id = _id(connector, "legacy-flow", stem)
    resources, apis_map, connections_map, depends = {}, {}, {}, []
    references = {}
    for key, ref in flow["properties"]["connectionReferences"].items():
        api = ref["api"]["name"]
        api_res, conn_res = _id(connector, stem, "api", api), _id(connector, stem, "connection", api)
        title = _title(api, connector)
        resources[api_res] = {"id": API_ID + api, "name": api, "type": "Microsoft.PowerApps/apis",
                              "suggestedCreationType": "Existing", "details": {"displayName": title},
                              "configurableBy": "System", "hierarchy": "Child", "dependsOn": []}
        resources[conn_res] = {"type": "Microsoft.PowerApps/apis/connections", "suggestedCreationType": "Existing",
                               "creationType": "Existing", "details": {"displayName": title},
                               "configurableBy": "User", "hierarchy": "Child", "dependsOn": [api_res]}
        apis_map[key], connections_map[key] = api_res, conn_res
        depends += [api_res, conn_res]
        source = "Invoker" if ref.get("runtimeSource", "embedded").lower() == "invoker" else "Embedded"
        references[key] = {"connectionName": key, "source": source, "id": API_ID + api, "tier": "NotSpecified"}
    resources = {res: {"type": "Microsoft.Flow/flows", "suggestedCreationType": "New",
                       "creationType": "Existing, New, Update", "details": {"displayName": name},
                       "configurableBy": "User", "hierarchy": "Root", "dependsOn": depends}, **resources}
    manifest = {"schema": "1.0",
                "details": {"displayName": name, "description": f"An odconnect example flow ({stem}).",
                            "createdTime": "2024-01-01T00:00:00.0000000Z",
                            "packageTelemetryId": _id(connector, "telemetry", stem),
                            "creator": "odconnect", "sourceEnvironment": ""},
                "resources": resources}
    definition = {"name": flow_id, "id": "/providers/Microsoft.Flow/flows/" + flow_id, "type": "Microsoft.Flow/flows",
                  "properties": {"apiId": API_ID + "shared_logicflows", "displayName": name,
                                 "definition": flow["properties"]["definition"], "connectionReferences": references,
                                 "flowFailureAlertSubscribed": False}}
    folder = f"Microsoft.Flow/flows/{res}"

    def dump(value) -> bytes:
        return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode()

    return _zip({"manifest.json": dump(manifest),
                 "Microsoft.Flow/flows/manifest.json": dump({"packageSchemaVersion": "1.0",
                                                             "flowAssets": {"assetPaths": [res]}}),
                 f"{folder}/definition.json": dump(definition),
                 f"{folder}/apisMap.json": dump(apis_map),
                 f"{folder}/connectionsMap.json": dump(connections_map)})


def export(examples: str | Path, connector: str, out: str | Path) -> list[Path]:
    """Write the solution and one legacy package per flow under `out`; returns the files written."""
    flows = load_examples(examples)
    check_connector_name(connector)
    out = Path(out)
    written = [out / "odconnect-flows-solution.zip"]
    atomic_write(written[0], solution_zip(flows, connector))
    for stem, flow in flows.items():
        path = out / "legacy" / f"{stem}.zip"
        atomic_write(path, legacy_zip(stem, flow, connector))
        written.append(path)
    return written
