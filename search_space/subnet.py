"""``SubnetConfig``: one choice per gene of a search space; frozen, hashable, validated, serialisable.

String form (one line, readable in a log)::

    nasvit:r224:stem16:s1-w16-d1-k3-e1:...:s4-w64-d3-k3-e4-m1-win1:...:head1792

Fields of a stage token: ``w`` width, ``d`` depth, ``k`` kernel, ``e`` expand ratio, for transformer stages
``m`` MLP ratio and ``win`` number of attention windows, and last, for stages that offer block choices, the block:
``g{G}`` (MBConv whose spatial conv has G channels per group; ``g1`` is depthwise) or ``fused`` (Fused-MBConv), as in
``s2-w24-d3-k3-e4-fused``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from search_space.errors import SpaceError
from search_space.spec import DEPTHWISE_BLOCK, FUSED_BLOCK, SpaceDefinition, StageSpec

_STAGE_FIELDS = (("w", "width"), ("d", "depth"), ("k", "kernel"), ("e", "expand_ratio"))
_TRANSFORMER_FIELDS = (("m", "mlp_ratio"), ("win", "windows"))
_STAGE_TOKEN = re.compile(r"^(?P<name>[A-Za-z0-9_]+)((-[a-z]+\d+)+)(-fused)?$")


@dataclass(frozen=True)
class StageChoice:
    """The choices of one stage. ``mlp_ratio`` and ``windows`` are 1 for conv stages; ``block`` is the kind of its
    MBConv blocks, a code of :func:`~search_space.spec.block_code` (``g1``: depthwise MBConv, ``g8``: MBConv with
    8 channels per group, ``fused``: Fused-MBConv)."""

    width: int
    depth: int
    kernel: int
    expand_ratio: int
    mlp_ratio: int = 1
    windows: int = 1
    block: str = DEPTHWISE_BLOCK


@dataclass(frozen=True)
class SubnetConfig:
    """A subnet of a search space: a value, validated against its space when made; it never reads a file.

    Construct through :class:`~search_space.space.SearchSpace` (``max_subnet``, ``sample``, ...),
    :meth:`from_string` or :meth:`from_dict` (or :func:`search_space.load_subnet`, which loads the space the
    string names); direct construction validates against ``space`` too.

    Raises:
        SpaceError: listing every value that is not allowed by the space.
    """

    space: SpaceDefinition = field(compare=False, repr=False)
    resolution: int
    stem_width: int
    stages: tuple[StageChoice, ...]
    head_width: int
    space_name: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "space_name", self.space.name)
        object.__setattr__(self, "stages", tuple(self.stages))
        problems = subnet_problems(self)
        if problems:
            raise SpaceError(problems, source=f"subnet of space '{self.space.name}'")

    def __str__(self) -> str:
        tokens = [self.space_name, f"r{self.resolution}", f"stem{self.stem_width}"]
        for spec, choice in zip(self.space.stages, self.stages):
            fields = "".join(f"-{key}{getattr(choice, attr)}" for key, attr in _fields(spec))
            tokens.append(spec.name + fields + (f"-{choice.block}" if spec.has_block_choice else ""))
        tokens.append(f"head{self.head_width}")
        return ":".join(tokens)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``{"space", "resolution", "stem_width", "stages": {name: {...}}, "head_width"}``."""
        stages = {}
        for spec, choice in zip(self.space.stages, self.stages):
            stages[spec.name] = {attr: getattr(choice, attr) for attr in _attributes(spec)}
        return {
            "space": self.space_name,
            "resolution": self.resolution,
            "stem_width": self.stem_width,
            "stages": stages,
            "head_width": self.head_width,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def replace(self, **changes: Any) -> SubnetConfig:
        """A copy with some top-level fields changed (``resolution=...``), validated."""
        values = {
            "resolution": self.resolution,
            "stem_width": self.stem_width,
            "stages": self.stages,
            "head_width": self.head_width,
        }
        unknown = sorted(set(changes) - set(values))
        if unknown:
            raise SpaceError(f"cannot replace {unknown}; replaceable fields are {sorted(values)}")
        values.update(changes)
        return SubnetConfig(self.space, **values)

    @classmethod
    def from_string(cls, text: str, space: SpaceDefinition) -> SubnetConfig:
        """Parse the one-line form written by ``str(cfg)``.

        Args:
            text: the subnet string.
            space: the space to validate against; it must be the one the string names.

        Raises:
            SpaceError: malformed string, or values not allowed by the space.
        """
        tokens = text.strip().split(":")
        if len(tokens) < 4:
            raise SpaceError(
                f"malformed subnet string {text!r}: expected 'SPACE:rRES:stemW:<stage tokens>:headW' "
                "(print one with: nasvit flops --space SPACE --arch max)"
            )
        _check_space_name(tokens[0], space)
        stage_tokens = tokens[3:-1]
        problems = []
        resolution = _int_after(tokens[1], "r", problems)
        stem_width = _int_after(tokens[2], "stem", problems)
        head_width = _int_after(tokens[-1], "head", problems)
        names = [spec.name for spec in space.stages]
        if [t.split("-", 1)[0] for t in stage_tokens] != names:
            problems.append(f"expected stage tokens for {names} in that order, got {stage_tokens}")
        if problems:
            raise SpaceError(problems, source=f"subnet string {text!r}")
        stages = tuple(_parse_stage(token, spec) for token, spec in zip(stage_tokens, space.stages))
        return cls(space, resolution=resolution, stem_width=stem_width, stages=stages, head_width=head_width)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | str, space: SpaceDefinition) -> SubnetConfig:
        """Inverse of :meth:`to_dict`; also accepts a JSON string. ``space`` must be the one ``data`` names.

        Raises:
            SpaceError: missing or unknown keys, or values not allowed by the space.
        """
        data = subnet_dict(data)
        _check_space_name(data["space"], space)
        names = [spec.name for spec in space.stages]
        if list(data["stages"]) != names:
            raise SpaceError(f"subnet dict: expected stages {names} in that order, got {list(data['stages'])}")
        stages = []
        for spec in space.stages:
            entry = dict(data["stages"][spec.name])
            allowed = set(_attributes(spec))
            if set(entry) != allowed:
                raise SpaceError(f"stage {spec.name}: expected keys {sorted(allowed)}, got {sorted(entry)}")
            stages.append(StageChoice(**entry))
        return cls(
            space,
            resolution=data["resolution"],
            stem_width=data["stem_width"],
            stages=tuple(stages),
            head_width=data["head_width"],
        )


def subnet_dict(data: dict[str, Any] | str) -> dict[str, Any]:
    """``data`` (a dict or its JSON text) checked to have exactly the keys of :meth:`SubnetConfig.to_dict`.

    Raises:
        SpaceError: missing or unknown keys.
    """
    if isinstance(data, str):
        data = json.loads(data)
    required = {"space", "resolution", "stem_width", "stages", "head_width"}
    missing, unknown = sorted(required - set(data)), sorted(set(data) - required)
    if missing or unknown:
        raise SpaceError(f"subnet dict: missing keys {missing}, unknown keys {unknown}; expected {sorted(required)}")
    return data


def space_name_of(text: str) -> str:
    """The space a subnet string names (its first token)."""
    return text.strip().split(":", 1)[0]


def subnet_problems(cfg: SubnetConfig) -> list[str]:
    """Every value of ``cfg`` that its space does not allow, as messages (empty when valid)."""
    space, problems = cfg.space, []
    _check_value(problems, "resolution", cfg.resolution, space.resolutions)
    _check_value(problems, "stem: width", cfg.stem_width, space.stem.widths)
    if len(cfg.stages) != len(space.stages):
        names = [s.name for s in space.stages]
        return [*problems, f"expected {len(space.stages)} stages {names}, got {len(cfg.stages)}"]
    for spec, choice in zip(space.stages, cfg.stages):
        where = f"stage {spec.name}"
        _check_value(problems, f"{where}: width", choice.width, spec.widths)
        _check_value(problems, f"{where}: depth", choice.depth, spec.depths)
        _check_value(problems, f"{where}: kernel", choice.kernel, spec.kernels)
        _check_value(problems, f"{where}: expand ratio", choice.expand_ratio, spec.expand_ratios)
        _check_value(problems, f"{where}: mlp ratio", choice.mlp_ratio, spec.mlp_ratios)
        _check_value(problems, f"{where}: windows", choice.windows, spec.windows)
        if choice.block not in spec.block_codes:
            problems.append(f"{where}: block {choice.block!r} is not one of {list(spec.block_codes)}")
    _check_value(problems, "head: width", cfg.head_width, space.head.widths)
    return problems


def _check_value(problems: list[str], where: str, value, allowed) -> None:
    if type(value) is not int:  # 32.0 == 32 and True == 1 would pass the membership test
        problems.append(f"{where} {value!r} is not a whole number; use one of {list(allowed)}")
    elif value not in allowed:
        problems.append(f"{where} {value} is not one of {list(allowed)}")


def _check_space_name(name: str, space: SpaceDefinition) -> None:
    if space.name != name:
        raise SpaceError(f"subnet belongs to space '{name}', not to '{space.name}'; load space '{name}' instead")


def _int_after(token: str, prefix: str, problems: list[str]) -> int:
    if token.startswith(prefix) and token[len(prefix) :].isdigit():
        return int(token[len(prefix) :])
    problems.append(f"expected '{prefix}<int>', got {token!r}")
    return -1


def _fields(spec: StageSpec) -> tuple[tuple[str, str], ...]:
    """(token key, attribute) of the numeric fields of a stage's token."""
    return _STAGE_FIELDS + (_TRANSFORMER_FIELDS if spec.is_transformer else ())


def _attributes(spec: StageSpec) -> list[str]:
    """The :class:`StageChoice` attributes a subnet of ``spec``'s space states for the stage."""
    return [attr for _, attr in _fields(spec)] + (["block"] if spec.has_block_choice else [])


def _parse_stage(token: str, spec: StageSpec) -> StageChoice:
    match = _STAGE_TOKEN.match(token)
    if match is None:
        raise SpaceError(f"stage token {token!r} is malformed; expected e.g. {_example_token(spec)}")
    fused = match.group(4) is not None
    values = dict(re.findall(r"-([a-z]+)(\d+)", match.group(2)))
    group = values.pop("g", None) if spec.has_block_choice else None
    expected = [key for key, _ in _fields(spec)]
    blocks = 1 if spec.has_block_choice else 0
    if (
        sorted(values) != sorted(expected)
        or len(values) + (group is not None) + fused != token.count("-")
        or ((group is not None) + fused != blocks)
    ):
        block = " and the block (g<group size> or fused)" if blocks else ""
        raise SpaceError(
            f"stage token {token!r} needs exactly the fields {expected}{block}; e.g. {_example_token(spec)}"
        )
    block = FUSED_BLOCK if fused else f"g{int(group)}" if group is not None else DEPTHWISE_BLOCK
    return StageChoice(**{attr: int(values[key]) for key, attr in _fields(spec)}, block=block)


def _example_token(spec: StageSpec) -> str:
    text = f"{spec.name}-w{spec.widths[0]}-d{spec.depths[0]}-k{spec.kernels[0]}-e{spec.expand_ratios[0]}"
    text += f"-m{spec.mlp_ratios[0]}-win{spec.windows[0]}" if spec.is_transformer else ""
    return text + (f"-{spec.block_codes[0]}" if spec.has_block_choice else "")
