"""The kept snapshot and the thresholds are chosen on validation images carved from the training
images; the evaluation images only report. Asserted on the image ids each step is handed, in a
real (tiny) training run."""
from __future__ import annotations

import pytest

import connector.training.api as api
import connector.training.trainer as trainer_module
from connector.training import train, split_held_out
from connector.training.api import split_validation
from connector.training.presets import build_cfg

# small enough for tiny data: 6+ training images get a validation part of about a third
VALIDATION = {"ODCONNECT.VALIDATION.MIN_IMAGES": 6, "ODCONNECT.VALIDATION.FRACTION": 0.34,
              "ODCONNECT.VALIDATION.MIN_LABEL_IMAGES": 1, "MODEL.RETINANET.SCORE_THRESH_TEST": 0.0}


@pytest.fixture
def spies(monkeypatch):
    """Records the image ids handed to the trainer and to every selection/evaluation step."""
    calls: dict[str, list[list[int]]] = {"trainer": [], "snapshot": [], "predict": [], "thresholds": []}
    real_trainer, real_eval = trainer_module.DetectionTrainer, api.evaluate_model
    real_predict, real_choose = api.predict_records, api.choose_thresholds

    class Trainer(real_trainer):
        def __init__(self, cfg, dataset_dicts, **kw):
            calls["trainer"].append([d["image_id"] for d in dataset_dicts])
            super().__init__(cfg, dataset_dicts, **kw)

    def evaluate_model(cfg, model, records, *a, **kw):
        calls["snapshot"].append([r.image_id for r in records])
        return real_eval(cfg, model, records, *a, **kw)

    def predict_records(cfg, model, records, *a, **kw):
        calls["predict"].append([r.image_id for r in records])
        return real_predict(cfg, model, records, *a, **kw)

    def choose_thresholds(detections, records, *a, **kw):
        calls["thresholds"].append([r.image_id for r in records])
        return real_choose(detections, records, *a, **kw)

    monkeypatch.setattr(trainer_module, "DetectionTrainer", Trainer)
    monkeypatch.setattr(api, "evaluate_model", evaluate_model)
    monkeypatch.setattr(api, "predict_records", predict_records)
    monkeypatch.setattr(api, "choose_thresholds", choose_thresholds)
    return calls


@pytest.fixture(scope="module")
def records16(tmp_path_factory, draw):
    return draw(tmp_path_factory.mktemp("sixteen"), n=16, seed=3)


def test_selection_and_thresholds_never_see_the_evaluation_images(tmp_path, make_request, records16, spies):
    result = train(make_request(tmp_path / "out", train=records16, max_iter=4, overrides=VALIDATION))
    fit, val, scored = (set(result.train_image_ids), set(result.validation_image_ids),
                        set(result.eval_image_ids))
    assert fit and val and scored
    assert not fit & val and not fit & scored and not val & scored
    assert fit | val | scored == {r.image_id for r in records16}
    assert [set(ids) for ids in spies["trainer"]] == [fit]
    assert len(spies["snapshot"]) == 2 and all(set(ids) == val for ids in spies["snapshot"])  # at 1/2, 3/4
    assert [set(ids) for ids in spies["thresholds"]] == [val]
    *selection, scoring = spies["predict"]
    assert selection and all(set(ids) == val for ids in selection) and set(scoring) == scored
    assert result.metrics["validation"]["images"] == len(val)
    assert result.metrics["eval_images"] == len(scored)
    assert {m["threshold_from"] for m in result.metrics["per_label"].values()} == {"validation"}
    assert result.thresholds == {name: m["threshold"] for name, m in result.metrics["per_label"].items()}
    # detect's defaults travel with the version's config too
    assert f"THRESHOLDS:\n    - {result.thresholds['square']}" in result.config_path.read_text()


def test_a_given_evaluation_set_only_reports(tmp_path, make_request, records16, spies):
    result = train(make_request(tmp_path / "out", train=records16[:12], evaluation=records16[12:], max_iter=2,
                                overrides=VALIDATION))
    assert set(result.eval_image_ids) == {r.image_id for r in records16[12:]}
    assert set(result.validation_image_ids) < {r.image_id for r in records16[:12]}
    assert spies["predict"][-1] == result.eval_image_ids
    assert all(set(ids) == set(result.validation_image_ids) for ids in spies["predict"][:-1] + spies["snapshot"])


def test_too_few_images_keep_the_final_weights_and_default_thresholds(tmp_path, make_request, spies):
    result = train(make_request(tmp_path / "out", max_iter=4))  # 10 images, under the 50 of the preset
    assert result.validation_image_ids == [] and spies["snapshot"] == [] and spies["thresholds"] == []
    assert spies["predict"] == [result.eval_image_ids]
    assert result.kept_iteration == result.iterations == 4
    assert set(result.thresholds.values()) == {0.5}
    assert {m["threshold_from"] for m in result.metrics["per_label"].values()} == {"default"}
    assert result.metrics["validation"] == {"images": 0, "score": None, "min_images": 50}


def test_split_validation_is_deterministic_label_covering_and_bounded(records16):
    v = build_cfg("scratch", 2, "cpu").ODCONNECT.VALIDATION
    assert split_validation(records16, 2, v) == (records16, [])  # 16 < MIN_IMAGES
    v.MIN_IMAGES, v.FRACTION, v.MAX_IMAGES = 8, 0.5, 3
    fit, val = split_validation(records16, 2, v)
    fit2, val2 = split_validation(list(reversed(records16)), 2, v)  # by image id, not by order
    assert {r.image_id for r in val2} == {r.image_id for r in val} and len(fit2) == len(fit)
    assert len(val) == 3 and {b[0] for r in val for b in r.boxes} == {0, 1}
    assert (fit, val) == split_held_out(records16, 2, fraction=3 / 16)
