"""Registers NASViT subnets with timm: ``timm.create_model("nasvit_subnet", subnet="<subnet string>")``.

timm's own ``checkpoint_path=`` argument loads exported weights (``model.safetensors``) into the model.
"""

from __future__ import annotations

from typing import Any

from timm.models import register_model

from search_space import SubnetConfig
from supernet.static_model import NASViT

_FACTORY_KEYS = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


@register_model
def nasvit_subnet(
    pretrained: bool = False, subnet: str | None = None, num_classes: int | None = None, **kwargs: Any
) -> NASViT:
    """A static NASViT network for ``subnet`` (a ``SubnetConfig`` string), randomly initialised.

    Raises:
        ValueError: no subnet given, ``pretrained=True`` (there are no hub weights: use ``checkpoint_path``),
            or arguments this model does not take.
    """
    for key in _FACTORY_KEYS:
        kwargs.pop(key, None)
    if pretrained:
        raise ValueError("nasvit_subnet has no hub weights; pass checkpoint_path=<exported model.safetensors>")
    if subnet is None:
        raise ValueError("nasvit_subnet needs subnet='<subnet string>' (see subnet.json of an exported model)")
    if kwargs:
        raise ValueError(f"nasvit_subnet does not take {sorted(kwargs)}; it takes subnet and num_classes")
    return NASViT(SubnetConfig.from_string(subnet), num_classes)
