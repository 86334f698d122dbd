"""Extra detectron2 backbones. Importing this package registers them in BACKBONE_REGISTRY."""

from connector.modeling.backbones.efficientnet_lite import __all__  # noqa: F401
from connector.modeling.backbones.efficientnet_lite import (  # noqa: F401
    SUPPORTED_VARIANTS,
    EfficientNetLiteBackbone,
    add_efficientnet_config,
    build_efficientnet_lite_backbone,
    build_efficientnet_lite_fpn_backbone,
    build_retinanet_efficientnet_lite_fpn_backbone,
    efficientnet_lite_preset,
    load_efficientnet_lite_weights,
    packaged_weights_path,
    pretrained_weights_description,
    variant_available,
)
