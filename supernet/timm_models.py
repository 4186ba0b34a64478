"""Registers NASViT with timm (importing ``supernet`` or ``nasvit`` does it): named models and ``nasvit_subnet``.

    timm.create_model("nasvit_min")                                                    # named: random init
    timm.create_model("nasvit_max", pretrained=True, pretrained_cfg_overlay=dict(file="runs/x/model.safetensors"))
    timm.create_model("nasvit_subnet", subnet="<subnet string>", num_classes=10)      # any subnet, random init
    timm.create_model("nasvit_subnet", export_dir="runs/tiny-export", pretrained=True)  # an exported model
    timm.create_model("nasvit_subnet", export_dir=DIR, pretrained=True, num_classes=5)  # new classifier
    timm.create_model("nasvit_subnet", export_dir=DIR, pretrained=True, img_size=320)   # at another resolution

The named models are subnets of the ``nasvit`` space with timm's complete default configs (:data:`NAMED_SUBNETS`):
``nasvit_min`` (its smallest subnet, 192 px) and ``nasvit_max`` (its largest, 288 px). An export of the same subnet
holds the same tensor names and shapes, so its ``model.safetensors`` loads into the named model (with another
``num_classes``, everything but the classifier). ``nasvit_subnet`` without ``subnet`` or ``export_dir`` is
``nasvit_min``'s subnet, so that every registered name builds a model.

Every configuration declares ``fixed_input_size``, as timm does for Swin and LeViT: the relative-position tables,
attention windows and switchable scales of the transformer stages belong to the map sizes of one resolution. An
input of another size is resized to it inside the model (as ``nasvit eval``, the exports and their ONNX files do),
so feature maps keep the sizes of that resolution. The resize is a leaf for ``torch.fx`` (timm's notrace
registry), with the MBConv shortcut, whose pooling pads odd maps.

``img_size`` (an int, or a square (height, width)) builds the model for another resolution, as for timm's Swin and
ViT: the same subnet at that resolution (:mod:`supernet.resolution`: which sides it runs at; a side its space does
not list gives a one-subnet space ``<space>_r<side>``), the pretrained weights' relative-position tables resized to
its windows (its ``pretrained_filter_fn``), ``input_size`` and ``pool_size`` of that resolution in its
pretrained_cfg. A side the subnet cannot run at is a ``ValueError`` naming the nearest that fit.

The model is built by timm's ``build_model_with_cfg``, so timm's own arguments behave as for timm's models:
``num_classes`` (0: pooled features), ``in_chans`` (pretrained stems adapted by timm), ``img_size``, ``drop_rate``,
``drop_path_rate``, ``pretrained_cfg`` / ``pretrained_cfg_overlay``, ``features_only`` with ``out_indices`` /
``feature_cls`` / ``feature_cfg``, ``checkpoint_path``, ``cache_dir``, ``device`` and ``dtype``.

The pretrained_cfg of a model from ``export_dir`` is the export's preprocessing (``subnet.json``'s
``pretrained_cfg``; for older exports, its ``bn_recalibration.image_size`` with ImageNet mean and std, bicubic,
crop_pct 0.875), so ``timm.data.resolve_data_config({}, model=m)`` and ``create_transform`` preprocess as the
export was evaluated; its ``file`` is the export's ``model.safetensors``. A ``pretrained_cfg`` dict passed in
replaces single entries of that one; ``pretrained_cfg_overlay`` is then applied by timm.

``features_only=True`` wraps the model in timm's ``getter`` extractor, which calls ``forward_intermediates``
(and so keeps the input resize); its default ``out_indices`` are all maps: the stem, then every stage.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from pathlib import Path
from typing import Any

from timm.data import DEFAULT_CROP_PCT, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import register_notrace_function, register_notrace_module
from timm.models import FeatureDictNet, PretrainedCfg, build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn

from search_space import SubnetConfig, load_space, load_subnet, parse_space
from supernet.layers import Shortcut, resize_input
from supernet.resolution import state_at_resolution, subnet_at_resolution
from supernet.static_model import NASViT

SUBNET_FILE, WEIGHTS_FILE = "subnet.json", "model.safetensors"  # the files of an export directory
MODEL_NAME = "nasvit_subnet"
# Where timm finds the stem conv (to adapt it to in_chans) and the classifier (dropped for another num_classes).
MODEL_PRETRAINED_CFG = {"first_conv": "stem.conv", "classifier": "head.classifier"}

_MODEL_KWARGS = ("num_classes", "in_chans", "drop_rate", "drop_path_rate", "global_pool", "img_size")
_FEATURE_KWARGS = ("features_only", "out_indices", "feature_cls")
_WEIGHT_SOURCES = ("state_dict", "file", "url", "hf_hub_id")
_PRETRAINED_CFG_FIELDS = frozenset(field.name for field in dataclasses.fields(PretrainedCfg))

NAMED_SPACE = "nasvit"
NAMED_SUBNETS = {"nasvit_min": "min", "nasvit_max": "max"}  # model name -> which subnet of NAMED_SPACE

register_notrace_function(resize_input)  # shape-dependent Python branches: leaves of an FX graph
register_notrace_module(Shortcut)


def named_subnet(name: str) -> SubnetConfig:
    """The subnet of the named model ``name`` (a key of :data:`NAMED_SUBNETS`)."""
    space = load_space(NAMED_SPACE)
    return space.min_subnet() if NAMED_SUBNETS[name] == "min" else space.max_subnet()


@register_model
def nasvit_subnet(
    pretrained: bool = False, subnet: str | None = None, export_dir: str | os.PathLike | None = None, **kwargs: Any
) -> nn.Module:
    """A static NASViT network: of ``subnet`` (a ``SubnetConfig`` string) or of the export in ``export_dir``.

    Args:
        pretrained: load the weights of ``pretrained_cfg["file"]``: the export's ``model.safetensors``, or a file
            given by ``pretrained_cfg_overlay=dict(file=...)``.
        subnet: the subnet string, for a model without an export.
        export_dir: a directory written by ``nasvit export`` (``subnet.json``, ``model.safetensors``).
        **kwargs: timm's arguments, listed in the module docstring.

    Returns:
        A :class:`~supernet.NASViT`, or with ``features_only`` timm's feature extractor around one.

    Raises:
        ValueError: neither or both of ``subnet`` and ``export_dir``, an ``export_dir`` that is not an export,
            ``pretrained=True`` without a weights file, or an argument this model does not take.
    """
    cfg, source_cfg = _source(subnet, export_dir)
    return _build(MODEL_NAME, cfg, source_cfg, pretrained, kwargs)


def _build(name: str, cfg: SubnetConfig, source_cfg: dict[str, Any], pretrained: bool, kwargs: dict[str, Any]):
    """The model ``name`` of ``cfg`` through timm's ``build_model_with_cfg``, ``source_cfg`` its pretrained_cfg; with
    ``img_size`` in ``kwargs`` both are for that resolution, the pretrained weights' position tables resized to it."""
    img_size, weights_filter = kwargs.pop("img_size", None), None
    if img_size is not None:
        source = cfg
        cfg, source_cfg = configs_at_resolution(cfg, source_cfg, _square_side(name, img_size))
        weights_filter = functools.partial(_weights_at_resolution, source=source)
    pretrained_cfg = {**source_cfg, **_as_dict(kwargs.pop("pretrained_cfg", None), name)}
    overlay = kwargs.pop("pretrained_cfg_overlay", None)
    cache_dir = kwargs.pop("cache_dir", None)
    feature_cfg = kwargs.pop("feature_cfg", None)
    placement = {key: kwargs.pop(key) for key in ("device", "dtype") if key in kwargs}
    _check_kwargs(name, kwargs, feature_cfg)
    _check_weights(name, {**pretrained_cfg, **(overlay or {})}, pretrained)
    model = build_model_with_cfg(
        NASViT,
        name,
        pretrained,
        pretrained_cfg=pretrained_cfg,
        pretrained_cfg_overlay=overlay,
        model_cfg=cfg,
        feature_cfg={"feature_cls": "getter", "out_indices": tuple(range(len(cfg.stages) + 1)), **(feature_cfg or {})},
        cache_dir=cache_dir,
        pretrained_filter_fn=weights_filter,
        kwargs_filter=("img_size",),  # timm passes the fixed input size; the subnet's resolution is the model's
        **kwargs,
    )
    return model.to(**placement) if placement else model


def configs_at_resolution(
    cfg: SubnetConfig, pretrained_cfg: dict[str, Any], resolution: int
) -> tuple[SubnetConfig, dict[str, Any]]:
    """``cfg`` at ``resolution`` (:func:`~supernet.resolution.subnet_at_resolution`) and ``pretrained_cfg`` with
    that resolution's ``input_size`` and ``pool_size``: the data is loaded at the resolution the model runs at.

    Raises:
        ValueError: the subnet cannot run at ``resolution`` (the message names the nearest that fit).
    """
    target = subnet_at_resolution(cfg, resolution)
    sizes = {key: value for key, value in subnet_pretrained_cfg(target).items() if key in ("input_size", "pool_size")}
    return target, {**pretrained_cfg, **sizes}


def subnet_pretrained_cfg(cfg: SubnetConfig, image_size: int | None = None, num_classes: int | None = None) -> dict:
    """timm's pretrained_cfg for ``cfg`` without recorded preprocessing: ImageNet mean and std, bicubic resize,
    centre crop of ``image_size`` (default: the subnet's resolution) at crop_pct 0.875, ``num_classes``
    (default: the space's), where the stem conv and the classifier are, and the fixed input size with the side of the
    last feature map (``pool_size``)."""
    size = cfg.resolution if image_size is None else image_size
    side = cfg.space.stage_sizes(cfg.resolution)[-1]
    return {
        "input_size": (cfg.space.in_channels, size, size),
        "fixed_input_size": True,
        "pool_size": (side, side),
        "interpolation": "bicubic",
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "crop_pct": DEFAULT_CROP_PCT,
        "crop_mode": "center",
        "num_classes": cfg.space.num_classes if num_classes is None else num_classes,
        **MODEL_PRETRAINED_CFG,
    }


def read_export(directory: str | os.PathLike) -> tuple[SubnetConfig, dict[str, Any]]:
    """The subnet of the export in ``directory`` and its timm pretrained_cfg (``file``: its weights).

    Raises:
        ValueError: ``directory`` holds no readable ``subnet.json`` with a valid ``subnet``, or its
            ``pretrained_cfg`` has entries timm does not know.
    """
    directory = Path(directory)
    description = read_export_description(directory)
    path = directory / SUBNET_FILE
    if "space" in description:
        cfg = SubnetConfig.from_string(
            description["subnet"], parse_space(description["space"], source=f"{path} (space)")
        )
    else:  # an export that does not carry its space names a shipped one
        cfg = load_subnet(description["subnet"])
    recorded = description.get("pretrained_cfg", {})
    if not isinstance(recorded, dict):
        raise ValueError(f"{path}: 'pretrained_cfg' is not a JSON object; export the model again")
    unknown = sorted(set(recorded) - _PRETRAINED_CFG_FIELDS)
    if unknown:
        raise ValueError(f"{path}: 'pretrained_cfg' has entries timm does not know ({unknown}); export the model again")
    image_size = description.get("bn_recalibration", {}).get("image_size")
    derived = subnet_pretrained_cfg(cfg, image_size, description.get("num_classes"))
    recorded = {key: tuple(value) if isinstance(value, list) else value for key, value in recorded.items()}
    return cfg, {**derived, **recorded, "file": str(directory / WEIGHTS_FILE)}


def read_export_description(directory: str | os.PathLike, need_weights: bool = False) -> dict[str, Any]:
    """The parsed ``subnet.json`` of an export directory (which must also hold the weights with ``need_weights``).

    Raises:
        ValueError: a file is missing, ``subnet.json`` is not JSON, or it has no ``subnet`` string.
    """
    directory = Path(directory)
    for name in (SUBNET_FILE, WEIGHTS_FILE) if need_weights else (SUBNET_FILE,):
        if not (directory / name).is_file():
            raise ValueError(
                f"{directory} is not an exported model: it has no {name} (make one with nasvit export, or pass "
                "subnet='<subnet string>' to timm)"
            )
    path = directory / SUBNET_FILE
    try:
        description = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); export the model again") from None
    if not isinstance(description, dict) or not isinstance(description.get("subnet"), str):
        raise ValueError(f"{path} has no 'subnet' string, so it is not an export description; export the model again")
    return description


def _square_side(name: str, img_size: int | tuple[int, int]) -> int:
    """The side of timm's ``img_size`` (an int, or a (height, width) pair of equal sides)."""
    if isinstance(img_size, int):
        return img_size
    if isinstance(img_size, (tuple, list)) and len(img_size) == 2 and img_size[0] == img_size[1]:
        return img_size[0]
    raise ValueError(f"{name} runs on square images; got img_size={img_size!r}, pass one side such as 224")


def _weights_at_resolution(state: dict[str, Any], model: NASViT, source: SubnetConfig) -> dict[str, Any]:
    """timm's ``pretrained_filter_fn``: weights of ``source`` made into ``model``'s (the same subnet at another
    resolution)."""
    return state_at_resolution(state, source, model.subnet_config)


def _source(subnet: str | None, export_dir: str | os.PathLike | None) -> tuple[SubnetConfig, dict[str, Any]]:
    if subnet is not None and export_dir is not None:
        raise ValueError(
            f"nasvit_subnet got both subnet={subnet!r} and export_dir={str(export_dir)!r}; pass one "
            "(an export's subnet.json holds its subnet)"
        )
    if export_dir is not None:
        return read_export(export_dir)
    cfg = named_subnet("nasvit_min") if subnet is None else load_subnet(subnet)
    return cfg, subnet_pretrained_cfg(cfg)


def _as_dict(pretrained_cfg: dict | PretrainedCfg | str | None, name: str) -> dict[str, Any]:
    if pretrained_cfg is None:
        return {}
    if isinstance(pretrained_cfg, PretrainedCfg):
        return pretrained_cfg.to_dict()
    if isinstance(pretrained_cfg, dict):
        return dict(pretrained_cfg)
    raise ValueError(
        f"{name} has no pretrained tags (got pretrained_cfg={pretrained_cfg!r}); pass export_dir=<export "
        "directory> to nasvit_subnet, or a pretrained_cfg dict"
    )


def _check_kwargs(name: str, kwargs: dict[str, Any], feature_cfg: dict | None) -> None:
    """Refuse arguments the model does not take (TypeError, as Python does) and feature options it cannot honour."""
    unknown = sorted(set(kwargs) - set(_MODEL_KWARGS) - set(_FEATURE_KWARGS))
    if unknown:
        sources = "subnet or export_dir, " if name == MODEL_NAME else ""
        raise TypeError(
            f"{name} does not take {unknown}; it takes {sources}pretrained, "
            f"{', '.join(_MODEL_KWARGS + _FEATURE_KWARGS)}, feature_cfg, pretrained_cfg, pretrained_cfg_overlay, "
            "device and dtype"
        )
    feature_keys = sorted({"out_indices", "feature_cls"} & set(kwargs))
    if feature_keys and not kwargs.get("features_only"):
        raise ValueError(f"{feature_keys} select feature maps; pass features_only=True with them")
    feature_cls = kwargs.get("feature_cls", (feature_cfg or {}).get("feature_cls"))
    if feature_cls in ("list", "dict") or (isinstance(feature_cls, type) and issubclass(feature_cls, FeatureDictNet)):
        raise ValueError(
            f"feature_cls={feature_cls!r} rebuilds the model from its children and would skip its input resize; "
            "pass feature_cls='getter' (the default) or 'hook'"
        )


def _check_weights(name: str, resolved: dict[str, Any], pretrained: bool) -> None:
    """Refuse ``pretrained=True`` without weights to load, before timm builds the model."""
    if not pretrained:
        return
    if not any(resolved.get(key) for key in _WEIGHT_SOURCES):
        raise ValueError(
            f"{name} has no hub weights: pretrained=True needs pretrained_cfg_overlay=dict(file=<model.safetensors "
            "of an export of this subnet>), or nasvit_subnet with export_dir=<directory of nasvit export>"
        )
    file = resolved.get("file")
    if file and not resolved.get("state_dict") and not Path(file).is_file():
        raise ValueError(
            f"pretrained=True, but the weights file {file} does not exist; export the model again (nasvit export) "
            "or pass pretrained_cfg_overlay=dict(file=<model.safetensors>)"
        )


default_cfgs = generate_default_cfgs({name: subnet_pretrained_cfg(named_subnet(name)) for name in NAMED_SUBNETS})


@register_model
def nasvit_min(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """The smallest subnet of the ``nasvit`` space at 192 px; timm's arguments as for ``nasvit_subnet``."""
    return _build_named("nasvit_min", pretrained, kwargs)


@register_model
def nasvit_max(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """The largest subnet of the ``nasvit`` space at 288 px; timm's arguments as for ``nasvit_subnet``."""
    return _build_named("nasvit_max", pretrained, kwargs)


def _build_named(name: str, pretrained: bool, kwargs: dict[str, Any]) -> nn.Module:
    cfg = named_subnet(name)
    return _build(name, cfg, subnet_pretrained_cfg(cfg), pretrained, kwargs)
