"""`odconnect versions list|archive`, `publish`, `unpublish`, `rollback` and `export`.

Rollback publishes the newest version older than the one published now (or `--to N`).
The server keeps no publish history, only the current pointer, and versions are numbered
in training order, so "the one before" is the newest earlier version that is not archived;
an earlier version that should not come back can be archived, and rollback skips it.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..errors import ClientError, LocalError
from ..output import clock, when
from .base import command, seg


def _flags(v: dict) -> str:
    return ", ".join(f for f, on in (("published", v.get("published")), ("last trained", v.get("lastTrained")),
                                     ("archived", v.get("archived"))) if on)


def versions_list(session, args):
    versions = session.api.get(f"/models/{seg(args.model)}/versions",
                               params={"includeArchived": str(args.archived).lower()})
    session.out.result(versions, lambda: session.out.table(
        ["version", "score", "preset", "iter.", "images", "took", "created (UTC)", ""],
        [(v["number"], v.get("performanceScore"), (v.get("settings") or {}).get("preset"), v.get("iterations"),
          v.get("imageCount"), clock(v.get("durationSeconds")), when(v["created"]), _flags(v)) for v in versions]))


def publish_version(session, model: str, version: str) -> dict:
    result = session.api.post(f"/models/{seg(model)}/versions/{seg(version)}/publish")
    previous = result.get("previousVersionId")
    result["previousVersion"] = session.version_numbers(model).get(previous) if previous else None
    return result


def _published_line(model: str, result: dict) -> str:
    was = result["previousVersion"]
    return (f"Published version {result['published']} of {model!r}"
            + (f" (was version {was})." if was else " (nothing was published before)."))


def publish(session, args):
    result = publish_version(session, args.model, args.version)
    session.out.result(result, lambda: session.out.line(_published_line(args.model, result)))


def versions_archive(session, args):
    version = session.api.delete(f"/models/{seg(args.model)}/versions/{seg(args.version)}")
    session.out.result(version, lambda: session.out.line(
        f"Archived version {version['number']} of {args.model!r}; rollback skips it from now on"))


def unpublish(session, args):
    result = session.api.post(f"/models/{seg(args.model)}/unpublish")
    previous = result.get("previousVersionId")
    result["previousVersion"] = session.version_numbers(args.model).get(previous) if previous else None
    session.out.result(result, lambda: session.out.line(
        f"Nothing of {args.model!r} is published now" +
        (f" (was version {result['previousVersion']}); " if result["previousVersion"] else "; ") +
        "detect answers 409 until a version is published"))


def rollback_target(versions: list[dict], to: int | None) -> tuple[dict, dict]:
    """(the version published now, the one to publish instead)."""
    current = next((v for v in versions if v.get("published")), None)
    if current is None:
        raise ClientError("no version is published, so there is nothing to roll back; use `odconnect publish`")
    if to is not None:
        target = next((v for v in versions if v["number"] == to), None)
        if target is None:
            raise ClientError(f"version {to} does not exist or is archived")
        return current, target
    earlier = [v for v in versions if v["number"] < current["number"]]
    if not earlier:
        raise ClientError(f"version {current['number']} is the oldest version that is not archived; "
                          "there is nothing to roll back to")
    return current, max(earlier, key=lambda v: v["number"])


def rollback(session, args):
    versions = session.api.get(f"/models/{seg(args.model)}/versions")
    current, target = rollback_target(versions, args.to)
    if target["id"] == current["id"]:
        raise ClientError(f"version {target['number']} is already published")
    result = publish_version(session, args.model, str(target["number"]))
    session.out.result(result, lambda: session.out.line(_published_line(args.model, result)))


def _filename(response, fallback: str) -> str:
    found = re.search(r'filename="?([^";]+)"?', response.headers.get("Content-Disposition", ""))
    name = Path(found.group(1)).name if found else ""
    return name or fallback


def export(session, args):
    params = {"format": args.format} if args.format else None
    fallback = f"{args.model}-{args.version}.zip"
    progress = session.out.progress(unit_total=False)

    def choose(response):
        if args.output:
            return Path(args.output).expanduser()
        return Path(_filename(response, fallback))

    task = None

    def advance(done: int, total: int | None) -> None:
        progress.update(task, completed=done, total=total)

    with progress:
        task = progress.add_task("downloading", total=None)
        try:
            dest, response = session.api.download(
                f"/models/{seg(args.model)}/versions/{seg(args.version)}/export", choose, advance, params=params)
        except OSError as exc:
            raise LocalError(f"cannot write {exc.filename or args.output}: {exc.strerror or exc}") from exc
    data = {"file": str(dest), "bytes": dest.stat().st_size, "format": args.format or "detectron2"}
    session.out.result(data, lambda: session.out.line(f"Wrote {dest} ({data['bytes']} bytes)"))


def register(sub) -> None:
    group = command(sub, "versions", None, "list and archive a model's versions", "odconnect versions list cutlery")
    versions = group.add_subparsers(dest="action", required=True, metavar="{list,archive}")
    p = command(versions, "list", versions_list, "list a model's versions with their scores",
                "odconnect versions list cutlery --json | jq '.[] | {number, performanceScore}'")
    p.add_argument("model", help="model id or name")
    p.add_argument("--archived", action="store_true", help="include archived versions")
    p = command(versions, "archive", versions_archive, "archive a version that is not published: "
                "rollback skips it, its files are kept", "odconnect versions archive cutlery 2")
    p.add_argument("model", help="model id or name")
    p.add_argument("version", help="version number, or lastTrained")

    p = command(sub, "unpublish", unpublish, "stop serving a model: detect answers 409 until a version is published",
                "odconnect unpublish cutlery")
    p.add_argument("model", help="model id or name")

    p = command(sub, "publish", publish, "publish a version: detect calls use it from now on",
                "odconnect publish cutlery 3        # or: lastTrained")
    p.add_argument("model", help="model id or name")
    p.add_argument("version", help="version number, or lastTrained")

    p = command(sub, "rollback", rollback, "publish the version before the published one",
                "odconnect rollback cutlery          # or: --to 1",
                description="Publishes the newest non-archived version older than the published one, or "
                            "the one --to names. The server keeps no publish history: archive a version "
                            "that must not come back and rollback skips it.")
    p.add_argument("model", help="model id or name")
    p.add_argument("--to", type=int, metavar="N", help="publish version N instead")

    p = command(sub, "export", export, "download a version's config and weights as a zip",
                "odconnect export cutlery 3 --format torchscript -o cutlery-v3.zip")
    p.add_argument("model", help="model id or name")
    p.add_argument("version", nargs="?", default="published",
                   help="version number, published or lastTrained (default: %(default)s)")
    p.add_argument("--format", help="detectron2 (config + weights, the default), torchscript (adds model.ts) or "
                                    "onnx (adds model.onnx); the server says which formats it offers")
    p.add_argument("-o", "--output", metavar="FILE", help="zip to write (default: the server's file name)")
