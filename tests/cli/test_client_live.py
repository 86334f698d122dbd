"""The command-line client against a live server: the whole lifecycle, then its failures.

Everything is real: `odconnect serve` in its own process, the client in a process per
command, a folder of drawn pictures (with a COCO file, pictures it does not list, and
files the server must refuse), a tiny Detectron2 run, publish, detect and quick-test.
"""
from __future__ import annotations

import csv
import io
import json
import signal
import stat
import time
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from connector.client.commands.train import POLL_SECONDS
from tests.cli.conftest import KEY, free_port
from tests.training_data import LABELS, shapes_image

pytestmark = pytest.mark.slow


def draw_folder(folder: Path) -> dict:
    """10 pictures with boxes in coco.json (2 of them in a subfolder), 1 it does not list, a listed
    file that is missing and 3 files to refuse; returns what was drawn."""
    (folder / "more").mkdir(parents=True)
    cats = {name: i + 1 for i, name in enumerate(LABELS)}
    coco = {"images": [], "annotations": [], "categories": [{"id": i, "name": n} for n, i in cats.items()]}
    boxes = Counter()
    for seed in range(10):
        data, regions = shapes_image(seed)
        name = f"more/shape-{seed}.jpg" if seed >= 8 else f"shape-{seed}.jpg"
        (folder / name).write_bytes(data)
        coco["images"].append({"id": seed + 1, "file_name": name, "width": 256, "height": 256})
        for r in regions:
            boxes[r["labelName"]] += 1
            coco["annotations"].append({
                "id": len(coco["annotations"]) + 1, "image_id": seed + 1, "category_id": cats[r["labelName"]],
                "bbox": [r["left"] * 256, r["top"] * 256, r["width"] * 256, r["height"] * 256],
                "area": r["width"] * r["height"] * 256 * 256, "iscrowd": 0})
    coco["images"].append({"id": 99, "file_name": "gone.jpg", "width": 256, "height": 256})
    (folder / "coco.json").write_text(json.dumps(coco))
    (folder / "extra-10.jpg").write_bytes(shapes_image(10)[0])
    (folder / "notes.txt").write_text("not a picture")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 this is not really a jpeg")
    buf = io.BytesIO()
    Image.new("RGB", (24, 24), (9, 9, 9)).save(buf, "PNG")  # under limits.min_side (32 px)
    (folder / "tiny.png").write_bytes(buf.getvalue())
    return {"images": 11, "boxes": dict(boxes), "refused": {"notes.txt", "broken.jpg", "tiny.png", "gone.jpg"}}


def training_run(http, model: str, timeout: float = 60) -> int:
    """The id of the model's run once one is training."""
    deadline = time.time() + timeout
    while True:
        running = [r["id"] for r in http.get(f"/models/{model}/runs").json() if r["status"] == "training"]
        if running:
            return running[0]
        assert time.time() < deadline, "no run started training"
        time.sleep(0.2)


def test_lifecycle_from_login_to_detect(server, cli, tmp_path):
    http = server.http()
    # login: a wrong key is refused with the server's message and saves nothing
    r = cli("login", "--url", server.url, "--key-stdin", input="not-the-key\n")
    assert r.code == 3 and "401" in r.stderr, r
    config_file = cli.config_home / "odconnect" / "client.json"
    assert not config_file.exists()
    login = cli.ok_json("login", "--url", server.url, "--key-stdin", input=KEY + "\n")
    assert login["url"] == server.url + "/api/v1" and login["server"]["odconnect"]
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    assert json.loads(config_file.read_text()) == {"url": server.url + "/api/v1", "key": KEY}

    model = cli.ok_json("models", "create", "shapes", "square", "--description", "drawn shapes")
    assert [t["name"] for t in model["labels"]] == ["square"]

    # import a folder in parallel batches of 3: boxes from coco.json, the rest refused with reasons
    drawn = draw_folder(tmp_path / "photos")
    report = cli.ok_json("import", "shapes", tmp_path / "photos", "--batch-size", "3", "--workers", "3")
    assert report["images"] == drawn["images"] and report["duplicates"] == 0
    assert report["boxesPerLabel"] == drawn["boxes"] and report["labelsAdded"] == ["circle"]
    reasons = {Path(s["item"]).name: s["reason"] for s in report["skipped"]}
    assert set(reasons) == drawn["refused"], reasons
    assert reasons["notes.txt"] == "not an image file name"
    assert "not a recognised image" in reasons["broken.jpg"]
    assert "under the minimum" in reasons["tiny.png"]
    assert "not in the folder" in reasons["gone.jpg"]
    # running it again adds nothing: everything is a duplicate
    again = cli("import", "shapes", tmp_path / "photos")
    assert again.code == 0 and f"Added 0 images ({drawn['images']} already there)" in again.stdout, again

    check = cli.ok_json("data-check", "shapes")
    assert check["canTrain"] and check["images"] == drawn["images"]
    assert {t["name"]: t["boxes"] for t in check["labels"]} == drawn["boxes"]
    assert http.get("/models/shapes/data-check").json() == check

    # a tiny run, followed to its end
    trained = cli("train", "shapes", "--max-iterations", "2", "--seed", "1", "--wait", "--json")
    assert trained.code == 0, trained.stderr
    result = trained.json()
    assert result["run"]["status"] == "succeeded" and result["version"]["number"] == 1
    assert set(result["version"]["metrics"]["perLabel"]) == set(LABELS)
    assert "iter 2/2" in trained.stderr  # the progress bar went to stderr
    shown = cli("runs", "show", "shapes", str(result["run"]["id"]), "--wait")
    assert shown.code == 0 and "Version 1: performance score" in shown.stdout and "AP50" in shown.stdout

    published = cli.ok_json("publish", "shapes", "1")
    assert published["published"] == 1 and published["previousVersion"] is None

    # detect the folder to CSV: every picture gets a row per label, a refused file an error row
    r = cli("detect", "shapes", tmp_path / "photos", "--csv", tmp_path / "counts.csv", "--threshold", "0", "--json")
    assert r.code == 9, r.stderr  # some files failed
    summary = r.json()
    assert summary["files"] == 13 and summary["errors"] == 1 and summary["output"] == str(tmp_path / "counts.csv")
    rows = list(csv.DictReader((tmp_path / "counts.csv").open(newline="")))
    assert list(rows[0]) == ["file", "label", "count", "boxes", "error"]
    by_file: dict[str, dict] = {}
    for row in rows:
        by_file.setdefault(Path(row["file"]).name, {})[row["label"]] = row
    assert set(by_file) == {f"shape-{s}.jpg" for s in range(10)} | {"extra-10.jpg", "broken.jpg", "tiny.png"}
    assert "not a recognised image" in by_file["broken.jpg"][""]["error"]  # detect takes small pictures
    # the server's own answer for the same files, in one batch request
    paths = sorted(p for p in (tmp_path / "photos").rglob("*") if p.suffix in (".jpg", ".png") and p.name != "broken.jpg")
    answer = http.post("/models/shapes/detect/batch", params={"threshold": 0},
                       files=[("files", (p.name, p.read_bytes())) for p in paths]).json()
    objects = 0
    for path, item in zip(paths, answer["results"]):
        mine = by_file[path.name]
        assert set(mine) == set(LABELS) and all(row["error"] == "" for row in mine.values())
        server_counts = Counter(p["tagName"] for p in item["result"]["predictions"])
        for label, row in mine.items():
            boxes = json.loads(row["boxes"])
            assert int(row["count"]) == len(boxes) == server_counts[label], (path.name, label)
            assert all(0 <= b["left"] <= 1 and 0 <= b["probability"] <= 1 for b in boxes)
        objects += sum(server_counts.values())
    assert summary["objects"] == objects > 0

    # a glob, as JSON lines on stdout
    r = cli("detect", "shapes", str(tmp_path / "photos" / "more" / "*.jpg"), "--threshold", "0", "--json", "-q")
    assert r.code == 0, r.stderr
    lines = r.json_lines()
    assert len(lines) == 2 * len(LABELS) and {Path(x["file"]).name for x in lines} == {"shape-8.jpg", "shape-9.jpg"}
    assert all(x["count"] == len(x["boxes"]) and x["error"] is None for x in lines)

    # quick-test writes the picture with its boxes
    quick = cli.ok_json("quick-test", "shapes", tmp_path / "photos" / "shape-1.jpg", "-o", tmp_path / "q.png",
                        "--threshold", "0")
    with Image.open(tmp_path / "q.png") as img:
        assert img.format == "PNG" and img.size == (256, 256)
    assert quick["output"] == str(tmp_path / "q.png") and quick["version"] == 1 and "annotatedImage" not in quick

    # a second version, started without waiting and followed afterwards; publish it, then roll back
    run = cli.ok_json("train", "shapes", "--max-iterations", "2", "--seed", "2")
    assert run["status"] == "queued"
    followed = cli.ok_json("runs", "show", "shapes", str(run["id"]), "--wait", "-q")
    assert followed["version"]["number"] == 2
    assert cli.ok_json("publish", "shapes", "2")["previousVersion"] == 1
    back = cli.ok_json("rollback", "shapes")
    assert back["published"] == 1 and back["previousVersion"] == 2
    assert http.get("/models/shapes/versions/published").json()["number"] == 1
    r = cli("rollback", "shapes", "--json")
    assert r.code == 1 and "nothing to roll back" in r.json()["error"]["message"]
    versions = cli.ok_json("versions", "list", "shapes")
    assert [(v["number"], v["published"]) for v in versions] == [(1, True), (2, False)]
    assert [x["status"] for x in cli.ok_json("runs", "list", "shapes")] == ["succeeded", "succeeded"]
    # a version that must never come back is archived: it leaves the list, so rollback skips it
    archived = cli.ok_json("versions", "archive", "shapes", "2")
    assert archived["number"] == 2 and archived["archived"] is True
    assert [v["number"] for v in http.get("/models/shapes/versions").json()] == [1]

    exported = cli.ok_json("export", "shapes", "1", "-o", tmp_path / "v1.zip")
    with zipfile.ZipFile(tmp_path / "v1.zip") as zf:
        assert {"config.yaml", "model_final.pth"} <= set(zf.namelist())
    assert exported["bytes"] == (tmp_path / "v1.zip").stat().st_size

    shown = cli.ok_json("models", "show", "shapes")
    assert shown["publishedVersionId"] == versions[0]["id"] and shown["datasets"][0]["imageCount"] == drawn["images"]
    assert "shapes" in [m["name"] for m in cli.ok_json("models", "list")]

    # Ctrl+C while following a run: the answer on stdin cancels it
    proc = cli.popen("train", "shapes", "--max-iterations", "5000", "--budget", "2", "--wait", "--json")
    try:
        proc.stdin.write("y\n")  # read only when the question is asked
        proc.stdin.flush()
        run_id = training_run(http, "shapes")
        # the server may start the run before the CLI has its answer to the POST: Ctrl+C then
        # is a plain interrupt. After a poll period or two the CLI is following the run.
        time.sleep(2 * POLL_SECONDS)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert KEY not in out + err
    assert f"Cancel training run {run_id}?" in err and json.loads(out)["run"]["status"] == "canceled"
    assert http.get(f"/models/shapes/runs/{run_id}").json()["status"] == "canceled"

    # unpublish: detect has nothing to call until a version is published again
    off = cli.ok_json("unpublish", "shapes")
    assert off["published"] is None and off["previousVersion"] == 1
    assert http.get("/models/shapes").json()["publishedVersionId"] is None

    assert cli.ok_json("logout")["removed"] is True and not config_file.exists()


def test_failures_exit_with_their_code_and_the_servers_word(server, cli, tmp_path):
    # no key anywhere
    r = cli("models", "list", "--url", server.url)
    assert r.code == 3 and "odconnect login" in r.stderr
    # a wrong key: the server's own problem detail is printed, and given as JSON with --json
    detail = server.http("wrong").get("/models").json()["detail"]
    r = cli("models", "list", "--url", server.url, "--key", "wrong", "--json")
    assert r.code == 3 and detail in r.stderr and r.json()["error"]["detail"] == detail
    # nobody listening
    r = cli("models", "list", "--url", f"http://127.0.0.1:{free_port()}", "--key", "k", "--json")
    assert r.code == 4 and r.json()["exitCode"] == 4 and "cannot reach" in r.stderr
    # the saved key goes only to the saved server
    cli.ok_json("login", "--url", server.url, "--key-stdin", input=KEY + "\n")
    r = cli("models", "list", "--url", f"http://127.0.0.1:{free_port()}")
    assert r.code == 3 and "no API key" in r.stderr
    r = cli("models", "list", ODCONNECT_URL=server.url)
    assert r.code == 0, r.stderr
    # the server says no (4xx): its detail, exit 6
    r = cli("models", "show", "no-such-model")
    assert r.code == 6 and "no-such-model" in r.stderr and "404" in r.stderr
    # a format the server does not import: its 404, and what it does import
    (tmp_path / "data.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    cli.ok_json("models", "create", "empty", "apple")
    r = cli("import", "empty", tmp_path / "data.zip", "--format", "nosuch")
    assert r.code == 6 and "404" in r.stderr and "it imports: coco" in r.stderr
    # labels add, then a data check that blocks training: exit 8, the warnings as JSON
    added = cli.ok_json("labels", "add", "empty", "pear")
    assert [t["name"] for t in added] == ["pear"]
    r = cli("data-check", "empty", "--json")
    assert r.code == 8 and r.json()["canTrain"] is False
    assert {w["label"] for w in r.json()["warnings"] if w["severity"] == "blocking"} == {"apple", "pear"}
    r = cli("data-check", "empty")
    assert r.code == 8 and "Training cannot start" in r.stdout and "pear" in r.stdout
    # archive a model, then bring it back by its name
    gone = cli.ok_json("models", "archive", "empty")
    assert gone["archived"] is True and "empty" not in [m["name"] for m in server.http().get("/models").json()]
    assert cli.ok_json("models", "restore", "empty")["archived"] is False
    # a usage error is argparse's 2
    assert cli("models", "create").code == 2
