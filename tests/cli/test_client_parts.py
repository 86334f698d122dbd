"""The client's parts that need no server: help texts, URL handling, batching, rows, rollback."""
from __future__ import annotations

import argparse
import io
import json
import os
from pathlib import Path

import pytest

from connector.cli import build_parser
from connector.client.commands.detect import rows_for
from connector.client.commands.versions import rollback_target
from connector.client.config import normalize_url
from connector.client.errors import ClientError, LocalError
from connector.client.exitcodes import MEANING, Exit
from connector.client.upload import plan_folder

ROOT = Path(__file__).resolve().parents[2]
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


# --- what a user runs into: wrong URLs, bad numbers, closed pipes, Ctrl+C, quoting -------------------

import http.server
import subprocess
import sys
import threading
from types import SimpleNamespace

from connector.cli import main
from connector.client.commands import base, detect as detect_cmd, importing, train as train_cmd
from connector.client.output import Output
from connector.client.upload import Batch, Plan


@pytest.fixture
def not_odconnect(tmp_path):
    """Something else on the port the user typed: a proxy's HTML pages, a JSON /version that is not
    odconnect's, and a redirect to https."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.endswith("/version"):
                body, kind, status = b'{"status": "ok"}', "application/json", 200
            elif "/models/" in self.path:
                body, kind, status = b"<!DOCTYPE html><html><head><title>Not here</title></head>" + b"<p>x</p>" * 500, \
                    "text/html", 404
            elif self.path.startswith("/moved"):
                self.send_response(301)
                self.send_header("Location", "https://od.example.org/api/v1/models")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            else:
                body, kind, status = b"<html><title>Sign in</title></html>", "text/html", 200
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_url_that_is_not_an_odconnect_server_is_said_so_not_a_traceback(not_odconnect, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("ODCONNECT_URL", raising=False)
    monkeypatch.delenv("ODCONNECT_KEY", raising=False)
    # a 200 HTML page (a proxy's sign-in page): exit 4 and one JSON document, no traceback
    assert main(["models", "list", "--url", not_odconnect, "--key", "k", "--json"]) == Exit.UNREACHABLE
    out, err = capsys.readouterr()
    error = json.loads(out)["error"]["message"]
    assert "text/html" in error and "Sign in" in error and "odconnect server" in error
    assert "Traceback" not in err
    # a redirect names where to
    assert main(["models", "list", "--url", not_odconnect + "/moved", "--key", "k"]) == Exit.UNREACHABLE
    assert "redirected to https://od.example.org" in capsys.readouterr().err
    # an HTML error page: its title, not the page
    assert main(["models", "show", "m", "--url", not_odconnect, "--key", "k"]) == Exit.REFUSED
    err = capsys.readouterr().err
    assert "Not here" in err and "<p>" not in err and len(err) < 600 and "check --url" in err
    # login saves nothing when the answer to /version is not odconnect's
    monkeypatch.setattr("sys.stdin", io.StringIO("k\n"))
    assert main(["login", "--url", not_odconnect, "--key-stdin"]) == Exit.UNREACHABLE
    assert "not as an odconnect server" in capsys.readouterr().err
    assert not (tmp_path / "config" / "odconnect" / "client.json").exists()


@pytest.mark.parametrize("argv", [
    ["detect", "m", "x.jpg", "--workers", "0"],
    ["import", "m", "photos", "--workers", "-1"],
    ["import", "m", "photos", "--batch-size", "0"],
    ["models", "list", "--timeout", "-5"],
    ["models", "list", "--timeout", "0"],
])
def test_numbers_that_cannot_work_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(argv)
    assert done.value.code == Exit.USAGE
    assert "Traceback" not in capsys.readouterr().err


def args_for(**kw):
    return argparse.Namespace(**{"json": False, "quiet": True, "url": None, "key": None, "timeout": 5.0, **kw})


def test_ctrl_c_with_json_still_prints_a_json_error(capsys):
    def handler(session, args):
        raise KeyboardInterrupt
    assert base.run(handler, args_for(json=True)) == Exit.INTERRUPTED
    out, err = capsys.readouterr()
    assert json.loads(out) == {"error": {"message": "interrupted"}, "exitCode": 130} and "interrupted" in err


def test_ctrl_c_during_an_import_says_how_far_it_got(monkeypatch, tmp_path):
    def send_batch(api, model, dataset, batch, add_labels):
        raise KeyboardInterrupt
    monkeypatch.setattr(importing, "send_batch", send_batch)
    session = SimpleNamespace(api=None, out=Output(quiet=True))
    plan = Plan(batches=[Batch([tmp_path / "a.jpg"], ["a.jpg"])])
    try:
        importing.send(session, args_for(model="m", no_add_labels=False, workers=1), plan, 1)
    except KeyboardInterrupt:
        pytest.fail("Ctrl+C came out as a bare KeyboardInterrupt, saying nothing of what was added")
    except ClientError as exc:
        assert exc.code == Exit.INTERRUPTED and "running the import again adds only what is new" in exc.message
    else:
        pytest.fail("the import went on")


def test_a_closed_pipe_ends_quietly():
    # `odconnect detect ... --json | head -1`: the reader goes away after one line
    script = ("import argparse\nfrom connector.client.commands import base\n"
              "def handler(session, args):\n"
              "    for i in range(100000):\n"
              "        session.out.json_line({'row': i})\n"
              "raise SystemExit(base.run(handler, argparse.Namespace(json=True, quiet=True, url=None, key=None, "
              "timeout=5.0)))\n")
    done = subprocess.run(f"{sys.executable} -c \"$SCRIPT\" | head -1", shell=True, capture_output=True, text=True,
                          env={**os.environ, "SCRIPT": script, "PYTHONPATH": str(ROOT)}, cwd=ROOT, timeout=60,
                          executable="/bin/bash")
    assert done.stdout == '{"row":0}\n'
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr


def test_the_commands_a_note_suggests_can_be_pasted_into_a_shell(capsys):
    api = SimpleNamespace(post=lambda path, json: {"id": 7, "status": "queued", "modelId": 1})
    session = SimpleNamespace(api=api, out=Output())
    fields = dict(preset=None, budget=None, max_iterations=None, seed=None, weights=None, evaluation_dataset=None,
                  base_version=None, warm_start=False, wait=False)
    train_cmd.train(session, args_for(model="my model", **fields))
    assert "`odconnect runs show 'my model' 7 --wait`" in capsys.readouterr().out


def test_detect_keeps_stdout_json_and_writes_a_json_file_as_one_document(tmp_path):
    session = SimpleNamespace(out=Output(json_mode=True, quiet=True))
    with pytest.raises(ClientError) as raised:
        detect_cmd.Sink(session, args_for(csv="-", output=None))
    assert raised.value.code == Exit.USAGE and "--json" in raised.value.message
    with pytest.raises(ClientError, match="not both"):
        detect_cmd.Sink(session, args_for(csv="a.csv", output="b.csv"))
    sink = detect_cmd.Sink(session, args_for(csv=None, output=str(tmp_path / "rows.json")))
    sink.add(rows_for("b.jpg", ["fork"], None, "415 Unsupported"))
    sink.add(rows_for("a.jpg", ["fork"], {"predictions": []}))
    sink.close()
    assert [r["file"] for r in json.loads((tmp_path / "rows.json").read_text())] == ["a.jpg", "b.jpg"]
