"""Block choices (issue 25): a stage's MBConv blocks may be depthwise (``g1``), grouped (``g8``, ``g16``: G channels per
group in the spatial conv) or Fused-MBConv (``fused``). Loading and its refusals, subnet strings, dicts and genes,
supernet/export parity, exact costs, deployment, latency-table keys and scaling; and spaces without block choices
unchanged."""

from __future__ import annotations

import copy
import dataclasses
import io
import random

import pytest
import timm
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from nasvit.cli import main
from nasvit.latency.table import block_key
from nasvit.latency.table_build import enumerate_blocks
from search_space import SpaceError, load_space, parse_space, plan_subnet, space_fingerprint, space_to_dict
from search_space.cost import block_cost
from search_space.plan import FusedMBConvPlan, MBConvPlan
from search_space.scaling import one_subnet_space, scale_subnet
from supernet import NASViT, Supernet, optimize_for_inference, recalibrate_bn
from supernet.blocks import FusedMBConv, MBConv
from supernet.builders import build_block
from supernet.elastic import ElasticBlockChoice, slice_to
from supernet.ops import StaticOps
from supernet.weight_transfer import transfer_weights
from tests.conftest import MINI_SPACE
from tests.supernet_helpers import images, randomize

CODES = ("g1", "g8", "fused")  # the block codes of the space below, cheapest first
# fingerprints of the shipped spaces as they were before block choices (commit 4aabc1a): unchanged, so their
# checkpoints, searches and latency tables stay valid
FINGERPRINTS = {
    "cifar": "13ab32f97cad715f",
    "cifar_cnn": "320837c367e0d274",
    "demo": "24386f1d9ba83531",
    "nasvit": "a96a23d8250a42ca",
    "nasvit_official": "07bc9e58d44af449",
    "tiny": "ce6118867dcef912",
}


def with_block_choices(data: dict) -> dict:
    """The mini space (conv stage c1, transformer stage t1) with depthwise, 8-per-group and fused blocks in both."""
    data = copy.deepcopy(data)
    data["stages"][0].update(block_kinds=["mbconv", "fused"], group_sizes=[1, 8])  # expand ratios [1, 2]
    data["stages"][1].update(block_kinds=["fused", "mbconv"], group_sizes=[1, 8])  # its opening MBConv block
    return data


@pytest.fixture(scope="module")
def space():
    return parse_space(with_block_choices(MINI_SPACE), source="mini with block choices")


@pytest.fixture(scope="module")
def supernet(space):
    """Randomised weights, eval mode; tests that train or recalibrate build their own."""
    return randomize(Supernet(space, num_classes=10)).eval()


def with_blocks(cfg, *codes: str):
    """``cfg`` with stage i's block set to ``codes[i]``."""
    stages = tuple(dataclasses.replace(choice, block=code) for choice, code in zip(cfg.stages, codes, strict=True))
    return cfg.replace(stages=stages)


def subnets(space, code: str):
    """The smallest, the largest and two sampled subnets of ``space``, every stage's block set to ``code``."""
    rng = random.Random(3)
    cfgs = [space.min_subnet(), space.max_subnet(), space.sample(rng), space.sample(rng)]
    return [with_blocks(cfg, *[code] * len(space.stages)) for cfg in cfgs]


def flop_count_macs(model: torch.nn.Module, shape: tuple[int, ...]) -> float:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(shape))
    return counter.get_total_flops() / 2


# ------------------------------------------------------------------------------------------------ loading


def test_a_space_with_block_choices_loads_with_its_codes(space):
    c1, t1 = space.stages
    assert c1.block_codes == t1.block_codes == CODES  # mbconv by group size, then fused, whatever the YAML order
    assert c1.has_block_choice and t1.has_block_choice
    assert [g.label for g in space.genes if g.label.endswith(".block")] == ["c1.block", "t1.block"]
    assert space.min_subnet().stages[0].block == "g1" and space.max_subnet().stages[0].block == "fused"


def fussed_kind(data: dict) -> None:
    data["stages"][0]["block_kinds"] = ["mbconv", "fussed"]


def duplicate_kind(data: dict) -> None:
    data["stages"][0]["block_kinds"] = ["mbconv", "mbconv"]


def group_sizes_on_fused_only(data: dict) -> None:
    data["stages"][0].update(block_kinds=["fused"], group_sizes=[1, 8])


def group_size_16_on_width_24(data: dict) -> None:
    data["stem"]["widths"] = [16]
    data["stages"][0].update(widths=[16, 24], expand_ratios=[1, 2], group_sizes=[1, 16])


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        (fussed_kind, ["stages[0]", "'fussed'", 'did you mean "fused"']),
        (duplicate_kind, ["block_kinds", "must be unique", "['mbconv', 'mbconv']"]),
        (group_sizes_on_fused_only, ["group_sizes: [1, 8]", "['fused']", "add mbconv to block_kinds"]),
        (group_size_16_on_width_24, ["stage c1", "group size 16", "widths [24]", "expand-ratio-1"]),
    ],
    ids=["unknown-kind", "duplicate-kind", "group-sizes-fused-only", "group-size-not-dividing"],
)
def test_bad_block_choices_are_refused_naming_the_value(mini_space_dict, change, fragments):
    change(mini_space_dict)
    with pytest.raises(SpaceError) as error:
        parse_space(mini_space_dict, source="bad")
    assert len(error.value.problems) == 1, error.value.problems
    for fragment in fragments:
        assert fragment in str(error.value)


def test_a_group_size_dividing_every_width_is_accepted_with_expand_ratio_one(mini_space_dict):
    mini_space_dict["stages"][0].update(expand_ratios=[1], group_sizes=[1, 8])  # widths 8 and 16, stem 8 and 16
    assert parse_space(mini_space_dict).stages[0].block_codes == ("g1", "g8")


def test_cli_space_show_refuses_a_bad_block_kind_in_one_line(mini_space_dict, tmp_path, capsys):
    fussed_kind(mini_space_dict)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(mini_space_dict))
    assert main(["space", "show", str(path)]) == 2
    err = capsys.readouterr().err
    assert "'fussed'" in err and 'did you mean "fused"' in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_space_show_prints_a_block_column_only_for_spaces_with_block_choices(capsys):
    assert main(["space", "show", "nasvit_v2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("stage"))
    assert header.split()[-1] == "block"
    rows = {line.split()[0]: line for line in lines}
    assert rows["s1"].endswith("{g1,g8,fused}") and rows["s2"].endswith("{g1,g8,g16,fused}")
    assert main(["space", "show", "nasvit"]) == 0
    assert "block" not in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------- subnet values


@pytest.mark.parametrize("code", CODES)
def test_strings_and_dicts_round_trip_every_block_code_in_conv_and_transformer_stages(space, code):
    for cfg in subnets(space, code):
        text = str(cfg)
        c1_token, t1_token = text.split(":")[3:5]
        assert c1_token.endswith(f"-e{cfg.stages[0].expand_ratio}-{code}") and t1_token.endswith(f"-{code}")
        assert type(cfg).from_string(text, space) == cfg
        data = cfg.to_dict()
        assert data["stages"]["c1"]["block"] == data["stages"]["t1"]["block"] == code
        assert type(cfg).from_dict(data, space) == cfg
        assert type(cfg).from_dict(cfg.to_json(), space) == cfg


def test_a_stage_offering_one_grouped_block_names_it_but_has_no_gene(mini_space_dict):
    mini_space_dict["stages"][0].update(group_sizes=[8])
    only_g8 = parse_space(mini_space_dict)
    assert only_g8.stages[0].block_codes == ("g8",) and only_g8.stages[0].has_block_choice
    assert not any(g.label.endswith(".block") for g in only_g8.genes)
    cfg = only_g8.max_subnet()
    assert cfg.stages[0].block == "g8" and str(cfg).split(":")[3].endswith("-g8")
    assert type(cfg).from_string(str(cfg), only_g8) == cfg and only_g8.from_genes(only_g8.to_genes(cfg)) == cfg


def replace_token(text: str, index: int, token: str) -> str:
    tokens = text.split(":")
    tokens[index] = token
    return ":".join(tokens)


@pytest.mark.parametrize(
    ("c1_token", "fragment"),
    [
        ("c1-w16-d2-k5-e2", "'c1-w16-d2-k5-e2' needs exactly the fields ['w', 'd', 'k', 'e'] and the block"),
        ("c1-w16-d2-k5-e2-g8-fused", "'c1-w16-d2-k5-e2-g8-fused' needs exactly the fields"),  # both
        ("c1-w16-d2-k5-e2-fused-g8", "'c1-w16-d2-k5-e2-fused-g8' is malformed"),  # the block is last
        ("c1-w16-d2-k5-e2-g4", "block 'g4' is not one of ['g1', 'g8', 'fused']"),  # not offered
        ("c1-w16-d2-k5-e2-depthwise", "'c1-w16-d2-k5-e2-depthwise' is malformed"),
    ],
    ids=["missing", "both", "not-last", "not-offered", "unknown-word"],
)
def test_malformed_block_tokens_are_refused(space, c1_token, fragment):
    text = replace_token(str(with_blocks(space.max_subnet(), "fused", "g8")), 3, c1_token)
    with pytest.raises(SpaceError) as error:
        type(space.max_subnet()).from_string(text, space)
    assert fragment in str(error.value)
    assert "e.g. c1-w8-d1-k3-e1-g1" in str(error.value) or "not one of" in fragment  # the example names a block


@pytest.mark.parametrize("block", ["-g8", "-g1", "-fused"])
def test_a_block_token_on_a_stage_without_block_choices_is_refused(mini_space, block):
    cfg = mini_space.max_subnet()
    text = str(cfg)
    c1_token = text.split(":")[3]
    assert c1_token == "c1-w16-d2-k5-e2"  # no block token where a stage offers only the depthwise MBConv
    with pytest.raises(SpaceError, match="needs exactly the fields"):
        type(cfg).from_string(replace_token(text, 3, c1_token + block), mini_space)


def test_dicts_need_a_block_key_exactly_where_a_stage_has_block_choices(space, mini_space):
    data = space.max_subnet().to_dict()
    del data["stages"]["c1"]["block"]
    with pytest.raises(SpaceError, match=r"expected keys .*'block'"):
        type(space.max_subnet()).from_dict(data, space)
    plain = mini_space.max_subnet().to_dict()
    assert "block" not in plain["stages"]["c1"]
    plain["stages"]["c1"]["block"] = "g1"
    with pytest.raises(SpaceError, match=r"got .*'block'"):
        type(mini_space.max_subnet()).from_dict(plain, mini_space)
    data = space.max_subnet().to_dict()
    data["stages"]["t1"]["block"] = "g16"
    with pytest.raises(SpaceError, match="block 'g16' is not one of"):
        type(space.max_subnet()).from_dict(data, space)


def test_genes_round_trip_and_sampling_reaches_every_block(space):
    rng = random.Random(0)
    sampled = [space.sample(rng) for _ in range(40)]
    for cfg in sampled:
        genes = space.to_genes(cfg)
        assert len(genes) == len(space.genes) and space.from_genes(genes) == cfg
        labels = [g.label for g in space.genes]
        assert genes[labels.index("c1.block")] == cfg.stages[0].block
    assert {cfg.stages[0].block for cfg in sampled} == {cfg.stages[1].block for cfg in sampled} == set(CODES)
    block_genes = [g for g in space.genes if g.label.endswith(".block")]
    assert [g.choices for g in block_genes] == [CODES, CODES]


def test_nasvit_v2_has_block_genes_in_its_conv_stages_only():
    v2 = load_space("nasvit_v2")
    block_genes = {g.label: g.choices for g in v2.genes if g.label.endswith(".block")}
    assert block_genes == {
        "s1.block": ("g1", "g8", "fused"),
        "s2.block": ("g1", "g8", "g16", "fused"),
        "s3.block": ("g1", "g8", "g16", "fused"),
    }
    assert len(v2.genes) == len(load_space("nasvit").genes) + 3
    cfg = v2.sample(random.Random(1))
    assert v2.from_genes(v2.to_genes(cfg)) == cfg and type(cfg).from_string(str(cfg), v2) == cfg


@pytest.mark.parametrize("name", sorted(FINGERPRINTS))
def test_spaces_without_block_choices_keep_genes_strings_dicts_and_fingerprints(name):
    existing = load_space(name)
    assert space_fingerprint(existing) == FINGERPRINTS[name]
    assert not any(stage.has_block_choice for stage in existing.stages)
    assert not any(g.label.endswith(".block") for g in existing.genes)
    assert all("block_kinds" not in s and "group_sizes" not in s for s in space_to_dict(existing)["stages"])
    cfg = existing.sample(random.Random(4))
    assert all("block" not in entry for entry in cfg.to_dict()["stages"].values())
    assert "-g1" not in str(cfg) and "fused" not in str(cfg)
    assert all(choice.block == "g1" for choice in cfg.stages)


def test_a_shipped_space_samples_the_subnet_it_sampled_before_block_choices():
    tiny = load_space("tiny")
    cfg = tiny.sample(random.Random(7))  # the value below was printed by commit 4aabc1a
    assert str(cfg) == (
        "tiny:r24:stem8:s1-w16-d1-k3-e1:s2-w24-d1-k3-e3:s3-w32-d3-k3-e3-m1-win4:s4-w64-d2-k3-e4-m1-win1:head128"
    )
    assert tiny.cost(cfg).macs == 2851744


# --------------------------------------------------------------------------------------- supernet and export


@pytest.mark.parametrize("code", CODES)
def test_export_matches_the_supernet_for_every_block_code(space, supernet, code):
    for index, cfg in enumerate(subnets(space, code)):
        x = images(cfg.resolution, seed=index)
        supernet.set_active_subnet(cfg)
        static = supernet.export(cfg)
        with torch.no_grad():
            expected, actual, optimized = supernet(x), static(x), optimize_for_inference(static)(x)
        assert expected.std() > 1e-3, "logits must not be trivially constant"
        assert torch.allclose(actual, expected, rtol=0, atol=1e-5), f"{cfg}: {(actual - expected).abs().max()}"
        assert torch.allclose(optimized, expected, rtol=0, atol=1e-5), f"{cfg}: {(optimized - expected).abs().max()}"
        for stage in static.stages:  # c1's blocks and t1's opening one are of the chosen kind
            block = stage[0]
            assert isinstance(block, FusedMBConv if code == "fused" else MBConv)
            if code != "fused":
                conv = block.depthwise.conv
                assert conv.in_channels // conv.groups == int(code[1:])


def test_block_choices_hold_their_own_weights_and_change_the_output(space, supernet):
    positions = [block for stage in supernet.stages for block in stage if isinstance(block, ElasticBlockChoice)]
    assert len(positions) == 3  # c1's two blocks and t1's opening MBConv
    assert all(list(position.choices) == list(CODES) for position in positions)
    x = images(16)
    outputs = {}
    for code in CODES:
        supernet.set_active_subnet(with_blocks(space.max_subnet(), code, code))
        with torch.no_grad():
            outputs[code] = supernet(x)
    assert (outputs["g1"] - outputs["g8"]).abs().max() > 1e-4
    assert (outputs["g1"] - outputs["fused"]).abs().max() > 1e-4


def test_gradients_reach_only_the_active_blocks_weights(space):
    net = randomize(Supernet(space, num_classes=10)).train()
    net.set_active_subnet(with_blocks(space.max_subnet(), "fused", "g8"))  # every block position in use
    net(images(16, batch=4)).square().mean().backward()
    c1_first, c1_second = net.stages[0][0], net.stages[0][1]
    t1_first = net.stages[1][0]
    for position, active in ((c1_first, "fused"), (c1_second, "fused"), (t1_first, "g8")):
        for code, block in position.choices.items():
            grads = [p.grad for p in block.parameters()]
            if code == active:
                assert any(g is not None and g.abs().sum() > 0 for g in grads), code
            else:
                assert all(g is None for g in grads), f"inactive block {code} got gradients"


def test_a_fresh_supernet_starts_every_residual_branch_silent(space):
    net = Supernet(space, num_classes=10)
    positions = [block for stage in net.stages for block in stage if isinstance(block, ElasticBlockChoice)]
    blocks = [block for position in positions for block in position.choices.values()]
    assert {type(b) for b in blocks} == {MBConv, FusedMBConv}
    for block in blocks:
        assert torch.count_nonzero(block.project.bn.weight) == 0, type(block).__name__


# ------------------------------------------------------------------------------------------------ cost


@pytest.mark.parametrize("code", CODES)
def test_cost_matches_flop_counter_and_parameter_count_for_every_block_code(space, code):
    for cfg in subnets(space, code):
        model = NASViT(cfg).eval()
        cost = space.cost(cfg)
        assert cost.macs == flop_count_macs(model, (1, 3, cfg.resolution, cfg.resolution)), cfg
        assert cost.params == sum(p.numel() for p in model.parameters()), cfg
        for stage in plan_subnet(cfg).stages:
            plan = stage[0]
            assert isinstance(plan, FusedMBConvPlan if code == "fused" else MBConvPlan)
            block = build_block(StaticOps, space, plan).eval()
            shape = (1, plan.in_channels, plan.in_size, plan.in_size)
            assert block_cost(plan).macs == flop_count_macs(block, shape), plan
            assert block_cost(plan).params == sum(p.numel() for p in block.parameters()), plan


@pytest.mark.parametrize("which", ["max", "sampled"])
def test_nasvit_v2_cost_matches_flop_counter_at_192(which):
    v2 = load_space("nasvit_v2")
    if which == "max":
        cfg = v2.max_subnet()
    else:
        cfg = v2.sample(random.Random(5))
        cfg = with_blocks(cfg, "g8", "fused", "g16", *[c.block for c in cfg.stages[3:]])
    cfg = cfg.replace(resolution=192)
    model = NASViT(cfg).eval()
    assert v2.cost(cfg).macs == flop_count_macs(model, (1, 3, 192, 192))
    assert v2.cost(cfg).params == sum(p.numel() for p in model.parameters())


def test_grouped_spatial_conv_costs_group_size_times_the_depthwise_one(space):
    cfg = with_blocks(space.max_subnet(), "g1", "g1")
    depthwise = plan_subnet(cfg).stages[0][0]
    assert depthwise.expand and depthwise.mid_channels % 8 == 0
    grouped = dataclasses.replace(depthwise, group_size=8)
    taps = depthwise.mid_channels * depthwise.kernel**2  # weights of the depthwise conv
    assert block_cost(grouped).params - block_cost(depthwise).params == taps * (8 - 1)
    assert block_cost(grouped).macs - block_cost(depthwise).macs == taps * (8 - 1) * depthwise.out_size**2
    assert block_cost(grouped).activations == block_cost(depthwise).activations


# ------------------------------------------------------------------------------------------------ deployment


@pytest.fixture(scope="module")
def fused_and_grouped(space, supernet):
    """An export whose conv stage runs Fused-MBConv and whose transformer stage opens with a g8 MBConv."""
    return supernet.export(with_blocks(space.sample(random.Random(1)), "fused", "g8").replace(resolution=16))


def test_torchscript_of_fused_and_grouped_blocks_matches(fused_and_grouped):
    x = images(16)
    with torch.no_grad():
        assert torch.allclose(torch.jit.script(fused_and_grouped)(x), fused_and_grouped(x), atol=1e-6)


def test_onnx_of_fused_and_grouped_blocks_matches(fused_and_grouped):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install '.[onnx]')")
    pytest.importorskip("onnx", reason="onnx not installed (pip install '.[onnx]')")
    x = images(16)
    buffer = io.BytesIO()
    torch.onnx.export(fused_and_grouped, (x,), buffer, dynamo=False, opset_version=17)
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        assert abs(output - fused_and_grouped(x).numpy()).max() < 1e-5


def test_timm_builds_a_nasvit_v2_subnet_with_its_blocks():
    v2 = load_space("nasvit_v2")
    cfg = v2.min_subnet()
    cfg = with_blocks(cfg, "g8", "fused", "g16", *[c.block for c in cfg.stages[3:]])
    model = timm.create_model("nasvit_subnet", subnet=str(cfg), num_classes=7)
    assert isinstance(model, NASViT) and model.subnet == str(cfg)
    assert isinstance(model.stages[1][0], FusedMBConv)
    assert model.stages[0][0].depthwise.conv.groups == model.stages[0][0].depthwise.conv.in_channels // 8
    assert model.stages[2][0].depthwise.conv.groups == model.stages[2][0].depthwise.conv.in_channels // 16
    assert model(images(cfg.resolution, batch=1)).shape == (1, 7)


def test_bn_recalibration_re_estimates_the_active_fused_blocks_statistics(space):
    net = randomize(Supernet(space, num_classes=10)).eval()
    cfg = with_blocks(space.max_subnet(), "fused", "fused")
    net.set_active_subnet(cfg)
    static = net.export(cfg)
    bn = net.stages[0][0].choices["fused"].fused.bn
    before = bn.running_mean.clone()
    batches = [images(16, batch=4, seed=10 + i) for i in range(2)]
    recalibrate_bn(net, batches)
    recalibrate_bn(static, batches)
    mid = static.stages[0][0].fused.bn.num_features
    assert not torch.allclose(bn.running_mean[:mid], before[:mid], atol=1e-3)
    assert torch.allclose(bn.running_mean[:mid], static.stages[0][0].fused.bn.running_mean, atol=1e-5)
    assert torch.allclose(bn.running_var[:mid], static.stages[0][0].fused.bn.running_var, atol=1e-5)
    x = images(16, seed=3)
    with torch.no_grad():
        assert torch.allclose(net(x), static(x), rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------------ latency table


def test_latency_keys_leave_out_depthwise_group_size_and_name_the_others(space):
    depthwise = plan_subnet(with_blocks(space.max_subnet(), "g1", "g1")).stages[0][0]
    grouped = dataclasses.replace(depthwise, group_size=8)
    fused = plan_subnet(with_blocks(space.max_subnet(), "fused", "g1")).stages[0][0]
    assert "group_size" not in block_key(depthwise) and block_key(depthwise).startswith("MBConvPlan(")
    assert "group_size=8" in block_key(grouped) and block_key(grouped).startswith("MBConvPlan(")
    assert block_key(fused).startswith("FusedMBConvPlan(") and "group_size" not in block_key(fused)
    assert len({block_key(depthwise), block_key(grouped), block_key(fused)}) == 3
    tiny_block = plan_subnet(load_space("tiny").min_subnet()).stages[1][0]  # the key tables held before groups
    assert block_key(tiny_block) == (
        "MBConvPlan(expand=True, in_channels=8, in_size=8, kernel=3, mid_channels=24, out_channels=16, "
        "out_size=4, se_channels=8, stride=2)"
    )


def test_latency_enumeration_holds_fused_and_grouped_blocks_of_every_subnet(space):
    plans = enumerate_blocks(space, [16])
    keys = {block_key(p) for p in plans}
    assert any(isinstance(p, FusedMBConvPlan) for p in plans)
    assert any(isinstance(p, MBConvPlan) and p.group_size == 8 for p in plans)
    assert any(isinstance(p, MBConvPlan) and p.group_size == 1 for p in plans)
    rng = random.Random(2)
    for _ in range(30):
        plan = plan_subnet(space.sample(rng).replace(resolution=16))
        parts = (plan.stem, *(block for stage in plan.stages for block in stage), plan.head)
        assert not [block_key(part) for part in parts if block_key(part) not in keys]


# ------------------------------------------------------------------------------------------------ scaling


def _one_subnet_space_of(cfg):
    """The space that holds ``cfg`` alone, named ``one``."""
    values = {"stem_width": cfg.stem_width, "stages": cfg.stages, "head_width": cfg.head_width}
    return one_subnet_space(cfg.space, name="one", description="one subnet", resolution=cfg.resolution, **values)


def test_a_one_subnet_space_keeps_each_stages_block(space):
    cfg = with_blocks(space.max_subnet(), "fused", "g8")
    one = _one_subnet_space_of(cfg)
    assert [s.block_codes for s in one.stages] == [("fused",), ("g8",)]
    assert [c.block for c in one.max_subnet().stages] == ["fused", "g8"]
    assert parse_space(space_to_dict(one)) == one


def test_scaling_a_nasvit_v2_subnet_keeps_its_blocks():
    v2 = load_space("nasvit_v2")
    base = with_blocks(v2.min_subnet(), "g8", "fused", "g16", *[c.block for c in v2.min_subnet().stages[3:]])
    scaled = scale_subnet(base, "fast", 2)
    assert [c.block for c in scaled.cfg.stages] == [c.block for c in base.stages]
    assert [c.width for c in scaled.cfg.stages] != [c.width for c in base.stages]  # it did scale
    tokens = str(scaled.cfg).split(":")
    assert tokens[3].endswith("-g8") and tokens[4].endswith("-fused") and tokens[5].endswith("-g16")
    assert parse_space(space_to_dict(scaled.space)) == scaled.space


def test_scaled_supernet_takes_each_blocks_weights_from_the_chosen_block(space, supernet):
    cfg = with_blocks(space.max_subnet(), "fused", "g8")
    one = _one_subnet_space_of(cfg)
    source = supernet.state_dict()
    target = Supernet(one, num_classes=10)
    transfer = transfer_weights(source, target)
    assert not [key for key in transfer.fresh if key.startswith(("stages.0.", "stages.1.0."))]
    state = target.state_dict()
    for key, source_key in (
        ("stages.0.1.fused.conv.weight", "stages.0.1.choices.fused.fused.conv.weight"),
        ("stages.1.0.depthwise.conv.weight", "stages.1.0.choices.g8.depthwise.conv.weight"),
    ):
        assert torch.equal(state[key], slice_to(source[source_key], state[key].shape)), key
    x = images(16)
    supernet.set_active_subnet(cfg)
    with torch.no_grad():
        assert torch.allclose(target.eval()(x), supernet(x), rtol=0, atol=1e-5)


def test_demo_v2_trains_exports_verified_and_finetunes(tmp_path):
    """The whole path on the shipped ``demo_v2`` space: two sandwich steps, the export of a subnet with a grouped and
    a fused stage (verified against the supernet, its inference form, TorchScript and ONNX), then a short
    fine-tune that exports a verified model again."""
    import json

    from nasvit.config.finetune import FinetuneConfig
    from nasvit.config.loading import load_config
    from nasvit.config.train import TrainConfig
    from nasvit.export.directory import ExportOptions, export_subnet
    from nasvit.recipes.finetune import FinetuneRecipe
    from nasvit.recipes.train import TrainRecipe
    from nasvit.runtime import checkpoint
    from tests.supernet_helpers import BRIEF_TRAINING

    TrainRecipe(load_config(TrainConfig, "configs/train/demo.yaml", [*BRIEF_TRAINING, "space=demo_v2"]), tmp_path).run()
    latest = checkpoint.latest(tmp_path)
    space = load_space("demo_v2")
    cfg = space.parse(
        "demo_v2:r16:stem8:s1-w8-d2-k5-e1-g4:s2-w16-d2-k3-e4-fused:s3-w32-d1-k3-e2-m2-win1:s4-w48-d1-k3-e4-m2-win1:head64"
    )
    export = tmp_path / "export"
    export_subnet(checkpoint.load(latest), str(latest), cfg, export, bn_batches=1, options=ExportOptions(True, True))
    differences = json.loads((export / "subnet.json").read_text())["verification"]["max_abs_difference"]
    assert set(differences) == {"supernet", "inference", "onnx", "torchscript"} and max(differences.values()) <= 1e-4
    settings = [f"model={export}", "data.dataset=digits", "device=cpu", "data.batch_size=16", "max_steps=2"]
    summary = FinetuneRecipe(
        load_config(FinetuneConfig, "configs/finetune/default.yaml", settings), tmp_path / "ft"
    ).run()
    tuned = json.loads((tmp_path / "ft" / "export" / "subnet.json").read_text())
    assert tuned["subnet"] == str(cfg) and max(tuned["verification"]["max_abs_difference"].values()) <= 1e-4
    assert summary["steps"] == 2


@pytest.mark.parametrize("name", ["nasvit_v2", "demo_v2"])
def test_cost_extremes_pick_each_stages_block_per_metric(name):
    """A fused block has fewer activations than a depthwise one of fewer MACs, so the first and last choices are not
    the extremes of every metric; ``extreme_subnet`` is, and budgets between it and the first choice are attainable."""
    space = load_space(name)
    rng = random.Random(3)
    samples = [space.cost(space.sample(rng)) for _ in range(300)]
    for metric in ("macs", "params", "activations"):
        low = space.cost(space.extreme_subnet(metric)).get(metric)
        high = space.cost(space.extreme_subnet(metric, dearest=True)).get(metric)
        assert all(low <= sample.get(metric) <= high for sample in samples), metric
    fewest = space.cost(space.extreme_subnet("activations")).activations
    assert fewest < space.cost(space.min_subnet()).activations
    space.check_attainable({"activations": (None, fewest)})
    with pytest.raises(SpaceError, match="unsatisfiable"):
        space.check_attainable({"activations": (None, fewest - 1)})


def test_scaling_rounds_the_widths_a_grouped_ratio_one_block_runs_on():
    """An expand-ratio-1 block with 16 channels per group runs on the stem's and its own stage's width: scaling keeps
    both multiples of 16 (the loader would refuse anything else)."""
    data = space_to_dict(load_space("nasvit_v2"))
    data["name"] = "grouped_stem"
    data["stem"]["widths"] = [16, 32]
    data["stages"][0].update(widths=[16, 32], group_sizes=[1, 16])
    space = parse_space(data)
    stages = (dataclasses.replace(space.max_subnet().stages[0], block="g16"), *space.max_subnet().stages[1:])
    base = space.max_subnet().replace(resolution=192, stages=stages)
    for rule in ("w", "fast", "dwr"):
        scaled = scale_subnet(base, rule, 1.5).cfg
        assert scaled.stem_width % 16 == 0 and scaled.stages[0].width % 16 == 0, (rule, str(scaled))
        assert scaled.stages[0].block == "g16"


def test_null_choice_lists_read_as_left_out(mini_space_dict):
    mini_space_dict["stages"][0].update(block_kinds=None, group_sizes=None)
    mini_space_dict["stages"][1].update(windows=None, mlp_ratios=None)
    space = parse_space(mini_space_dict)
    assert space.stages[0].block_codes == ("g1",) and space.stages[1].windows == (1,)
    assert space.stages[1].mlp_ratios == (1,)


def test_block_kinds_in_any_order_are_one_space(mini_space_dict):
    mini_space_dict["stages"][0].update(block_kinds=["fused", "mbconv"])
    first = parse_space(copy.deepcopy(mini_space_dict))
    mini_space_dict["stages"][0].update(block_kinds=["mbconv", "fused"])
    assert first == parse_space(mini_space_dict) and space_fingerprint(first) == space_fingerprint(
        parse_space(mini_space_dict)
    )


def test_the_fastest_smallest_subnet_takes_the_block_the_latency_predicts_fastest():
    from evolve.search import fastest_smallest_subnet

    space = load_space("demo_v2")

    def costs(cfg):  # a fused block predicted at half a depthwise one, a grouped one a little slower
        per_block = {"g1": 1.0, "g4": 1.1, "g8": 1.2, "fused": 0.5}
        return {"latency_ms": cfg.resolution / 100 + sum(per_block[c.block] for c in cfg.stages[:2])}

    fastest, latency = fastest_smallest_subnet(space, costs)
    assert [c.block for c in fastest.stages[:2]] == ["fused", "fused"]
    assert fastest.resolution == min(space.resolutions) and latency == pytest.approx(0.04 + 1.0)
    assert space.min_subnets_per_resolution() == [space.min_subnet().replace(resolution=r) for r in space.resolutions]


def test_the_training_benchmarks_variants_offer_the_codes_it_names():
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "block_choice_training.py"
    spec = importlib.util.spec_from_file_location("block_choice_training", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    codes = {
        name: [s.block_codes for s in parse_space(module.variant_space(name)).stages[:2]] for name in module.VARIANTS
    }
    assert codes == {
        "demo": [("g1",), ("g1",)],
        "fused_only": [("fused",), ("fused",)],
        "two_kinds": [("g1", "fused"), ("g1", "fused")],
        "demo_v2": [("g1", "g4", "fused"), ("g1", "g4", "g8", "fused")],
    }
