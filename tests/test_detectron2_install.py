"""Every detectron2 module the product uses imports (detectron2 comes from the sal-detectron2 wheel)."""
import importlib

import pytest

MODULES = [
    "detectron2", "detectron2.config", "detectron2.model_zoo", "detectron2.modeling",
    "detectron2.modeling.backbone", "detectron2.modeling.backbone.fpn", "detectron2.layers",
    "detectron2.engine", "detectron2.engine.hooks", "detectron2.checkpoint", "detectron2.solver",
    "detectron2.data", "detectron2.data.transforms", "detectron2.data.detection_utils",
    "detectron2.structures", "detectron2.utils.events", "detectron2.evaluation",
    "detectron2.export",
]


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name):
    importlib.import_module(name)


def test_model_zoo_configs_ship_with_the_package():
    from detectron2 import model_zoo
    for cfg in ("COCO-Detection/retinanet_R_50_FPN_1x.yaml", "COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml"):
        assert model_zoo.get_config_file(cfg).endswith(cfg)
