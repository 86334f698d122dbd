"""`odconnect detect` (many files, concurrent) and `odconnect quick-test` (one picture with boxes).

Detect sends each file as the raw request body to the published version, a bounded pool
of requests at a time, and writes one row per file and label, ready for a spreadsheet:
file, label, count, boxes (JSON: left, top, width, height as fractions, probability) and
error. Every label of the model gets its row, 0 included, so columns add up across files;
a file the server refuses gets one row with the error instead of stopping the run.
"""
from __future__ import annotations

import base64
import contextlib
import io
import json
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..errors import ApiError, LocalError, UsageError
from ..exitcodes import Exit
from ..files import atomic_file, select_images, write_atomic
from ..output import to_json, write_csv
from .base import command, positive_int, seg

COLUMNS = ("file", "label", "count", "boxes", "error")


def _options(args) -> dict:
    params = {"threshold": args.threshold, "maxResults": args.max_results, "labels": args.labels}
    return {k: v for k, v in params.items() if v is not None}


def rows_for(file: str, labels: list[str], result: dict | None, error: str | None = None) -> list[dict]:
    """One file's rows: a row per label (count 0 included), or one row with the error."""
    if result is None:
        return [{"file": file, "label": None, "count": None, "boxes": None, "error": error}]
    boxes: dict[str, list] = {name: [] for name in labels}
    for p in result["predictions"]:
        box = {k: round(v, 4) for k, v in p["boundingBox"].items()}
        boxes.setdefault(p["tagName"], []).append({**box, "probability": round(p["probability"], 4)})
    return [{"file": file, "label": name, "count": len(found), "boxes": found, "error": None}
            for name, found in boxes.items()]


def detect_one(api, model: str, path: Path, params: dict) -> tuple[dict | None, str | None]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, f"cannot read: {exc.strerror}"
    try:
        return api.post(f"/models/{seg(model)}/detect", params=params, content=data,
                        headers={"Content-Type": "application/octet-stream"}), None
    except ApiError as exc:
        if exc.status in (400, 413, 415):  # this file; anything else (auth, no published version) stops all
            return None, exc.message
        raise


class Sink:
    """Where rows go: a CSV or JSON-lines file, CSV or JSON lines on stdout, or a table at the end."""

    def __init__(self, session, args):
        self.out = session.out
        self.kind, self.path = "table", None
        if args.csv and args.output:
            raise UsageError("give --csv FILE or -o FILE, not both")
        if args.csv == "-" and self.out.json:
            raise UsageError("--csv - writes CSV to stdout, where --json promises JSON: "
                             "leave out one of them, or write the CSV to a file")
        if args.csv:
            self.kind, self.path = "csv", args.csv
        elif args.output:
            self.path = args.output
            suffix = Path(args.output).suffix.lower()
            if suffix not in (".csv", ".jsonl", ".ndjson", ".json"):
                raise LocalError(f"{args.output}: write .csv, .jsonl (JSON lines) or .json (one JSON list)")
            self.kind = {".csv": "csv", ".json": "json"}.get(suffix, "jsonl")
        elif self.out.json:
            self.kind = "jsonl"
        self.rows: list[dict] = []

    def add(self, rows: list[dict]) -> None:
        if self.kind == "jsonl" and self.path is None:
            for row in rows:
                self.out.json_line(row)  # streamed: a pipeline sees results as they come
        else:
            self.rows.extend(rows)

    def close(self) -> None:
        self.rows.sort(key=lambda r: (r["file"], r["label"] or ""))
        flat = [{**r, "boxes": None if r["boxes"] is None else json.dumps(r["boxes"])} for r in self.rows]
        if self.kind == "table":
            self.out.table(COLUMNS[:3] + ("best", "error"),
                           [(r["file"], r["label"], r["count"],
                             max((b["probability"] for b in r["boxes"] or []), default=None), r["error"])
                            for r in self.rows])
        elif self.path == "-":
            write_csv(sys.stdout, COLUMNS, flat)
        elif self.path is not None:
            try:
                with atomic_file(Path(self.path)) as fh:
                    text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
                    if self.kind == "csv":
                        write_csv(text, COLUMNS, flat)
                    elif self.kind == "json":
                        text.write(to_json(self.rows) + "\n")
                    else:
                        text.writelines(to_json(r) + "\n" for r in self.rows)
                    text.flush()
                    text.detach()
            except OSError as exc:
                raise LocalError(f"cannot write {self.path}: {exc.strerror or exc}") from exc


def detect(session, args):
    selection = select_images(args.paths)
    if not selection.images:
        raise LocalError("no image file among " + " ".join(args.paths))
    for path, reason in selection.skipped:
        session.out.note(f"skipped {path}: {reason}")
    model = session.api.get(f"/models/{seg(args.model)}")
    labels = [t["name"] for t in model["labels"]]
    if args.labels:
        wanted = [x.strip() for x in args.labels.split(",") if x.strip()]
        labels = [n for n in labels if n in wanted]
    params = _options(args)
    sink = Sink(session, args)
    errors = objects = 0
    progress = session.out.progress()
    with progress, ThreadPoolExecutor(max_workers=args.workers) as pool:
        task = progress.add_task("detecting", total=len(selection.images))
        futures = {pool.submit(detect_one, session.api, args.model, p, params): p for p in selection.images}
        try:
            for future in as_completed(futures):
                result, error = future.result()
                errors += error is not None
                objects += len(result["predictions"]) if result else 0
                sink.add(rows_for(str(futures[future]), labels, result, error))
                progress.advance(task)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    sink.close()
    summary = {"files": len(selection.images), "objects": objects, "errors": errors, "output": sink.path}
    if sink.path not in (None, "-"):
        session.out.result(summary, lambda: session.out.line(
            f"{summary['files']} files, {objects} objects, {errors} errors -> {sink.path}"))
    else:
        session.out.note(f"{summary['files']} files, {objects} objects, {errors} errors")
    return Exit.PARTIAL if errors else Exit.OK


def quick_test(session, args):
    image = Path(args.image).expanduser()
    try:
        data = image.read_bytes()
    except OSError as exc:
        raise LocalError(f"cannot read {image}: {exc.strerror}") from exc
    params = _options(args)
    if args.version:
        params["version"] = args.version
    result = session.api.post(f"/models/{seg(args.model)}/quick-test", params=params, content=data,
                              headers={"Content-Type": "application/octet-stream", "Accept": "application/json"})
    png = base64.b64decode(result.pop("annotatedImage"))
    write_atomic(Path(args.output), png)
    size = None
    with contextlib.suppress(UnidentifiedImageError, OSError):
        size = Image.open(io.BytesIO(png)).size
    data = {**result, "output": args.output}

    def human():
        out = session.out
        out.table(["label", "probability", "left", "top", "width", "height"],
                  [(p["tagName"], p["probability"], *(p["boundingBox"][k] for k in ("left", "top", "width", "height")))
                   for p in result["predictions"]],
                  title=f"version {result.get('version')}: {result.get('totalCount', 0)} objects")
        out.line(f"Wrote {args.output}" + (f" ({size[0]}x{size[1]})" if size else ""))

    session.out.result(data, human)


def _detection_options(p) -> None:
    p.add_argument("--threshold", type=float, help="lowest probability to keep, 0..1 (server default 0.5)")
    p.add_argument("--max-results", type=int, help="at most this many objects per image")
    p.add_argument("--labels", help="only these labels, comma separated")


def register(sub) -> None:
    p = command(sub, "detect", detect, "detect and count objects in files, folders and globs with the published version",
                """
                odconnect detect cutlery photos/ 'more/**/*.jpg' --csv counts.csv
                odconnect detect cutlery photo.jpg --json | jq -r 'select(.count > 0) | [.file, .label, .count] | @tsv'
                """,
                description="Rows: file, label, count, boxes (JSON), error; one per file and label, or one "
                            "error row for a file the server refuses. Output: a table, --csv FILE (- for "
                            "stdout), -o FILE (.csv, .jsonl or .json), or JSON lines on stdout with --json. "
                            "Exit 9 when some files failed.")
    p.add_argument("model", help="model id or name")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders (walked) or globs")
    p.add_argument("--csv", metavar="FILE", help="write CSV to FILE ('-' for stdout)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write rows to FILE: .csv, .jsonl (a JSON object a line) or .json (one JSON list)")
    p.add_argument("--workers", type=positive_int, default=4, help="requests at once (default: %(default)s)")
    _detection_options(p)

    p = command(sub, "quick-test", quick_test, "try a trained version on one picture and save it with its boxes",
                "odconnect quick-test cutlery photo.jpg -o boxes.png --version 3")
    p.add_argument("model", help="model id or name")
    p.add_argument("image", help="the picture")
    p.add_argument("-o", "--output", required=True, metavar="PNG", help="where to write the picture with its boxes")
    p.add_argument("--version", help="version number, published or lastTrained (default: the last trained)")
    _detection_options(p)
