"""Serving engines: what publish decides under each `inference.engine`, what it records, and that
detect, batch detect and the quick test answer the same through torch and onnxruntime.

One store with three tiny trained `fast` versions is made once; each test works on its own copy:

* version 1: a plain version (its ONNX export predicts what torch predicts);
* version 2: weights with one extra tensor: torch loads them (it ignores what the model lacks),
  the ONNX export refuses them, so the export fails;
* version 3: exported, then one bias of the exported box head shifted, so the export's boxes are
  off and the publish-time check must notice.
"""
from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import text

from tests.conftest import Api, make_config
from tests.training_data import LABELS, shapes_image, trained_app

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TRAINING = {"training": {
    "default_preset": "fast", "retry_after_seconds": 1,
    # 128 px and batch 2 keep an iteration short; a score threshold of 0 keeps every candidate,
    # so a barely trained model still gives boxes to compare
    "overrides": {"INPUT.MIN_SIZE_TRAIN": (128,), "INPUT.MAX_SIZE_TRAIN": 160, "INPUT.MIN_SIZE_TEST": 128,
                  "INPUT.MAX_SIZE_TEST": 160, "SOLVER.IMS_PER_BATCH": 2,
                  "MODEL.RETINANET.SCORE_THRESH_TEST": 0.0}},
    "data_check": {"min_images_per_label": 3}}


def config(root: Path, engine: str, **inference) -> dict:
    # float unless a test asks for int8: the tests of the float export compare it with torch
    return make_config(root, **TRAINING, inference={"engine": engine, "int8": "off", **inference})


@pytest.fixture(scope="module")
def trained_store(tmp_path_factory):
    """(store root, model) with versions 1-3 as the module docstring says; no version published."""
    import onnx
    import torch

    from connector.inference.onnx_export import export_onnx

    root = tmp_path_factory.mktemp("engines") / "store"
    app, api, m = trained_app(root, {**TRAINING, "inference": {"engine": "torch"}}, seeds=(1, 2, 3))
    folders = {v["number"]: Path(app.odconnect.store.artifacts_root) / f"model-{m['id']}" / f"v{v['number']}"
               for v in api.get(f"/models/{m['id']}/versions").json()}
    app.odconnect.close()  # closed: the database files are whole when copied

    weights = folders[2] / "model_final.pth"
    checkpoint = torch.load(weights, map_location="cpu", weights_only=True)
    checkpoint["model"]["extra_head.weight"] = torch.zeros(3)
    torch.save(checkpoint, weights)

    export_onnx(folders[3])
    graph = onnx.load(str(folders[3] / "model.onnx"))
    bias = next(t for t in graph.graph.initializer if t.name.endswith("head.bbox_pred.bias"))
    shifted = onnx.numpy_helper.to_array(bias) + 0.5  # every box moves by half its anchor's size
    bias.CopyFrom(onnx.numpy_helper.from_array(shifted, bias.name))
    onnx.save(graph, str(folders[3] / "model.onnx"))
    return root, m


@pytest.fixture
def store(trained_store, tmp_path):
    """A copy of the trained store (its versions' folders too) for one test."""
    source, m = trained_store
    root = tmp_path / "store"
    shutil.copytree(source, root)
    from sqlalchemy import create_engine
    engine = create_engine(f"sqlite:///{root / 'odconnect.db'}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE versions SET artifact_dir = replace(artifact_dir, :a, :b)"),
                     {"a": str(source), "b": str(root)})
    engine.dispose()
    return root, m


class Server:
    """An app on a store under one engine setting; closed by the test (a restart is a new one)."""

    def __init__(self, root: Path, engine: str, **inference):
        from connector.app import create_app
        self.app = create_app(config(root, engine, **inference))
        self.api = Api(self.app)

    def close(self):
        self.app.odconnect.close()

    def version(self, m, number) -> dict:
        return self.api.get(f"/models/{m['id']}/versions/{number}").json()

    def predictor(self, m, number):
        return self.app.odconnect.predictors.get(self.version(m, number)["id"])


def folder_of(root: Path, m, number: int) -> Path:
    return root / "artifacts" / f"model-{m['id']}" / f"v{number}"


def large_jpeg() -> bytes:
    """A 1024x768 photo-like JPEG: detect decodes it at reduced scale."""
    img = Image.open(io.BytesIO(shapes_image(21)[0])).convert("RGB").resize((1024, 768), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def answers(api, m) -> dict:
    """Detect (JSON, raw body of a large JPEG), batch detect and quick test answers of one server."""
    small = [shapes_image(seed)[0] for seed in (30, 31, 32)]
    out = {}
    for k, data in enumerate(small[:2]):
        r = api.post(f"/models/{m['id']}/detect", json={"content": base64.b64encode(data).decode()},
                     params={"threshold": 0.0})
        assert r.status_code == 200, r.text
        out[f"detect-{k}"] = r.json()
    r = api.post(f"/models/{m['id']}/detect", content=large_jpeg(), params={"threshold": 0.0},
                 headers={"Content-Type": "image/jpeg"})
    assert r.status_code == 200, r.text
    out["large"] = r.json()
    r = api.post(f"/models/{m['id']}/detect/batch", params={"threshold": 0.0},
                 json={"images": [{"name": f"b{k}", "content": base64.b64encode(d).decode()}
                                  for k, d in enumerate(small)]})
    assert r.status_code == 200 and all(x["status"] == "ok" for x in r.json()["results"]), r.text
    out.update({f"batch-{k}": x["result"] for k, x in enumerate(r.json()["results"])})
    r = api.post(f"/models/{m['id']}/quick-test", json={"content": base64.b64encode(small[2]).decode(),
                                                        "threshold": 0.0, "version": "1"})
    assert r.status_code == 200, r.text
    body = r.json()
    png = Image.open(io.BytesIO(base64.b64decode(body.pop("annotatedImage"))))
    assert png.format == "PNG" and png.size == (256, 256)
    out["quick"] = body
    return out


def as_detections(body: dict):
    """The answer's predictions as pixel Detections (for onnx_verify.compare)."""
    from connector.modeling.detection import Detection
    w, h = body["image"]["width"], body["image"]["height"]
    return [Detection(LABELS.index(p["tagName"]), p["probability"], p["boundingBox"]["left"] * w,
                      p["boundingBox"]["top"] * h, (p["boundingBox"]["left"] + p["boundingBox"]["width"]) * w,
                      (p["boundingBox"]["top"] + p["boundingBox"]["height"]) * h) for p in body["predictions"]]


def assert_same_answer(a: dict, b: dict, name: str):
    """Same shape and fields; boxes equal within the publish-time check's tolerance."""
    from connector.inference.onnx_verify import VerifyReport, compare
    assert set(a) == set(b) and a["image"] == b["image"] and a["version"] == b["version"], name
    assert [c["tagName"] for c in a["counts"]] == [c["tagName"] for c in b["counts"]]
    assert all(set(p) == {"tagId", "tagName", "probability", "boundingBox"} for p in a["predictions"] + b["predictions"])
    report = compare(as_detections(a), as_detections(b), VerifyReport(), name)
    assert report.ok, (name, report.unmatched[:3])
    # near-ties of a barely trained model may go either way; the others match
    assert report.matched >= 0.9 * max(len(a["predictions"]), len(b["predictions"])) > 0, (name, report.summary())


def test_torch_setting_serves_torch_and_never_exports(store):
    root, m = store
    server = Server(root, "torch")
    try:
        r = server.api.post(f"/models/{m['id']}/versions/1/publish")
        assert r.status_code == 200 and r.json()["engine"] == "torch", r.text
        engine = server.version(m, 1)["engine"]
        assert engine["name"] == "torch" and engine["setting"] == "torch" and engine["verifiedOn"] == 0
        assert "inference.engine is torch" in engine["reason"]
        assert server.predictor(m, 1).engine == "torch"
        assert not [p.name for p in folder_of(root, m, 1).iterdir() if p.suffix in (".onnx", ".json")]
    finally:
        server.close()


def test_auto_checks_on_the_evaluation_images_records_onnxruntime_and_every_process_reuses_it(store):
    from openapi_schema_validator import OAS30Validator

    from connector.spec import SPEC_DIR, SPEC_FILE
    import yaml

    root, m = store
    server = Server(root, "auto")
    try:
        r = server.api.post(f"/models/{m['id']}/versions/1/publish")
        assert r.status_code == 200 and r.json()["engine"] == "onnxruntime", r.text
        view = server.version(m, 1)
        engine = view["engine"]
        assert engine["name"] == "onnxruntime" and engine["setting"] == "auto", engine
        # the held-out images training evaluated on
        with server.app.odconnect.store.engine.connect() as conn:
            snapshot = json.loads(conn.execute(text("SELECT data_snapshot FROM versions WHERE number = 1")).scalar())
        assert engine["imageSource"] == "evaluation" and engine["verifiedOn"] == len(snapshot["scored"]) > 0
        assert "predicts what torch predicts" in engine["reason"] and "0 unmatched" in engine["reason"]
        assert "engine" not in view["metrics"]
        # the spec documents the field: the view validates against the Version schema
        spec = yaml.safe_load((SPEC_DIR / SPEC_FILE).read_text())
        schemas = spec["components"]["schemas"]
        schema = {**schemas["Version"], "components": {"schemas": schemas}}
        OAS30Validator(schema).validate(view)
        assert server.predictor(m, 1).engine == "onnxruntime"
        onnx_file = folder_of(root, m, 1) / "model.onnx"
        written = onnx_file.stat().st_mtime_ns
    finally:
        server.close()

    # a restart (or another process) serves the recorded engine without exporting or checking again
    for setting in ("auto", "onnxruntime"):
        server = Server(root, setting)
        try:
            cache, version_id = server.app.odconnect.predictors, view["id"]
            deadline = time.time() + 60
            while version_id not in cache:  # warmed at start
                assert time.time() < deadline, "published version was not warmed"
                time.sleep(0.2)
            assert cache.get(version_id).engine == "onnxruntime" and cache.loads == 1
            r = server.api.post(f"/models/{m['id']}/versions/1/publish")
            assert r.status_code == 200 and r.json()["engine"] == "onnxruntime"
            assert server.version(m, 1)["engine"] == engine  # the same decision, not a new one
        finally:
            server.close()
    assert onnx_file.stat().st_mtime_ns == written


def test_detect_batch_and_quick_test_answer_the_same_through_both_engines(store):
    root, m = store
    results = {}
    for setting, expected in (("torch", "torch"), ("auto", "onnxruntime")):
        server = Server(root, setting)
        try:
            assert server.api.post(f"/models/{m['id']}/versions/1/publish").json()["engine"] == expected
            assert server.predictor(m, 1).engine == expected
            results[expected] = answers(server.api, m)
        finally:
            server.close()
    torch_answers, onnx_answers = results["torch"], results["onnxruntime"]
    assert torch_answers["large"]["image"] == {"width": 1024, "height": 768}
    for name in torch_answers:
        assert_same_answer(torch_answers[name], onnx_answers[name], name)
    for engine_answers in results.values():  # a batch answers as single detects do
        assert_same_answer(engine_answers["batch-0"], engine_answers["detect-0"], "batch vs single")
        assert_same_answer(engine_answers["batch-1"], engine_answers["detect-1"], "batch vs single")


def test_a_detect_alone_may_spin_and_the_app_counts_requests_in_flight(store):
    """The onnxruntime engine opens its spinning session from the setting, and asks the app's
    request count (the metrics middleware's) whether the detect it runs is the only request."""
    from connector.metrics import requests_in_flight

    root, m = store
    server = Server(root, "onnxruntime")
    try:
        assert server.api.post(f"/models/{m['id']}/versions/1/publish").status_code == 200
        predictor = server.predictor(m, 1)
        assert predictor._alone_network is not None
        asked, check = [], predictor._alone
        predictor._alone = lambda: asked.append(requests_in_flight()) or check()
        r = server.api.post(f"/models/{m['id']}/detect", content=shapes_image(4)[0],
                            headers={"Content-Type": "image/jpeg"})
        assert r.status_code == 200, r.text
        assert asked == [1] and requests_in_flight() == 0
    finally:
        server.close()
    server = Server(root, "onnxruntime", onnx_spin_when_alone=False)
    try:
        assert server.predictor(m, 1)._alone_network is None
    finally:
        server.close()


def test_a_version_whose_export_fails_falls_back_to_torch_or_is_refused(store):
    root, m = store
    data = shapes_image(40)[0]
    server = Server(root, "auto")
    try:
        r = server.api.post(f"/models/{m['id']}/versions/2/publish")
        assert r.status_code == 200 and r.json()["engine"] == "torch", r.text
        engine = server.version(m, 2)["engine"]
        assert engine["name"] == "torch" and engine["setting"] == "auto" and engine["verifiedOn"] == 0
        assert engine["reason"].startswith("the ONNX export failed: model_final.pth does not match config.yaml")
        assert "extra_head.weight" in engine["reason"]
        assert server.predictor(m, 2).engine == "torch"
        r = server.api.post(f"/models/{m['id']}/detect", content=data, headers={"Content-Type": "image/jpeg"})
        assert r.status_code == 200 and r.json()["version"] == 2
    finally:
        server.close()

    server = Server(root, "onnxruntime")
    try:
        r = server.api.post(f"/models/{m['id']}/versions/2/publish")
        assert r.status_code == 409, r.text
        detail = r.json()["detail"]
        assert "cannot be served by onnxruntime" in detail and "model_final.pth does not match config.yaml" in detail
        assert server.version(m, 2)["engine"]["setting"] == "auto"  # a refusal records nothing
        # version 1 can be: publishing it under this setting decides and records it
        r = server.api.post(f"/models/{m['id']}/versions/1/publish")
        assert r.status_code == 200 and r.json()["engine"] == "onnxruntime"
        assert server.version(m, 1)["engine"]["setting"] == "onnxruntime"
        assert server.api.get(f"/models/{m['id']}").json()["publishedVersion"] == 1
    finally:
        server.close()


def test_an_export_that_predicts_other_boxes_falls_back_to_torch_with_the_reason(store):
    root, m = store
    server = Server(root, "auto")
    try:
        r = server.api.post(f"/models/{m['id']}/versions/3/publish")
        assert r.status_code == 200 and r.json()["engine"] == "torch", r.text
        engine = server.version(m, 3)["engine"]
        assert engine["name"] == "torch" and engine["verifiedOn"] > 0 and engine["imageSource"] == "evaluation"
        assert "does not predict what torch predicts" in engine["reason"], engine["reason"]
        assert server.predictor(m, 3).engine == "torch"
    finally:
        server.close()


def test_a_version_that_keeps_no_box_at_its_own_threshold_is_compared_on_every_candidate(store):
    """Comparing no boxes would check nothing: the check lowers both engines' threshold to 0."""
    import yaml
    root, m = store
    config_file = folder_of(root, m, 1) / "config.yaml"
    cfg = yaml.safe_load(config_file.read_text())
    cfg["MODEL"]["RETINANET"]["SCORE_THRESH_TEST"] = 0.999  # no barely trained box scores that
    config_file.write_text(yaml.safe_dump(cfg))
    server = Server(root, "auto")
    try:
        r = server.api.post(f"/models/{m['id']}/versions/1/publish")
        assert r.status_code == 200 and r.json()["engine"] == "onnxruntime", r.text
        engine = server.version(m, 1)["engine"]
        assert "predicts what torch predicts at probability threshold 0" in engine["reason"], engine["reason"]
        matched = int(engine["reason"].split(" images: ")[1].split(" boxes matched")[0])
        assert matched > 0 and engine["verifiedOn"] > 0
        r = server.api.post(f"/models/{m['id']}/detect", content=shapes_image(41)[0],
                            headers={"Content-Type": "image/jpeg"}, params={"threshold": 0.0})
        assert r.status_code == 200 and r.json()["predictions"] == []  # serving keeps the model's threshold
    finally:
        server.close()


SERVE_AND_DETECT = """
import json, sys, time
from connector.app import create_app
from tests.conftest import Api, make_config
root, model_id, jpeg = sys.argv[1], int(sys.argv[2]), open(sys.argv[3], "rb").read()
app = create_app(make_config(root, inference={"engine": "auto", "int8": "off"}))
api = Api(app)
r = api.post(f"/models/{model_id}/detect", content=jpeg, headers={"Content-Type": "image/jpeg"},
             params={"threshold": 0.0})
version_id = api.get(f"/models/{model_id}/versions/published").json()["id"]
print(json.dumps({"status": r.status_code, "boxes": len(r.json().get("predictions", [])),
                  "engine": app.odconnect.predictors.get(version_id).engine,
                  "heavy": sorted(m for m in ("torch", "torchvision", "detectron2") if m in sys.modules)}))
app.odconnect.close()
"""


def test_a_server_that_serves_onnxruntime_never_imports_torch(store, tmp_path):
    root, m = store
    server = Server(root, "auto")
    try:
        assert server.api.post(f"/models/{m['id']}/versions/1/publish").json()["engine"] == "onnxruntime"
    finally:
        server.close()
    picture = tmp_path / "large.jpg"
    picture.write_bytes(large_jpeg())
    done = subprocess.run([sys.executable, "-c", SERVE_AND_DETECT, str(root), str(m["id"]), str(picture)],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == 200 and result["boxes"] > 0 and result["engine"] == "onnxruntime"
    assert result["heavy"] == [], f"detect through onnxruntime imported {result['heavy']}"


# --- int8 -------------------------------------------------------------------------------------

def test_int8_verdict_keeps_float_when_ap50_or_ap_drops_more_than_allowed():
    from connector.services.precision_choice import int8_verdict
    ok, why = int8_verdict({"ap50": 0.90, "ap": 0.60}, {"ap50": 0.895, "ap": 0.592}, 0.01)
    assert ok and why == "int8 serves: AP50 0.895 int8 vs 0.900 float, AP 0.592 int8 vs 0.600 float"
    ok, why = int8_verdict({"ap50": 0.90, "ap": 0.60}, {"ap50": 0.90, "ap": 0.585}, 0.01)
    assert not ok and why.startswith("float serves (int8 loses more than 0.01): ")
    ok, why = int8_verdict({"ap50": 0.90, "ap": 0.60}, {"ap50": 0.88, "ap": 0.61}, 0.01)
    assert not ok  # AP50 alone dropped too far
    ok, why = int8_verdict({"ap50": None, "ap": None}, {"ap50": None, "ap": None}, 0.01)
    assert not ok and why == "int8 not checked: no AP50 on the evaluation images"


def quantized_convolutions(path: Path) -> list[bool]:
    """For each Conv of the graph, in order, whether its weight comes through DequantizeLinear."""
    import onnx
    graph = onnx.load(str(path)).graph
    dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    return [n.input[1] in dequantized for n in graph.node if n.op_type == "Conv"]


def baseline_of(server: Server, m, number: int) -> dict:
    with server.app.odconnect.store.engine.connect() as conn:
        return json.loads(conn.execute(text(
            "SELECT b.profile FROM version_baselines b JOIN versions v ON v.id = b.version_id "
            "WHERE v.model_id = :m AND v.number = :n"), {"m": m["id"], "n": number}).scalar())


def test_int8_is_quantized_at_publish_checked_on_evaluation_images_and_served(store):
    from connector.inference.onnx_quantize import FLOAT_CONVOLUTIONS
    root, m = store
    # a barely trained model's AP is noise: accept any drop here, so that the int8 path is served
    server = Server(root, "auto", int8="auto", int8_max_ap_drop=1.0)
    try:
        r = server.api.post(f"/models/{m['id']}/versions/1/publish")
        assert r.status_code == 200 and r.json()["engine"] == "onnxruntime", r.text
        engine = server.version(m, 1)["engine"]
        assert engine["precision"] == "int8", engine
        assert "; int8 serves: AP50 " in engine["reason"] and " evaluation images" in engine["reason"]
        int8_file = folder_of(root, m, 1) / "model.int8.onnx"
        convs = quantized_convolutions(int8_file)
        assert not any(convs[:FLOAT_CONVOLUTIONS]) and all(convs[FLOAT_CONVOLUTIONS:])
        predictor = server.predictor(m, 1)
        assert predictor.engine == "onnxruntime" and predictor.precision == "int8"
        # production's drift test compares with what int8 answers on the checked evaluation images
        from connector.services.precision_choice import evaluation_records
        from connector.training.evaluation import prediction_profile
        store_ = server.app.odconnect.store
        labels, records = evaluation_records(store_, server.version(m, 1)["id"], 100)
        expected = prediction_profile([predictor.predict(Path(r.path).read_bytes(), 0.0) for r in records], labels)
        assert baseline_of(server, m, 1) == expected and expected["images"] == len(records) > 0
        got = answers(server.api, m)
        assert got["large"]["image"] == {"width": 1024, "height": 768} and got["large"]["predictions"]
        r = server.api.get(f"/models/{m['id']}/versions/1/export", params={"format": "onnx"})
        assert r.status_code == 200, r.text
        import zipfile
        assert "model.int8.onnx" in zipfile.ZipFile(io.BytesIO(r.content)).namelist()
        written = int8_file.stat().st_mtime_ns
    finally:
        server.close()

    # a restart serves the recorded int8 network without quantizing again; int8 off serves float
    for int8, precision in (("auto", "int8"), ("off", "float32")):
        server = Server(root, "auto", int8=int8, int8_max_ap_drop=1.0)
        try:
            assert server.api.post(f"/models/{m['id']}/versions/1/publish").json()["engine"] == "onnxruntime"
            assert server.predictor(m, 1).precision == precision
            assert server.version(m, 1)["engine"] == engine
        finally:
            server.close()
    assert int8_file.stat().st_mtime_ns == written

    # a decision made while int8 was off (here: after torch served it) drops the old int8 network,
    # so it is never taken for an int8 verdict: with int8 on again, publish quantizes and checks anew
    for setting, int8, precision in (("torch", "auto", None), ("auto", "off", "float32"), ("auto", "auto", "int8")):
        server = Server(root, setting, int8=int8, int8_max_ap_drop=1.0)
        try:
            assert server.api.post(f"/models/{m['id']}/versions/1/publish").status_code == 200
            assert server.version(m, 1)["engine"]["precision"] == (precision or "float32")
            if precision:
                assert server.predictor(m, 1).precision == precision
            assert int8_file.exists() == (precision != "float32")
        finally:
            server.close()


def test_int8_that_loses_accuracy_or_has_nothing_to_check_on_leaves_float_serving(store):
    root, m = store
    # decided first with int8 off: float, never quantized
    server = Server(root, "auto")
    try:
        assert server.api.post(f"/models/{m['id']}/versions/1/publish").json()["engine"] == "onnxruntime"
        assert server.version(m, 1)["engine"]["precision"] == "float32"
        assert server.version(m, 1)["engine"]["reason"].endswith("; inference.int8 is off")
    finally:
        server.close()
    # with int8 on, publishing decides again; a drop limit no model meets keeps float
    server = Server(root, "auto", int8="auto", int8_max_ap_drop=-1.0)
    try:
        assert server.api.post(f"/models/{m['id']}/versions/1/publish").json()["engine"] == "onnxruntime"
        engine = server.version(m, 1)["engine"]
        assert engine["precision"] == "float32" and "; float serves (int8 loses more than -1): AP50 " in engine["reason"]
        assert server.predictor(m, 1).precision == "float32"
        # float serves: float's answers on the checked images are the baseline
        from connector.inference.onnx_predictor import OnnxPredictor
        from connector.services.precision_choice import evaluation_records
        from connector.training.evaluation import prediction_profile
        labels, records = evaluation_records(server.app.odconnect.store, server.version(m, 1)["id"], 100)
        float_predictor = OnnxPredictor(folder_of(root, m, 1))
        assert baseline_of(server, m, 1) == prediction_profile(
            [float_predictor.predict(Path(r.path).read_bytes(), 0.0) for r in records], labels)
    finally:
        server.close()
    # no approved box on the evaluation images: nothing to check int8 on
    from sqlalchemy import create_engine
    db = create_engine(f"sqlite:///{root / 'odconnect.db'}")
    with db.begin() as conn:
        conn.execute(text("UPDATE regions SET approved = 0"))
    db.dispose()
    (folder_of(root, m, 1) / "model.int8.onnx").unlink()
    server = Server(root, "auto", int8="auto", int8_max_ap_drop=1.0)
    try:
        assert server.api.post(f"/models/{m['id']}/versions/1/publish").json()["engine"] == "onnxruntime"
        engine = server.version(m, 1)["engine"]
        assert engine["precision"] == "float32" and engine["reason"].endswith("; int8 not checked: no evaluation image with boxes")
    finally:
        server.close()
