"""Record the NASViT reference code's logits for the parity test (``tests/test_reference_parity.py``).

Usage (the reference repository is not part of nasvit; DEVELOPERS.md says how to get it)::

    python tools/reference_fixtures.py --reference-dir /path/to/NASViT

It builds the reference supernet from its ``configs/cfg.yaml`` on the CPU, fills every tensor from a seed with
``tests/reference_fill.py``, and for the smallest, the largest and a few random subnets runs the reference's own
static subnet (``get_active_subnet``, eval mode) on a seeded batch. It writes ``tests/fixtures/reference/``:
``parity.json`` (the reference tensor names and shapes, the seed, the input, the subnet dicts) and ``logits.pt``
((subnets, batch, classes) float32). Nothing of the reference code is written.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.reference_fill import reference_fill, reference_input  # noqa: E402 - the repository root is on the path only now

FIXTURES = REPO / "tests" / "fixtures" / "reference"
INDEX_SUFFIX = "relative_position_index"


def build_reference(reference_dir: Path):
    """The reference supernet built from its config, on the CPU (its constructor prints the blocks: muted)."""
    sys.path.insert(0, str(reference_dir))
    import models  # the reference's packages
    from misc.config import _C

    config = _C.clone()
    config.merge_from_file(str(reference_dir / "configs" / "cfg.yaml"))
    with contextlib.redirect_stdout(io.StringIO()):
        return models.model_factory.create_model(config)


def fill(model: torch.nn.Module, seed: int) -> dict[str, list[int]]:
    """Load the seeded fill into ``model`` (its index buffers kept) and return the name -> shape list."""
    shapes = {name: list(tensor.shape) for name, tensor in model.state_dict().items()}
    weights = {k: v for k, v in reference_fill(shapes, seed).items() if not k.endswith(INDEX_SUFFIX)}
    result = model.load_state_dict(weights, strict=False)
    assert not result.unexpected_keys and all(k.endswith(INDEX_SUFFIX) for k in result.missing_keys), result
    return shapes


def subnets(model, seed: int, random_count: int) -> list[dict]:
    """Smallest, largest and ``random_count`` random subnets in the reference's dict form."""
    random.seed(seed)
    chosen = [model.sample_min_subnet(), model.sample_max_subnet()]
    chosen += [model.sample_active_subnet() for _ in range(random_count)]
    return [
        {key: cfg[key] for key in ("resolution", "width", "depth", "kernel_size", "expand_ratio")} for cfg in chosen
    ]


@torch.no_grad()
def static_logits(model, cfg: dict, images: torch.Tensor) -> torch.Tensor:
    """(B, classes) logits of the reference's own static subnet for ``cfg``, in eval mode."""
    model.set_active_subnet(**cfg)
    static = model.get_active_subnet().eval()  # built now: its transformer blocks are shared with the supernet
    return static(images)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-dir", required=True, type=Path, help="a checkout of facebookresearch/NASViT")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--random-subnets", type=int, default=4)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--out", type=Path, default=FIXTURES)
    args = parser.parse_args(argv)
    model = build_reference(args.reference_dir.resolve()).eval()
    shapes = fill(model, args.seed)
    images = reference_input(args.batch, args.image_size, args.seed)
    chosen = subnets(model, args.seed, args.random_subnets)
    logits = torch.stack([static_logits(model, cfg, images) for cfg in chosen])  # (subnets, B, classes)
    args.out.mkdir(parents=True, exist_ok=True)
    record = {
        "reference": "facebookresearch/NASViT@0472916, configs/cfg.yaml",
        "seed": args.seed,
        "input": {"batch": args.batch, "image_size": args.image_size, "seed": args.seed},
        "subnets": chosen,
        "shapes": shapes,
    }
    (args.out / "parity.json").write_text(_one_entry_a_line(record))
    torch.save(logits.contiguous(), args.out / "logits.pt")
    print(f"wrote {len(chosen)} subnets, {len(shapes)} tensor names, logits {tuple(logits.shape)} to {args.out}")


def _one_entry_a_line(record: dict) -> str:
    """JSON with one subnet and one tensor name per line (reviewable diffs, small file)."""
    lines = [json.dumps({k: v for k, v in record.items() if k not in ("subnets", "shapes")})[:-1] + ","]
    lines.append('"subnets": [\n' + ",\n".join(json.dumps(s) for s in record["subnets"]) + "\n],")
    shapes = ",\n".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in record["shapes"].items())
    lines.append('"shapes": {\n' + shapes + "\n}}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
