"""Record one optimiser step of the NASViT reference code for the recipe parity test
(``tests/test_reference_recipe_step.py``).

Usage (the reference repository is not part of nasvit; DEVELOPERS.md says how to get it; its CUDA calls are
replaced by no-ops at run time, nothing in it is modified)::

    python tools/reference_step_fixture.py --reference-dir /path/to/NASViT

It fills our supernet of ``tests/fixtures/reference_step/space.yaml`` (the reference's rules on fewer, narrower
blocks) from a seed (``tests/reference_step_setup.py``), builds the reference supernet of the same space (its
``configs/cfg.yaml`` with the space's choice lists) in float64 on the CPU, copies those weights into it by name,
and runs the reference's own ``train_one_epoch`` (its ``main.py``) on one batch: its largest subnet on the two
teachers' averaged softmax(5 x logits), its smallest and two random subnets (the ones our recipe samples at that
seed and step, given as its dicts) on ``AdaptiveLossSoft(-1, 1)``, its clipping, and its ``Constraint`` optimiser
over AdamW (state filled as the setup module says). A first run records the gradients that size AdamW's state; then
it runs before and after its epoch-100 switch, and writes ``tests/fixtures/reference_step/``: ``step.json`` (seed,
step, lr, clip, subnets, epochs) and ``step.pt`` (our tensor names, the AdamW ``exp_avg_sq`` constants, and per case
the signature of the update: per-tensor norms, random projections, and a few small tensors in full). Nothing of the
reference code is written. With ``--check`` it also runs our step and prints the largest relative differences.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import sys
import types
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from nasvit.reference.mapping import sources  # noqa: E402 - the repository root is on the path only now
from nasvit.reference.subnet import to_reference  # noqa: E402
from supernet.training.sandwich import sample_subnets  # noqa: E402
from tests import reference_step_setup as setup  # noqa: E402

SMALL_TENSORS = (  # recorded in full, with the first two scale vectors that changed
    "stages.3.1.attn.talk_pre.weight",
    "stages.2.0.se.reduce.bias",
    "head.classifier.bias",
)
SQ_FLOOR = 1e-12
EPOCHS = (100, 101)  # the last epoch that sums the gradients, the first that scales the subnets' gradient


def reference_names(net: torch.nn.Module) -> dict[str, tuple[str, tuple[int, int] | None]]:
    """Our tensor name -> the reference tensor it maps to and, for a scale vector, its (depth, tokens mod 8) row
    (the map ``nasvit convert-reference`` uses, :func:`nasvit.reference.mapping.sources`)."""
    return {name: (source.key, source.row) for name, source in sources(net.space, list(net.state_dict())).items()}


def import_reference(reference_dir: Path) -> types.ModuleType:
    """The reference's ``main`` module, CPU-only: its data module (unused here, and not importable with a current
    timm) is stubbed, and the CUDA calls of its training loop become no-ops."""
    sys.path.insert(0, str(reference_dir))
    sys.modules.setdefault("data", types.SimpleNamespace(build_loader=None))
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    torch.cuda.synchronize = lambda *args, **kwargs: None
    torch.cuda.max_memory_allocated = lambda *args, **kwargs: 0
    import main

    return main


def reference_model(main: types.ModuleType, reference_dir: Path, net: torch.nn.Module):
    """The reference supernet of ``configs/cfg.yaml`` with ``net``'s search space, in float64, holding ``net``'s
    weights; and its config."""
    from misc.config import _C  # the reference's

    config = _C.clone()
    config.merge_from_file(str(reference_dir / "configs" / "cfg.yaml"))
    config.defrost()
    config.n_classes = setup.NUM_CLASSES
    space = net.space
    supernet = config.supernet_config
    supernet.resolutions = list(space.resolutions)
    supernet.first_conv.c = list(space.stem.widths)
    for i, stage in enumerate(space.stages):
        block = supernet[f"mb{i + 1}"]
        block.c, block.d, block.k = list(stage.widths), list(stage.depths), list(stage.kernels)
        block.t, block.s, block.se = list(stage.expand_ratios), stage.stride, stage.se
    supernet.last_conv.c = list(space.head.widths)
    with contextlib.redirect_stdout(io.StringIO()):
        model = main.models.model_factory.create_model(config).double()
    state = model.state_dict()
    references = reference_names(net)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            target, row = references[name]
            view = state[target][row] if row else state[target]
            assert view.shape == tensor.shape, (name, target, tuple(view.shape), tuple(tensor.shape))
            view.copy_(tensor)
    return model, config


class _Wrapped(torch.nn.Module):
    """Stands in for DistributedDataParallel: ``.module`` is the model, calls go to it."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.module = model

    def forward(self, x):
        return self.module(x)


class _FixedLogits(torch.nn.Module):
    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits

    def forward(self, images):
        return self.logits


def reference_step(
    main, reference_dir, net, images, teachers, subnets, epoch, sq, gradients=None
) -> dict[str, torch.Tensor]:
    """Run the reference's ``train_one_epoch`` on one batch; returns our name -> update of every changed tensor.

    With a dict ``gradients``, it receives our name -> the gradient AdamW was given, for every non-zero one.
    """
    model, config = reference_model(main, reference_dir, net)
    config.defrost()
    config.TRAIN.BASE_LR = setup.LR  # as _setup_worker_env leaves it after linear scaling
    config.TRAIN.CLIP_GRAD = setup.CLIP_GRAD
    config.PRINT_FREQ = 10**9
    config.freeze()
    references = reference_names(net)
    params = dict(model.named_parameters())
    optimizer = _reference_optimizer(main, config, model, epoch, sq, references)
    if gradients is not None:
        _record_gradients(optimizer, list(dict(net.named_parameters())), references, params, gradients)
    before = {name: p.detach().clone() for name, p in params.items()}
    randoms = [dict(cfg) for cfg in subnets[2:]]
    model.sample_active_subnet = lambda: _activate(model, randoms.pop(0))
    labels = torch.zeros(images.shape[0], dtype=torch.long)
    scheduler = types.SimpleNamespace(step_update=lambda *args: None)
    loss = main.SoftTargetCrossEntropy()  # what main_worker picks: AUG.MIXUP > 0
    fixed = [_FixedLogits(t) for t in teachers]
    main.train_one_epoch(
        config, _Wrapped(model), loss, [(images, labels)], optimizer, epoch, None, scheduler, fixed, None, None
    )
    assert not randoms, "the reference drew another number of random subnets"
    updates = {}
    for name in dict(net.named_parameters()):
        target, row = references[name]
        delta = params[target].detach() - before[target]
        delta = delta[row] if row else delta
        if delta.abs().max() > 0:
            updates[name] = delta
    return updates


def _reference_optimizer(main, config, model, epoch: int, sq: dict[str, float], references: dict):
    """The reference's ``Constraint`` optimiser for ``model``, switched as ``main_worker`` does at ``epoch``, its AdamW
    state filled: ``exp_avg_sq`` the constant ``sq[name]`` of each of our tensors (one elsewhere), ``exp_avg`` 0."""
    optimizer = main.build_optimizer(config, model)
    if epoch > 100:  # main_worker's switch
        optimizer.proj_student = False
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in sq.items():
            target, row = references[name]
            state = optimizer.base_optimizer.state[params[target]]
            if not state:
                state.update(
                    step=torch.tensor(float(setup.ADAM_STEP)),
                    exp_avg=torch.zeros_like(params[target]),
                    exp_avg_sq=torch.ones_like(params[target]),  # rows and slices no subnet uses never change
                )
            (state["exp_avg_sq"][row] if row else state["exp_avg_sq"]).fill_(value)
    return optimizer


def _record_gradients(optimizer, names: list[str], references: dict, params: dict, gradients: dict) -> None:
    """Make the AdamW step first copy into ``gradients`` the non-zero gradient it is given for each of ``names``."""
    base_step = optimizer.base_optimizer.step

    def capture(*args, **kwargs):
        for name in names:
            target, row = references[name]
            grad = params[target].grad
            grad = None if grad is None else (grad[row] if row else grad)
            if grad is not None and grad.abs().max() > 0:
                gradients[name] = grad.detach().clone()
        return base_step(*args, **kwargs)

    optimizer.base_optimizer.step = capture


def _activate(model, cfg: dict) -> dict:
    model.set_active_subnet(**cfg)
    return cfg


def our_step(net, images, teachers, subnets, epoch, sq, seed, step) -> dict[str, torch.Tensor]:
    """Our reference-recipe step, as the test runs it (imported here for ``--check``)."""
    from tests.reference_step_setup import run_our_step

    return run_our_step(net, images, teachers, epoch, sq, seed, step)


def main_cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-dir", required=True, type=Path, help="a checkout of facebookresearch/NASViT")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--step", type=int, default=0, help="the step whose random subnets are used")
    parser.add_argument("--out", type=Path, default=setup.FIXTURE_DIR)
    parser.add_argument("--check", action="store_true", help="also run our step and print the differences")
    args = parser.parse_args(argv)
    reference_dir = args.reference_dir.resolve()
    main = import_reference(reference_dir)
    net = setup.filled_supernet(args.seed)
    images, *teachers = setup.batch(args.seed)
    subnets = [cfg for _, cfg in sample_subnets(net, args.seed, args.step, 2)]
    dicts = [to_reference(cfg) for cfg in subnets]
    gradients: dict[str, torch.Tensor] = {}
    reference_step(main, reference_dir, copy.deepcopy(net), images, teachers, dicts, EPOCHS[0], {}, gradients)
    # of the order of g^2; the floor keeps tensors whose gradient is rounding noise (k biases, talking-head biases
    # before the softmax: the softmax ignores them) at a negligible update
    sq = {name: max(float(grad.square().mean()), SQ_FLOOR) for name, grad in gradients.items()}
    cases = {
        str(epoch): reference_step(main, reference_dir, copy.deepcopy(net), images, teachers, dicts, epoch, sq)
        for epoch in EPOCHS
    }
    _write_fixture(args, net, subnets, dicts, sq, cases)
    if args.check:
        for epoch in EPOCHS:
            ours = our_step(copy.deepcopy(net), images, teachers, subnets, epoch, sq, args.seed, args.step)
            worst = max(
                float((ours.get(n, torch.zeros_like(u)) - u).norm() / max(float(u.norm()), setup.NORM_FLOOR))
                for n, u in cases[str(epoch)].items()
            )
            missing = sorted(set(cases[str(epoch)]) ^ set(ours))
            print(f"epoch {epoch}: max relative update difference {worst:.2e}; tensors on one side only: {missing}")


def _write_fixture(args, net, subnets: list, dicts: list[dict], sq: dict[str, float], cases: dict) -> None:
    """``step.json`` (the setting) and ``step.pt`` (tensor names, AdamW constants, each case's update signature)."""
    names = [name for name, _ in net.named_parameters()]
    signatures = {}
    for epoch, updates in cases.items():
        signature = setup.update_signature(names, updates, args.seed)
        scales = sorted(name for name in updates if ".vectors." in name)[:2]
        signature["small"] = {name: updates[name].clone() for name in (*SMALL_TENSORS, *scales)}  # own storage
        signatures[epoch] = signature
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "reference": "facebookresearch/NASViT commit 0472916, main.train_one_epoch + misc/constrain_opt.Constraint",
        "seed": args.seed,
        "step": args.step,
        "lr": setup.LR,
        "clip_grad": setup.CLIP_GRAD,
        "epochs": list(EPOCHS),
        "subnets": [cfg.to_dict() for cfg in subnets],
        "reference_subnets": dicts,
    }
    (args.out / "step.json").write_text(json.dumps(meta, indent=1) + "\n")
    payload = {
        "names": names,
        "exp_avg_sq": torch.tensor([sq.get(n, 0.0) for n in names], dtype=torch.float64),
        "cases": signatures,
    }
    torch.save(payload, args.out / "step.pt")
    print(f"wrote {args.out}: {len(names)} tensors, {len(sq)} with an AdamW state")


if __name__ == "__main__":
    main_cli()
