"""Convert a NASViT reference checkpoint into a nasvit supernet checkpoint of the ``nasvit_official`` space.

The result is read by ``nasvit search``, ``export`` and ``finetune`` like a checkpoint of ``nasvit train``: format
:data:`nasvit.runtime.checkpoint.FORMAT`, ``model`` (the raw weights), ``ema`` (the reference's EMA, which it evaluates;
None when the file has one set of weights), ``space``, ``num_classes``, and a ``config`` without data settings
(the user names the data). ``provenance`` keeps where it came from, including the reference's config as plain
data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nasvit.reference.loading import ReferenceCheckpoint, ReferenceCheckpointError, load_reference
from nasvit.reference.mapping import MappedWeights, map_reference, reference_num_classes
from nasvit.runtime import checkpoint, run_directory
from search_space import SearchSpace, load_space, space_fingerprint, space_to_dict
from supernet import Supernet

OFFICIAL_SPACE = "nasvit_official"
OFFICIAL_FINGERPRINT = "07bc9e58d44af449"  # the space the map was verified for against the reference code
REFERENCE = "facebookresearch/NASViT@0472916"


@dataclass(frozen=True)
class Conversion:
    """A converted checkpoint (``payload``) and what was done: weight entries used, dropped counts, epoch."""

    payload: dict[str, Any]
    model_entry: str
    ema_entry: str | None
    dropped: dict[str, int]
    used: int
    epoch: int | None


def official_space() -> SearchSpace:
    """The shipped ``nasvit_official`` space, checked to be the one the map was verified for.

    Raises:
        ReferenceCheckpointError: the space file was changed since.
    """
    space = load_space(OFFICIAL_SPACE)
    if space_fingerprint(space) != OFFICIAL_FINGERPRINT:
        raise ReferenceCheckpointError(
            f"space {OFFICIAL_SPACE} ({space.source}) has fingerprint {space_fingerprint(space)}, not "
            f"{OFFICIAL_FINGERPRINT}: it was edited and no longer equals the reference code's space; restore the file"
        )
    return space


def convert_reference(path: str | Path) -> Conversion:
    """Read, check and map a reference checkpoint (see :mod:`nasvit.reference`).

    Raises:
        ReferenceCheckpointError: unreadable, unsafe or foreign file, or a config of another space.
        ReferenceMappingError: weights that do not map strictly onto ``nasvit_official``.
    """
    reference = load_reference(path)
    space = official_space()
    _check_config(reference, space, path)
    model_entry = next(name for name in ("model", "state_dict", "model_ema") if name in reference.weights)
    ema_entry = "model_ema" if "model_ema" in reference.weights and model_entry != "model_ema" else None
    num_classes = reference_num_classes(reference.weights[model_entry])
    with torch.device("meta"):  # names, shapes and dtypes only: nothing allocated or initialised
        target = Supernet(space, num_classes).state_dict()
    model = map_reference(reference.weights[model_entry], target, space)
    ema = map_reference(reference.weights[ema_entry], target, space) if ema_entry else None
    provenance = _provenance(path, reference, model_entry, ema_entry, model)
    state = checkpoint.TrainingState(
        model=model.state,
        ema=ema.state if ema else None,
        epoch=reference.epoch,
        config={},
        num_classes=num_classes,
        extras={"space": space_to_dict(space), "provenance": provenance},
    )
    payload = state.to_payload()
    return Conversion(payload, model_entry, ema_entry, model.dropped, model.used, reference.epoch)


def write_converted(conversion: Conversion, out: str | Path) -> Path:
    """Write the converted checkpoint atomically (a reader never sees a partial file)."""
    return checkpoint.save_atomic(conversion.payload, out)


def _provenance(
    path: str | Path, reference: ReferenceCheckpoint, model_entry: str, ema_entry: str | None, mapped: MappedWeights
) -> dict[str, Any]:
    return {
        "converted_from": str(path),
        "sha256": run_directory.file_digest(path),
        "reference_code": REFERENCE,
        "weights": {"model": model_entry, "ema": ema_entry},
        "epoch": reference.epoch,
        "max_accuracy": reference.max_accuracy,
        "reference_tensors_used": mapped.used,
        "dropped": mapped.dropped,
        "space_fingerprint": OFFICIAL_FINGERPRINT,
        "reference_config": reference.config,
    }


def _check_config(reference: ReferenceCheckpoint, space: SearchSpace, path: str | Path) -> None:
    """The reference config's ``supernet_config`` must list the space's choices (absent: shapes check it alone)."""
    supernet = (reference.config or {}).get("supernet_config")
    if not isinstance(supernet, dict):
        return
    expected: dict[str, Any] = {"resolutions": list(space.resolutions), "first_conv.c": list(space.stem.widths)}
    for index, spec in enumerate(space.stages, start=1):
        expected[f"mb{index}.c"], expected[f"mb{index}.d"] = list(spec.widths), list(spec.depths)
        expected[f"mb{index}.k"], expected[f"mb{index}.t"] = list(spec.kernels), list(spec.expand_ratios)
        expected[f"mb{index}.s"], expected[f"mb{index}.se"] = spec.stride, spec.se
    expected["last_conv.c"] = list(space.head.widths)
    differences = []
    for dotted, value in expected.items():
        section, _, leaf = dotted.rpartition(".")
        found = (supernet.get(section) or {}).get(leaf) if section else supernet.get(leaf)
        if found != value:
            differences.append(f"{dotted}={found!r} ({space.name}: {value!r})")
    if differences:
        raise ReferenceCheckpointError(
            f"{path}: its supernet_config is not the released NASViT space: {'; '.join(differences[:4])}; "
            f"only checkpoints of the reference's own configs/cfg.yaml space convert to {space.name}"
        )
