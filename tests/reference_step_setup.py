"""The fixed starting point of the reference-recipe step parity (``tests/test_reference_recipe_step.py``).

Shared by ``tools/reference_step_fixture.py`` (which maps it into the NASViT reference code and records the
reference's optimiser step) and the test (which rebuilds it without the reference code and runs ours). Everything
is a pure function of a seed and our parameter names, in float64 so that the two codes' updates agree far below
the tolerance:

- the weights of the supernet of ``fixtures/reference_step/space.yaml`` (the reference code's rules on fewer,
  narrower blocks, so that a float64 step takes seconds on a CPU; 100 classes), drawn per tensor from a generator
  seeded by (seed, name): no zero BN gammas, switchable scales of order 1, talking-head mixes far from identity;
- the batch (B, 3, 112, 112), between the two resolutions (each subnet resizes it, bicubic, as the reference's
  subnets resize its 224 px batches);
- two teachers' logits (B, 100), given as fixed tensors instead of teacher networks;
- ``optim.clip_grad`` 0.1 instead of the recipe's 1.0, so that the clip acts on this small net's gradient;
- AdamW's state before the step: ``step`` 100, ``exp_avg`` 0 and ``exp_avg_sq`` a recorded constant per tensor, of
  the order of the tensor's squared gradient. From a fresh state Adam's first update is about lr * sign(g), blind
  to the gradient's scale; with this state the update is nearly linear in g, so a wrong clip, scale or doubling
  shows in it.
"""

from __future__ import annotations

import math
import zlib
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace

import torch
from timm.optim import create_optimizer_v2
from torch import Tensor, nn

from nasvit.config.loading import load_config
from nasvit.config.train import TrainConfig
from nasvit.recipes.engine import TrainingEngine
from nasvit.recipes.teacher import TeacherEnsemble
from nasvit.recipes.train import TrainRecipe
from search_space import load_space
from supernet import Supernet

CONFIG = "configs/train/nasvit_reference.yaml"
FIXTURE_DIR = Path(__file__).parent / "fixtures" / "reference_step"
SPACE = FIXTURE_DIR / "space.yaml"
NUM_CLASSES = 100
BATCH = 2
IMAGE_SIZE = 112
LR = 1e-3
CLIP_GRAD = 0.1  # below the smaller subnets' gradient norm here (0.30), so that the clip acts; the recipe has 1.0
ADAM_STEP = 100
NORM_FLOOR = 1e-8  # update norms below this are rounding noise (real ones here are above 1e-5)
PROJECTIONS = 4  # random projections of the whole update recorded per case


def generator(seed: int, name: str) -> torch.Generator:
    """A generator seeded from (seed, name), so one tensor's values do not depend on the others'."""
    return torch.Generator().manual_seed(zlib.crc32(f"{seed}:{name}".encode()))


def filled_supernet(seed: int) -> Supernet:
    """The float64 supernet of ``SPACE`` with every tensor drawn from (seed, name), in train mode."""
    net = Supernet(load_space(SPACE), NUM_CLASSES).double()
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if tensor.dtype.is_floating_point:
                tensor.copy_(_value(name, tensor.shape, generator(seed, name)))
    return net.train()


def _value(name: str, shape: torch.Size, gen: torch.Generator) -> torch.Tensor:
    uniform = torch.rand(shape, generator=gen, dtype=torch.float64)
    normal = torch.randn(shape, generator=gen, dtype=torch.float64)
    leaf = name.rsplit(".", 1)[-1]
    if ".vectors." in name:  # switchable scales: of order 1, every vector different
        return 0.5 + uniform
    if leaf == "running_var":
        return 0.5 + uniform
    if leaf == "running_mean":
        return 0.2 * normal
    if leaf == "table":  # relative-position bias
        return 0.5 * normal
    if len(shape) == 1 and leaf == "weight":  # BN and LN gammas
        return 0.75 + 0.5 * uniform
    if len(shape) == 1:  # biases
        return 0.1 * normal
    fan_in = math.prod(shape[1:])
    return normal / math.sqrt(fan_in)  # talking heads: (h, h) with entries of order 1/sqrt(h), far from identity


def batch(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images (B, 3, 112, 112) and two teachers' logits (B, 100), float64."""
    images = torch.randn(BATCH, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator(seed, "images"), dtype=torch.float64)
    teachers = [
        2.0 * torch.randn(BATCH, NUM_CLASSES, generator=generator(seed, f"teacher{i}"), dtype=torch.float64)
        for i in range(2)
    ]
    return images, teachers[0], teachers[1]


def fill_adam_state(optimizer: torch.optim.Optimizer, params: dict[str, nn.Parameter], sq: dict[str, float]) -> None:
    """Give every parameter named in ``sq`` the AdamW state (step 100, exp_avg 0, exp_avg_sq sq[name])."""
    for name, value in sq.items():
        param = params[name]
        optimizer.state[param] = {
            "step": torch.tensor(float(ADAM_STEP)),
            "exp_avg": torch.zeros_like(param),
            "exp_avg_sq": torch.full_like(param, value),
        }


def update_signature(names: list[str], updates: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """A compact signature of a parameter update: the L2 norm per tensor (0 where unchanged, in ``names`` order)
    and ``PROJECTIONS`` random projections of the whole update (a seeded Gaussian direction per tensor)."""
    norms = torch.tensor([float(updates[n].norm()) if n in updates else 0.0 for n in names], dtype=torch.float64)
    projections = torch.zeros(PROJECTIONS, dtype=torch.float64)
    for name in names:
        if name in updates:
            update = updates[name].reshape(-1)
            direction = torch.randn(PROJECTIONS, update.numel(), generator=generator(seed, f"direction:{name}"))
            projections += direction.double() @ update
    return {"norms": norms, "projections": projections}


class _FixedLogits(nn.Module):
    """A teacher that answers every batch with the same logits."""

    def __init__(self, logits: Tensor):
        super().__init__()
        self.logits = logits

    def forward(self, images: Tensor) -> Tensor:
        return self.logits


def reference_config(seed: int, *overrides: str) -> TrainConfig:
    """The shipped reference recipe, on the CPU, for the test's space and clip."""
    settings = [f"seed={seed}", "device=cpu", f"space={SPACE}", f"optim.clip_grad={CLIP_GRAD}"]
    return load_config(TrainConfig, CONFIG, [*settings, *overrides])


def run_our_step(
    net: nn.Module,
    images: Tensor,
    teachers: list[Tensor],
    epoch: int,
    sq: dict[str, float],
    seed: int,
    step: int,
    config: TrainConfig | None = None,
) -> dict[str, Tensor]:
    """Our recipe's step ``step`` of epoch ``epoch`` on ``net`` (changed in place); our name -> update."""
    config = config or reference_config(seed)
    ensemble = TeacherEnsemble([_FixedLogits(t) for t in teachers], config.teacher.logit_scale)
    targets = ensemble(images).float().softmax(-1)  # as TrainingEngine._teacher_targets
    optim = config.optim
    optimizer = create_optimizer_v2(net, opt="adamw", lr=LR, weight_decay=optim.weight_decay, betas=optim.betas)
    params = dict(net.named_parameters())
    fill_adam_state(optimizer, params, sq)
    recipe = SimpleNamespace(
        config=config,
        net=net,
        space=net.space,
        ctx=SimpleNamespace(distributed=False),
        step=step,
        scaler=None,
        optimizer=optimizer,
        ema=None,
        nan_skips=0,
        _autocast=nullcontext,
        _scale_loss=lambda loss: loss,
    )
    before = {name: p.detach().clone() for name, p in params.items()}
    TrainRecipe._setup_step(recipe)
    TrainRecipe._start_epoch(recipe, epoch)
    result = TrainRecipe._compute_gradients(recipe, [(images, targets)], epoch)
    assert result.finite and result.clipped_norm is not None
    TrainingEngine._apply_gradients(recipe, result)
    updates = {name: p.detach() - before[name] for name, p in params.items()}
    return {name: update for name, update in updates.items() if update.abs().max() > 0}
