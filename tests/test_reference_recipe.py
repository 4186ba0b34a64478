"""The reference recipe's pieces: the reference code's gradient combination, the teacher ensemble, starting from a
checkpoint's weights, and ``configs/train/nasvit_reference.yaml`` with its options' errors."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from nasvit.config.loading import ConfigError, load_config
from nasvit.config.train import TrainConfig
from nasvit.recipes.teacher import TeacherEnsemble
from nasvit.recipes.train import TrainRecipe
from nasvit.runtime import checkpoint
from search_space import load_space, space_to_dict
from supernet import Supernet
from supernet.training import reference_combine
from supernet.training.sandwich import reference_units

CONFIG = "configs/train/nasvit_reference.yaml"


def _vector(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_summing_gives_a_tensor_only_the_largest_touched_its_gradient_twice():
    g_s = [_vector(1.0, 2.0), _vector(3.0), None]
    g_sub = [_vector(0.5, 0.5), None, _vector(4.0)]
    combined = reference_combine(g_s, g_sub, units=[0, 1, 2], project=False)
    assert torch.equal(combined[0], _vector(1.5, 2.5))
    assert torch.equal(combined[1], _vector(6.0))  # g_s twice
    assert combined[2] is g_sub[2]


def test_projection_scales_the_subnets_gradient_with_the_reference_clamp_and_eps():
    g_sub = _vector(1.0, 0.0)
    mild, strong, agreeing = _vector(-0.5, 1.0), _vector(-10.0, 1.0), _vector(1.0, 1.0)
    combined = reference_combine([mild, strong, agreeing], [g_sub] * 3, units=[0, 1, 2], project=True)
    assert torch.allclose(combined[0], mild + (1 + 0.5 / (1 + 1e-6)) * g_sub)  # 1 - <g_sub, g_s> / |g_sub|^2
    assert torch.allclose(combined[1], strong + 3.0 * g_sub)  # the coefficient 10 is clamped at 2
    assert torch.allclose(combined[2], agreeing + g_sub)  # no conflict: summed
    tiny = _vector(1e-4, 0.0)  # |g_sub|^2 = 1e-8, far below eps = 1e-6
    (result,) = reference_combine([_vector(-1e-4, 0.0)], [tiny], units=[0], project=True)
    assert torch.allclose(result, _vector(-1e-4, 0.0) + (1 + 1e-8 / (1e-8 + 1e-6)) * tiny)


def test_a_unit_of_several_tensors_shares_one_coefficient():
    g_s = [_vector(-2.0), _vector(5.0), _vector(7.0)]
    g_sub = [_vector(1.0), _vector(1.0), None]
    combined = reference_combine(g_s, g_sub, units=[0, 0, 0], project=True)
    # per tensor, tensor 0 conflicts (-2); over the unit <g_sub, g_s> = -2 + 5 = 3 > 0: no scaling
    assert torch.equal(combined[0], _vector(-1.0)) and torch.equal(combined[1], _vector(6.0))
    assert torch.equal(combined[2], _vector(7.0))  # no g_sub in a unit that has some: zeros, so g_s once
    conflicting = reference_combine([_vector(-4.0), _vector(1.0)], [_vector(1.0), _vector(1.0)], [0, 0], True)
    scale = 1 + 3.0 / (1e-6 + 2.0)  # -<g_sub, g_s> / |g_sub|^2 over the unit
    assert torch.allclose(conflicting[0], _vector(-4.0 + scale)) and torch.allclose(conflicting[1], _vector(1 + scale))
    rows = reference_combine([_vector(-4.0), None], [_vector(1.0), _vector(1.0)], [0, 0], True)
    scale = 1 + 4.0 / (1e-6 + 2.0)
    assert torch.allclose(rows[1], _vector(scale))  # no g_s of its own, but its unit's scale


def test_switchable_scale_vectors_form_one_unit_per_layer():
    from supernet.elastic import SwitchableScale

    net = Supernet(load_space("tests/fixtures/reference_step/space.yaml"), 10)
    by_name = dict(zip((name for name, _ in net.named_parameters()), reference_units(net)))
    layers = {name: module for name, module in net.named_modules() if isinstance(module, SwitchableScale)}
    assert max(len(module.vectors) for module in layers.values()) > 1
    for name, module in layers.items():
        assert len({by_name[f"{name}.vectors.{key}"] for key in module.vectors}) == 1
    assert len(set(by_name.values())) == len(by_name) - sum(len(m.vectors) - 1 for m in layers.values())
    assert by_name["stages.3.1.scale_attn.vectors.d2_n0"] != by_name["stages.3.1.scale_mlp.vectors.d2_n0"]


def test_teacher_ensemble_averages_sharpened_probabilities():
    logits = [torch.randn(3, 7, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    ensemble = TeacherEnsemble([_Fixed(t) for t in logits], logit_scale=5.0)
    expected = ((5 * logits[0]).softmax(-1) + (5 * logits[1]).softmax(-1)) / 2
    assert torch.allclose(ensemble(torch.zeros(3, 3, 4, 4)).softmax(-1), expected, atol=1e-6)


class _Fixed(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, images):
        return self.logits


def test_init_from_loads_a_checkpoints_weights_and_refuses_another_model(tmp_path):
    space = load_space("tiny")
    trained = Supernet(space, 10)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(1.0)
    path = tmp_path / "trained.pt"
    payload = {"format": checkpoint.FORMAT, "model": trained.state_dict(), "space": space_to_dict(space)}
    checkpoint.save_atomic({**payload, "num_classes": 10, "config": {}}, path)
    recipe = SimpleNamespace(space=space, data=SimpleNamespace(num_classes=10), config=SimpleNamespace(init_from=path))
    recipe._load_initial_weights = lambda net, p: TrainRecipe._load_initial_weights(recipe, net, p)
    net = TrainRecipe._setup_model(recipe)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), trained.state_dict().values()))
    recipe.data.num_classes = 5
    with pytest.raises(checkpoint.CheckpointError, match=r"holds a 'tiny' supernet with 10 classes.*with 5"):
        TrainRecipe._setup_model(recipe)


def test_reference_config_loads_with_the_reference_codes_settings():
    config = load_config(TrainConfig, CONFIG)
    assert config.space == "nasvit_official" and config.data.image_size == 224 and config.optim.epochs == 400
    assert config.projection.rule == "reference" and config.projection.start_epoch == 101
    assert config.teacher.logit_scale == 5.0 and len(config.teacher.extra) == 1
    assert config.ema.decay == 0.99985 and not config.ema.warmup
    assert config.sandwich.num_random == 2 and config.optim.clip_grad == 1.0
    defaults = TrainConfig()
    assert defaults.projection.rule == "paper" and defaults.ema.warmup and defaults.teacher.logit_scale == 1.0
    assert defaults.init_from is None and defaults.teacher.extra == ()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("projection.rule=refrence", r"projection.rule: 'refrence' is not one of \['paper', 'reference'\]"),
        ("projection.mode=global", "projection.rule: reference combines per tensor; set projection.mode=tensor"),
        ("precision=fp16", "projection.rule: reference clips inside the step.*use precision=bf16 or fp32"),
        ("teacher.logit_scale=0", r"teacher.logit_scale: 0.0 must be > 0"),
        ("teacher.extra=[{model: resnet18}]", r"teacher.extra\[0\]: give both model and checkpoint"),
        ("teacher.extra=[{modle: resnet18}]", r"teacher.extra\[0\].modle: unknown key"),
        ("ema.warmup=maybe", "ema.warmup: expected true or false"),
    ],
)
def test_bad_reference_options_give_one_line_errors(override, message):
    with pytest.raises(ConfigError, match=message) as error:
        load_config(TrainConfig, CONFIG, [override])
    assert "\n" not in str(error.value)
