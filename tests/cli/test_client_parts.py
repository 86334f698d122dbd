"""The client's parts that need no server: help texts, URL handling, batching, rows, rollback."""
from __future__ import annotations

import argparse
import json

import pytest

from connector.cli import build_parser
from connector.client.commands.detect import rows_for
from connector.client.commands.versions import rollback_target
from connector.client.config import normalize_url
from connector.client.errors import ClientError, LocalError
from connector.client.exitcodes import MEANING, Exit
from connector.client.upload import plan_folder

SERVER_COMMANDS = {"serve", "worker", "db", "keys", "weights", "connector", "flows"}  # run beside the store, not a client


def client_commands(parser=None, prefix=()):
    """(path, parser) of every client command, leaves only."""
    parser = parser or build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if not prefix and name in SERVER_COMMANDS:
                    continue
                if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                    yield from client_commands(sub, prefix + (name,))
                else:
                    yield prefix + (name,), sub


def test_every_command_has_an_example_the_exit_codes_and_json():
    found = dict(client_commands())
    assert {" ".join(p) for p in found} >= {
        "login", "logout", "models list", "models create", "models show", "labels add", "import", "data-check",
        "train", "runs list", "runs show", "runs cancel", "versions list", "publish", "rollback", "export",
        "detect", "quick-test"}
    for path, parser in found.items():
        text = parser.format_help()
        assert "example:\n  odconnect " in text, path
        assert "exit codes:" in text and "130" in text, path
        assert "--json" in text and "--url" in text, path


def test_exit_codes_are_documented_once_each():
    assert set(MEANING) == set(Exit)
    assert len({int(c) for c in Exit}) == len(Exit)


@pytest.mark.parametrize("given, expected", [
    ("127.0.0.1:8080", "http://127.0.0.1:8080/api/v1"),
    ("http://od.example.org/", "http://od.example.org/api/v1"),
    ("https://od.example.org/odc/api/v1/", "https://od.example.org/odc/api/v1"),
])
def test_urls_are_normalized_to_the_api_root(given, expected):
    assert normalize_url(given) == expected


def test_a_non_http_url_is_refused():
    with pytest.raises(LocalError, match="not an http"):
        normalize_url("ftp://od.example.org")


def test_a_folder_is_cut_into_bounded_batches(tmp_path):
    (tmp_path / "sub").mkdir()
    coco = {"images": [{"id": i, "file_name": f"a{i}.jpg"} for i in range(5)] +
                      [{"id": 9, "file_name": "missing.jpg"}],
            "annotations": [{"id": 100 + i, "image_id": i, "category_id": 1, "bbox": [1, 1, 5, 5]} for i in range(5)],
            "categories": [{"id": 1, "name": "thing"}]}
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    for i in range(5):
        (tmp_path / f"a{i}.jpg").write_bytes(b"x" * 10)
    for i in range(3):
        (tmp_path / "sub" / f"b{i}.png").write_bytes(b"y" * 10)
    (tmp_path / "readme.md").write_text("hi")
    (tmp_path / ".hidden.jpg").write_bytes(b"z")
    plan = plan_folder(tmp_path, tmp_path / "coco.json", max_files=2, max_bytes=1 << 20)
    coco_batches = [b for b in plan.batches if b.coco is not None]
    plain = [b for b in plan.batches if b.coco is None]
    assert [len(b.files) for b in coco_batches] == [2, 2, 1] and [len(b.files) for b in plain] == [2, 1]
    for batch in coco_batches:  # each batch carries the boxes of its own images, and every category
        ids = {e["id"] for e in batch.coco["images"]}
        assert {a["image_id"] for a in batch.coco["annotations"]} == ids and batch.coco["categories"]
    assert sorted(n for b in plain for n in b.names) == ["sub/b0.png", "sub/b1.png", "sub/b2.png"]
    assert {s["item"]: s["reason"] for s in plan.skipped} == {
        "missing.jpg": "listed in coco.json but not in the folder", "readme.md": "not an image file name"}
    assert plan.categories == ["thing"]
    # a byte limit cuts batches too
    assert max(len(b.files) for b in plan_folder(tmp_path, None, 64, 25).batches) == 2


def test_detect_rows_give_every_label_a_row_and_errors_one_row():
    result = {"predictions": [
        {"tagName": "fork", "probability": 0.91234, "boundingBox": {"left": 0.1, "top": 0.2, "width": 0.3, "height": 0.4}},
        {"tagName": "fork", "probability": 0.5, "boundingBox": {"left": 0.5, "top": 0.5, "width": 0.1, "height": 0.1}}]}
    rows = rows_for("a.jpg", ["fork", "spoon"], result)
    assert [(r["label"], r["count"]) for r in rows] == [("fork", 2), ("spoon", 0)]
    assert rows[0]["boxes"][0] == {"left": 0.1, "top": 0.2, "width": 0.3, "height": 0.4, "probability": 0.9123}
    assert rows_for("b.jpg", ["fork"], None, "415 Unsupported") == [
        {"file": "b.jpg", "label": None, "count": None, "boxes": None, "error": "415 Unsupported"}]


def test_rollback_picks_the_newest_earlier_version():
    versions = [{"id": 11, "number": 1}, {"id": 13, "number": 3}, {"id": 14, "number": 4, "published": True},
                {"id": 15, "number": 5}]  # 2 is archived (not listed)
    assert rollback_target(versions, None)[1]["number"] == 3
    assert rollback_target(versions, 1)[1]["number"] == 1
    with pytest.raises(ClientError, match="does not exist"):
        rollback_target(versions, 2)
    with pytest.raises(ClientError, match="nothing to roll back"):
        rollback_target([{"id": 1, "number": 1, "published": True}], None)
    with pytest.raises(ClientError, match="no version is published"):
        rollback_target([{"id": 1, "number": 1}], None)


def test_the_readme_lists_the_same_exit_codes():
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("Exit codes (also in every command's `--help`):", 1)[1].split("\n\n", 2)[1]
    codes = {int(line.split("|")[1]) for line in table.splitlines() if line.startswith("| ") and line[2].isdigit()}
    assert codes == {int(c) for c in Exit}
