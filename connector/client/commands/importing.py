"""`odconnect import`: a folder of images, one picture, a COCO zip, or any format the server imports.

A folder goes up in parallel batches (see upload.py) under one progress bar; a zip (or a
folder zipped for another format) goes up as is to ``POST .../import/{format}``. Either way the answer is a summary: images
added, duplicates, boxes per label, and every file or box skipped with the reason.
"""
from __future__ import annotations

import contextlib
import mimetypes
import os
import re
import tempfile
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from ..errors import ApiError, ClientError, Interrupted, LocalError
from ..files import is_image_name, walk
from ..upload import Batch, Plan, find_annotations, plan_folder
from .base import command, positive_int, seg

MAX_BATCH_BYTES = 32 * 1024 * 1024


class Summary:
    """What the server did with everything sent, added up over the batches."""

    def __init__(self, skipped: list[dict] | None = None):
        self.images = 0
        self.duplicates = 0
        self.boxes: Counter = Counter()
        self.labels_added: list[str] = []
        self.skipped: list[dict] = list(skipped or [])

    def add_upload(self, report: dict, names: list[str]) -> None:
        """An image upload report: one result per file, in the order sent."""
        for name, r in zip(names, report["results"]):
            if r["status"] == "created":
                self.images += 1
            elif r["status"] == "duplicate":
                self.duplicates += 1
                self.skipped.append({"item": name, "reason": f"already in the dataset as image {r.get('imageId')}"})
            else:
                self.skipped.append({"item": name, "reason": r.get("reason", "rejected")})

    def add_import(self, report: dict) -> None:
        """A COCO (or other format) import report."""
        self.images += report.get("images", 0)
        self.duplicates += report.get("duplicates", 0)
        self.boxes.update(report.get("boxesPerLabel", {}))
        self.labels_added += [n for n in report.get("labelsAdded", []) if n not in self.labels_added]
        self.skipped += report.get("skipped", [])

    def view(self) -> dict:
        return {"images": self.images, "duplicates": self.duplicates, "boxes": sum(self.boxes.values()),
                "boxesPerLabel": dict(self.boxes), "labelsAdded": self.labels_added, "skipped": self.skipped}


def _upload_report(api, path: str, batch: Batch) -> dict:
    with contextlib.ExitStack() as stack:
        files = []
        for name, local in zip(batch.names, batch.files):
            try:
                fh = stack.enter_context(open(local, "rb"))
            except OSError as exc:
                raise LocalError(f"cannot read {local}: {exc.strerror}") from exc
            files.append(("files", (name, fh, mimetypes.guess_type(name)[0] or "application/octet-stream")))
        try:
            return api.post(path, files=files)
        except ApiError as exc:
            # every file of the batch refused: the problem lists each one's reason
            if exc.status == 400 and isinstance(exc.problem.get("results"), list):
                return {"results": exc.problem["results"]}
            raise


def send_batch(api, model: str, dataset: int, batch: Batch, add_labels: bool) -> tuple[str, dict]:
    """One request; returns ("upload", report) or ("import", report)."""
    base = f"/models/{seg(model)}/datasets/{dataset}"
    if batch.coco is None:
        return "upload", _upload_report(api, f"{base}/images/files", batch)
    try:
        zipped = batch.zip_bytes()
    except OSError as exc:
        raise LocalError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    return "import", api.post(f"{base}/import/coco", data={"addLabels": str(add_labels).lower()},
                              files={"images": ("batch.zip", zipped, "application/zip"),
                                     "annotations": ("annotations.json", batch.coco_bytes(), "application/json")})


def add_missing_labels(session, model: str, categories: list[str]) -> list[str]:
    """Add the COCO categories the model lacks once, before parallel batches could race to."""
    have = {t["name"] for t in session.api.get(f"/models/{seg(model)}")["labels"]}
    missing = [c for c in categories if c not in have]
    if missing:
        session.api.post(f"/models/{seg(model)}/labels", json={"names": missing})
    return missing


def import_folder(session, args, folder: Path, dataset: int) -> Summary:
    annotations = find_annotations(folder, Path(args.annotations) if args.annotations else None)
    plan = plan_folder(folder, annotations, args.batch_size, MAX_BATCH_BYTES)
    labels_added = []
    if annotations is not None:
        session.out.note(f"boxes from {annotations.name}")
        if not args.no_add_labels:
            labels_added = add_missing_labels(session, args.model, plan.categories)
    if not plan.batches:
        raise LocalError(f"{folder}: no image file to upload" +
                         (f" ({len(plan.skipped)} skipped: {plan.skipped[0]['reason']}, ...)" if plan.skipped else ""))
    summary = send(session, args, plan, dataset)
    summary.labels_added[:0] = labels_added
    return summary


def send(session, args, plan: Plan, dataset: int) -> Summary:
    """The plan's batches, a few requests at a time, under one progress bar."""
    summary = Summary(plan.skipped)
    progress = session.out.progress()
    add_labels = not args.no_add_labels
    with progress, ThreadPoolExecutor(max_workers=args.workers) as pool:
        task = progress.add_task("uploading", total=plan.files)
        futures = {pool.submit(send_batch, session.api, args.model, dataset, b, add_labels): b
                   for b in plan.batches}
        try:
            for future in as_completed(futures):  # the reports are added up here, on one thread
                batch = futures[future]
                kind, report = future.result()
                if kind == "upload":
                    summary.add_upload(report, batch.names)
                else:
                    summary.add_import(report)
                progress.advance(task, len(batch.files))
        except BaseException as exc:
            for f in futures:
                f.cancel()  # requests already on the wire finish; the rest are not sent
            again = (f" (after {summary.images} images were added; running the import again "
                     "adds only what is new)")
            if isinstance(exc, KeyboardInterrupt):
                raise Interrupted("interrupted" + again) from exc
            if isinstance(exc, ClientError):
                exc.message += again
            raise
    return summary


def import_file(session, args, path: Path, dataset: int) -> Summary:
    """A zip (or another file the server's importer reads) sent as is, with an upload bar."""
    fmt = args.format or ("coco" if path.suffix.lower() == ".zip" else None)
    if fmt is None:
        raise LocalError(f"{path}: say which format it is with --format (coco, voc, yolo, ...)")
    files = {}
    try:
        if args.annotations:
            files["annotations"] = (Path(args.annotations).name, Path(args.annotations).read_bytes(),
                                    "application/json")
        fh = open(path, "rb")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise LocalError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    progress = session.out.progress(unit_total=False)
    try:
        with progress:
            task = progress.add_task(f"sending {path.name}", total=path.stat().st_size)
            files["images"] = (path.name, _Counting(fh, lambda n: progress.advance(task, n)), "application/zip")
            report = session.api.post(f"/models/{seg(args.model)}/datasets/{dataset}/import/{seg(fmt)}",
                                      data={"addLabels": str(not args.no_add_labels).lower()}, files=files)
    except ApiError as exc:
        offered = offered_formats(session.api) if exc.status == 404 else []
        if offered and fmt not in offered:
            exc.message += f" (this server has no {fmt!r} importer; it imports: {', '.join(offered)})"
        raise
    finally:
        fh.close()
    summary = Summary()
    summary.add_import(report)
    return summary


IMPORT_PATH = re.compile(r"^/models/\{modelId\}/datasets/\{datasetId\}/import/([^/]+)$")


def offered_formats(api) -> list[str]:
    """The importers the server's own spec lists (served without a key at /openapi.json):
    every multipart POST under .../import/, and the enum of a ``{format}`` path parameter."""
    try:
        spec = api.get("/openapi.json")
    except ClientError:
        return []
    params = (spec.get("components") or {}).get("parameters") or {}
    names: list[str] = []
    for path, item in (spec.get("paths") or {}).items():
        found = IMPORT_PATH.match(path)
        post = (item or {}).get("post") or {}
        if not found or "multipart/form-data" not in ((post.get("requestBody") or {}).get("content") or {}):
            continue
        name = found.group(1)
        if not name.startswith("{"):
            names.append(name)
            continue
        for p in (item.get("parameters") or []) + (post.get("parameters") or []):
            if "$ref" in p:
                p = params.get(p["$ref"].rsplit("/", 1)[-1], {})
            if p.get("name") == name.strip("{}"):
                names += (p.get("schema") or {}).get("enum") or []
    return sorted(set(names))


def zip_folder(folder: Path) -> Path:
    """A folder in another format (YOLO, VOC...) zipped into a temporary file for the server."""
    fd, tmp = tempfile.mkstemp(suffix=".zip", prefix="odconnect-import-")
    os.close(fd)
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in walk(folder):
            zf.write(p, p.relative_to(folder).as_posix())
    return Path(tmp)


class _Counting:
    """A file that reports how many bytes have been read from it (httpx reads uploads in chunks)."""

    def __init__(self, fh, on_read):
        self.fh, self.on_read = fh, on_read

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.on_read(len(data))
        return data

    def __getattr__(self, name):  # seek, tell, fileno for httpx's length check
        return getattr(self.fh, name)


def import_command(session, args):
    path = Path(args.path).expanduser()
    if not path.exists():
        raise LocalError(f"{path}: no such file or folder")
    dataset = session.training_dataset(args.model, args.dataset)
    if path.is_dir() and args.format in (None, "coco"):
        summary = import_folder(session, args, path, dataset)
    elif path.is_file() and args.format is None and is_image_name(path):
        summary = send(session, args, Plan(batches=[Batch([path], [path.name], nbytes=path.stat().st_size)]), dataset)
    elif path.is_dir():
        zipped = zip_folder(path)
        try:
            summary = import_file(session, args, zipped, dataset)
        finally:
            zipped.unlink()
    else:
        summary = import_file(session, args, path, dataset)
    data = {"model": args.model, "datasetId": dataset, **summary.view()}
    session.out.result(data, lambda: show_summary(session.out, data))


def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def show_summary(out, data: dict, limit: int = 50) -> None:
    out.line(f"Added {plural(data['images'], 'image')} ({data['duplicates']} already there) "
             f"with {plural(data['boxes'], 'box', 'boxes')} to dataset {data['datasetId']} of {data['model']!r}.")
    if data["boxesPerLabel"]:
        out.line("Boxes per label: " + ", ".join(f"{k} {v}" for k, v in sorted(data["boxesPerLabel"].items())))
    if data["labelsAdded"]:
        out.line("Labels added: " + ", ".join(data["labelsAdded"]))
    skipped = data["skipped"]
    if skipped:
        more = f"; {len(skipped) - limit} more with --json" if len(skipped) > limit else ""
        out.table(["skipped", "reason"], [(s["item"], s["reason"]) for s in skipped[:limit]],
                  caption=f"{len(skipped)} skipped{more}")


def register(sub) -> None:
    p = command(sub, "import", import_command, "add images to a model: a folder of pictures, a COCO zip, "
                "or another format the server imports",
                """
                odconnect import cutlery ./photos                 # pictures (+ a COCO .json inside: its boxes)
                odconnect import cutlery dataset.zip              # a COCO zip
                odconnect import cutlery labels.zip --format yolo # any format the server imports
                """,
                description="A folder is uploaded in parallel batches with a progress bar; when it holds a "
                            "COCO .json (or --annotations names one) the boxes come too. A file is sent to "
                            "the server's importer for --format (coco for a .zip). Files the server refuses "
                            "are listed with why; running an import again only adds what is new.")
    p.add_argument("model", help="model id or name")
    p.add_argument("path", help="a folder of images, a picture, or a file to import (a zip)")
    p.add_argument("--format", help="the server's importer to use: coco, voc, yolo, labelstudio, customvision... "
                                    "(default: coco for a zip; a folder is uploaded as pictures)")
    p.add_argument("--annotations", metavar="FILE", help="the COCO annotations file, when it is not the one "
                                                         ".json in the folder or not inside the zip")
    p.add_argument("--dataset", type=int, help="dataset id (default: the model's first training dataset)")
    p.add_argument("--no-add-labels", action="store_true", help="refuse categories that are not labels yet "
                                                                "(default: add them)")
    p.add_argument("--workers", type=positive_int, default=4, help="requests at once (default: %(default)s)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="files per request (default: %(default)s)")
