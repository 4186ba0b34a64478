"""Load and validate search-space YAML files; every problem is reported at once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from search_space.arithmetic import conv_out_size, window_grid
from search_space.errors import SpaceError, did_you_mean
from search_space.space import SearchSpace
from search_space.spec import (
    BlockKind,
    HeadSpec,
    NormKind,
    ScaleLayout,
    StageKind,
    StageSpec,
    StemSpec,
    TransformerSpec,
)
from search_space.subnet import SubnetConfig, space_name_of, subnet_dict

ACTIVATIONS = ("swish", "relu", "hswish", "gelu")
RESIZE_MODES = ("nearest", "bilinear", "bicubic")
SUPPORTED_WINDOWS = (1, 2, 4)

_TOP_KEYS = {
    "name": "str",
    "description": "str?",
    "in_channels": "int",
    "num_classes": "int",
    "resolutions": "ints",
    "resize_mode": "str",
    "activation": "str",
    "channel_divisor": "int",
    "se_reduction": "int",
    "stem": "map",
    "stages": "list",
    "head": "map",
    "transformer": "map",
}
_STEM_KEYS = {"kernel": "int", "stride": "int", "widths": "ints"}
_STAGE_KEYS = {
    "name": "str",
    "kind": "str",
    "stride": "int",
    "se": "bool",
    "widths": "ints",
    "depths": "ints",
    "kernels": "ints",
    "expand_ratios": "ints",
    "mlp_ratios": "ints?",
    "windows": "ints?",
    "block_kinds": "strs?",
    "group_sizes": "ints?",
}
_HEAD_KEYS = {"expand_ratio": "int", "widths": "ints", "dropout": "float"}
_TRANSFORMER_KEYS = {
    "head_dim": "int",
    "v_expansion": "int",
    "v_dwconv_kernel": "int",
    "mlp_dwconv": "bool",
    "norm": "str",
    "scale_layout": "str",
    "scale_init": "float",
    "position_bias_size": "int?",
    "norm_eps": "float",
}


PACKAGE_DIR = Path(__file__).resolve().parent


def config_dir(package: Path = PACKAGE_DIR) -> Path:
    """The ``configs/`` folder: ``$NASVIT_CONFIGS`` if set, else the part of it an installed wheel carries inside
    ``package`` (this one holds ``space/``, ``nasvit`` the recipe configs; see ``setup.py``), else the one beside the
    packages (a source checkout or an editable install)."""
    if "NASVIT_CONFIGS" in os.environ:
        return Path(os.environ["NASVIT_CONFIGS"])
    installed = package / "configs"
    return installed if installed.is_dir() else package.parent / "configs"


def available_spaces() -> list[str]:
    """Names of the spaces shipped in ``configs/space/``."""
    return sorted(p.stem for p in (config_dir() / "space").glob("*.yaml"))


_CACHE: dict[tuple[str, float], SearchSpace] = {}


def load_space(name_or_path: str | os.PathLike) -> SearchSpace:
    """Load a search space by name (a file in ``configs/space/``) or by path to a YAML file.

    Raises:
        SpaceError: unknown name, unreadable file, or every validation problem found in it.
    """
    path = space_file(str(name_or_path))
    key = (str(path), path.stat().st_mtime)
    if key not in _CACHE:
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise SpaceError(f"not valid YAML: {error}", source=str(path)) from None
        _CACHE[key] = parse_space(data, source=str(path))
    return _CACHE[key]


def load_subnet(subnet: str | dict[str, Any]) -> SubnetConfig:
    """A subnet string (``str(cfg)``), dict (``cfg.to_dict()``) or its JSON text, with the shipped space it names
    loaded by name.

    Raises:
        SpaceError: an unknown space, or what :meth:`SubnetConfig.from_string` / ``from_dict`` raise.
    """
    if isinstance(subnet, str) and not subnet.lstrip().startswith("{"):
        return SubnetConfig.from_string(subnet, load_space(space_name_of(subnet)))
    data = subnet_dict(subnet)
    return SubnetConfig.from_dict(data, load_space(data["space"]))


def space_file(name_or_path: str) -> Path:
    """Path of the YAML file for a space name or path; raises SpaceError naming the shipped spaces."""
    as_path = Path(name_or_path)
    if as_path.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        if not as_path.is_file():
            raise SpaceError(f"search-space file {name_or_path} does not exist")
        return as_path
    path = config_dir() / "space" / f"{name_or_path}.yaml"
    if not path.is_file():
        names = available_spaces()
        raise SpaceError(
            f"unknown search space '{name_or_path}'{did_you_mean(name_or_path, names)}; "
            f"shipped spaces are {names}, or pass a path to a YAML file"
        )
    return path


def parse_space(data: Any, source: str = "<dict>") -> SearchSpace:
    """Build a :class:`SearchSpace` from parsed YAML, collecting all problems before raising."""
    problems: list[str] = []
    sections = _checked_sections(data, problems)
    if problems:
        raise SpaceError(problems, source=source)
    space = _space_of(*sections, source=source)
    problems = _check_geometry(space) + _check_group_sizes(space)
    if problems:
        raise SpaceError(problems, source=source)
    return space


def _checked_sections(data: Any, problems: list[str]) -> tuple:
    """The top level, stem, head, transformer and stage mappings of a space file, every problem added to
    ``problems`` (usable only when none was)."""
    top = _section(data, "", _TOP_KEYS, problems)
    if top is None:
        return None, None, None, None, []
    stem = _section(top.get("stem"), "stem", _STEM_KEYS, problems)
    head = _section(top.get("head"), "head", _HEAD_KEYS, problems)
    transformer = _section(top.get("transformer"), "transformer", _TRANSFORMER_KEYS, problems)
    raw_stages = top.get("stages") if isinstance(top.get("stages"), list) else []
    if "stages" in top and not raw_stages:
        problems.append("stages: needs at least one stage")
    stages = [_section(s, f"stages[{i}]", _STAGE_KEYS, problems) for i, s in enumerate(raw_stages)]
    _check_choice(top, "activation", ACTIVATIONS, "", problems)
    _check_choice(top, "resize_mode", RESIZE_MODES, "", problems)
    if transformer is not None:
        _check_choice(transformer, "norm", [k.value for k in NormKind], "transformer.", problems)
        _check_choice(transformer, "scale_layout", [k.value for k in ScaleLayout], "transformer.", problems)
    for i, stage in enumerate(stages):
        if stage is not None:
            _check_stage(stage, f"stages[{i}] ({stage.get('name', '?')})", transformer or {}, problems)
    names = [s.get("name") for s in stages if s is not None]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        problems.append(f"stages: names must be unique, {duplicates} appear more than once")
    return top, stem, head, transformer, stages


def _space_of(top: dict, stem: dict, head: dict, transformer: dict, stages: list[dict], source: str) -> SearchSpace:
    """The space of checked sections (see :func:`_checked_sections`)."""
    return SearchSpace(
        name=top["name"],
        description=top.get("description", ""),
        in_channels=top["in_channels"],
        num_classes=top["num_classes"],
        resolutions=tuple(top["resolutions"]),
        resize_mode=top["resize_mode"],
        activation=top["activation"],
        channel_divisor=top["channel_divisor"],
        se_reduction=top["se_reduction"],
        stem=StemSpec(kernel=stem["kernel"], stride=stem["stride"], widths=tuple(stem["widths"])),
        stages=tuple(_stage_spec(s) for s in stages),
        head=HeadSpec(expand_ratio=head["expand_ratio"], widths=tuple(head["widths"]), dropout=head["dropout"]),
        transformer=TransformerSpec(
            head_dim=transformer["head_dim"],
            v_expansion=transformer["v_expansion"],
            v_dwconv_kernel=transformer["v_dwconv_kernel"],
            mlp_dwconv=transformer["mlp_dwconv"],
            norm=NormKind(transformer["norm"]),
            scale_layout=ScaleLayout(transformer["scale_layout"]),
            scale_init=float(transformer["scale_init"]),
            position_bias_size=transformer.get("position_bias_size"),
            norm_eps=float(transformer["norm_eps"]),
        ),
        source=source,
    )


def _stage_spec(stage: dict[str, Any]) -> StageSpec:
    return StageSpec(
        name=stage["name"],
        kind=StageKind(stage["kind"]),
        stride=stage["stride"],
        se=stage["se"],
        widths=tuple(stage["widths"]),
        depths=tuple(stage["depths"]),
        kernels=tuple(stage["kernels"]),
        expand_ratios=tuple(stage["expand_ratios"]),
        mlp_ratios=tuple(stage.get("mlp_ratios") or (1,)),
        windows=tuple(stage.get("windows") or (1,)),
        block_kinds=tuple(k for k in BlockKind if k.value in (stage.get("block_kinds") or [BlockKind.MBCONV.value])),
        group_sizes=tuple(stage.get("group_sizes") or (1,)),
    )


def _section(value: Any, where: str, schema: dict[str, str], problems: list[str]) -> dict[str, Any] | None:
    """Check keys and value types of one mapping; returns it when it can be used further."""
    label = where or "top level"
    prefix = f"{where}." if where else ""
    if not isinstance(value, dict):
        problems.append(f"{label}: expected a mapping, got {value!r}")
        return None
    usable = True
    for key in value:
        if key not in schema:
            problems.append(
                f"{prefix}{key}: unknown key{did_you_mean(str(key), schema)}; allowed keys are {sorted(schema)}"
            )
    for key, kind in schema.items():
        optional = kind.endswith("?")
        if key not in value:
            if not optional:
                problems.append(f"{prefix}{key}: missing (required)")
                usable = False
            continue
        message = _type_problem(value[key], kind.rstrip("?"), optional)
        if message:
            problems.append(f"{prefix}{key}: {message}")
            usable = False
    return value if usable else None


def _type_problem(value: Any, kind: str, optional: bool) -> str | None:
    if value is None and optional:
        return None
    if kind == "str" and not isinstance(value, str):
        return f"expected a string, got {value!r}"
    if kind == "bool" and not isinstance(value, bool):
        return f"expected true or false, got {value!r}"
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        return f"expected a positive integer, got {value!r}"
    if kind == "float" and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
        return f"expected a non-negative number, got {value!r}"
    if kind == "ints":
        if not isinstance(value, list) or not value:
            return f"expected a non-empty list of positive integers, got {value!r}"
        if any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in value):
            return f"expected positive integers, got {value!r}"
        if sorted(set(value)) != value:
            return f"choices must be unique and ascending, got {value!r}; write {sorted(set(value))}"
    if kind == "strs":
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            return f"expected a non-empty list of strings, got {value!r}"
        if len(set(value)) != len(value):
            return f"choices must be unique, got {value!r}"
    return None


def _check_choice(section: dict[str, Any], key: str, allowed, prefix: str, problems: list[str]) -> None:
    value = section.get(key)
    if isinstance(value, str) and value not in allowed:
        problems.append(f"{prefix}{key}: {value!r} is not one of {list(allowed)}{did_you_mean(value, allowed)}")


def _check_stage(stage: dict[str, Any], where: str, transformer: dict[str, Any], problems: list[str]) -> None:
    kinds = [k.value for k in StageKind]
    kind = stage["kind"]
    if kind not in kinds:
        problems.append(f"{where}.kind: {kind!r} is not one of {kinds}{did_you_mean(kind, kinds)}")
        return
    name = stage["name"]
    if not name.replace("_", "").isalnum():
        problems.append(f"{where}.name: {name!r} must be letters, digits and '_' only")
    if any(k % 2 == 0 for k in stage["kernels"]):
        problems.append(f"{where}.kernels: kernels must be odd, got {stage['kernels']}")
    _check_block_kinds(stage, where, problems)
    if kind == StageKind.CONV.value:
        for key in ("mlp_ratios", "windows"):
            if key in stage:
                problems.append(
                    f"{where}.{key}: only transformer stages have {key}; remove it or set kind: transformer"
                )
        return
    windows = stage.get("windows") or [1]
    if isinstance(windows, list) and any(w not in SUPPORTED_WINDOWS for w in windows):
        problems.append(f"{where}.windows: {windows} has values outside the supported {list(SUPPORTED_WINDOWS)}")
    head_dim = transformer.get("head_dim")
    if isinstance(head_dim, int) and any(w % head_dim for w in stage["widths"]):
        problems.append(f"{where}.widths: {stage['widths']} must all be multiples of transformer.head_dim={head_dim}")


def _check_block_kinds(stage: dict[str, Any], where: str, problems: list[str]) -> None:
    kinds = [k.value for k in BlockKind]
    for kind in stage.get("block_kinds") or []:
        if kind not in kinds:
            problems.append(f"{where}.block_kinds: {kind!r} is not one of {kinds}{did_you_mean(kind, kinds)}")
    if BlockKind.MBCONV.value not in (stage.get("block_kinds") or kinds) and (stage.get("group_sizes") or [1]) != [1]:
        problems.append(
            f"{where}.group_sizes: {stage['group_sizes']} set, but group sizes apply to mbconv blocks and "
            f"block_kinds is {stage['block_kinds']}; add mbconv to block_kinds or remove group_sizes"
        )


def _check_group_sizes(space: SearchSpace) -> list[str]:
    """Every group size must divide the widths an MBConv block's spatial conv meets. An expanded width is rounded to a
    multiple of the group size (:func:`~search_space.arithmetic.spatial_channels`), but with expand ratio 1 the
    conv runs on the block's input width itself."""
    problems = []
    in_widths = space.stem.widths
    for stage in space.stages:
        widths = set(in_widths)
        if not stage.is_transformer and max(stage.depths) > 1:
            widths |= set(stage.widths)  # the input of every block after the first
        for group_size in stage.group_sizes if BlockKind.MBCONV in stage.block_kinds else ():
            bad = sorted(w for w in widths if w % group_size)
            if 1 in stage.expand_ratios and bad:
                problems.append(
                    f"stage {stage.name}: group size {group_size} does not divide the widths {bad} that the spatial "
                    f"conv of an expand-ratio-1 block runs on (it meets {sorted(widths)}); use group sizes dividing "
                    "them, or drop expand ratio 1"
                )
        in_widths = stage.widths
    return problems


def _check_geometry(space: SearchSpace) -> list[str]:
    """Feature maps must stay non-empty, and windows must tile every map they are used on."""
    problems = []
    for resolution in space.resolutions:
        size = conv_out_size(resolution, space.stem.kernel, space.stem.stride)
        for stage in space.stages:
            for kernel in stage.kernels:
                if conv_out_size(size, kernel, stage.stride) < 1:
                    problems.append(f"resolution {resolution}: stage {stage.name} has an empty feature map")
            size = conv_out_size(size, stage.kernels[0], stage.stride)
            for windows in stage.windows:
                rows, cols = window_grid(windows)
                if windows > 1 and (size % rows or size % cols):
                    problems.append(
                        f"stage {stage.name}: windows={windows} needs a token map divisible by {rows}x{cols}, "
                        f"but resolution {resolution} gives {size}x{size}; drop that resolution or window choice"
                    )
            bias = space.transformer.position_bias_size
            if stage.is_transformer and bias is not None and size > bias:
                problems.append(
                    f"transformer.position_bias_size: {bias} is smaller than stage {stage.name}'s {size}x{size} "
                    f"token map at resolution {resolution}; use at least {size} or leave it out"
                )
    return sorted(set(problems), key=problems.index)
