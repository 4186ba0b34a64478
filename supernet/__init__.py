"""The weight-sharing supernet over a search space, its static twins and supernet training pieces.

    from supernet import Supernet
    net = Supernet(space, num_classes=10)
    net.set_active_subnet(cfg)
    logits = net(images)            # (B, num_classes)
    static = net.export(cfg)        # standalone nn.Module with copied weights

Importing this package registers ``nasvit_min``, ``nasvit_max`` and ``nasvit_subnet`` with timm.
"""

from supernet import timm_models
from supernet.bn_calibration import recalibrate_bn
from supernet.inference import optimize_for_inference
from supernet.static_model import NASViT
from supernet.supernet import Supernet

__all__ = ["NASViT", "Supernet", "optimize_for_inference", "recalibrate_bn", "timm_models"]
