"""Analytical cost model: SPEC.md reference figures and hand-computed small cases."""

from __future__ import annotations

import random

import pytest

from search_space import Cost, StageChoice, SubnetConfig, load_space
from search_space.arithmetic import make_divisible


def test_reference_figures_of_official_space():
    space = load_space("nasvit_official")
    smallest = space.cost(space.min_subnet().replace(resolution=192)).macs
    largest = space.cost(space.max_subnet().replace(resolution=288)).macs
    assert smallest == pytest.approx(189.8e6, rel=0.005)
    assert largest == pytest.approx(1881.7e6, rel=0.005)


def test_reference_parameter_counts_of_official_space():
    # SPEC.md: about 8.2M (smallest) and 16.5M (largest) without position tables; we count cropped tables.
    space = load_space("nasvit_official")
    assert space.cost(space.min_subnet()).params == pytest.approx(8.2e6, rel=0.02)
    assert space.cost(space.max_subnet()).params == pytest.approx(16.5e6, rel=0.02)


def test_make_divisible_rule():
    assert make_divisible(16 * 4) == 64
    assert make_divisible(24 * 5) == 120
    assert make_divisible(2) == 8  # never below the divisor
    assert make_divisible(30) == 32  # nearest multiple
    assert make_divisible(27) == 32  # 24 would lose more than 10%


def _mini_cfg(space, resolution=8, windows=1):
    return SubnetConfig(
        space,
        resolution=resolution,
        stem_width=8,
        stages=(StageChoice(8, 1, 3, 1), StageChoice(16, 2, 3, 2, 1, windows)),
        head_width=32,
    )


def test_hand_computed_subnet(mini_space):
    """Every layer of a two-stage subnet at 8 px, counted by hand (see comments)."""
    cfg = _mini_cfg(mini_space)
    parts = mini_space.cost_breakdown(cfg)
    # stem: 3->8 conv k3 s2, 8 px -> 4x4: 16*8*3*9 MACs; 8*27 weights + 16 BN; 8*16 outputs
    assert parts["stem"] == Cost(3456, 232, 128)
    # c1 (w8 d1 k3 e1, SE): no expand (t=1, mid=8); dw k3 on 4x4: 16*8*9=1152, 72+16 params, 128 outputs;
    # SE 8->8->8 on the pooled vector (make_divisible(8//4)=8): 64+64 MACs, (64+8)*2 params, 8+8 outputs;
    # project 8->8: 16*64=1024 MACs, 64+16 params, 128 outputs; identity shortcut.
    assert parts["c1"] == Cost(2304, 312, 272)
    # t1 MBConv (8->16, s2, e2): expand 8->16 on 4x4: 2048 MACs, 128+32, 256 out; dw k3 s2 -> 2x2: 576, 144+32,
    # 64; project 16->16: 1024, 256+32, 64; shortcut pool + conv 8->16: 512, 128, 64.
    mbconv = Cost(4160, 752, 448)
    # t1 transformer block, C=16, N=4 tokens, 2 heads: Q, K 4*16*16 each, V 4*16*64, V dwconv 4*64*9,
    # QK^T 16 pairs*16, attn@V 16 pairs*64, talking heads 2 x 16*2*2, proj 4*64*16, two MLPs of
    # (4*16*16 + 4*16*9 + 4*16*16) = 19200 MACs.
    # params: 3 LN (96), Q,K (272 each), V (1088), V dwconv (576), talking heads (6 each), proj (1040),
    # MLPs 2 x (272+144+272), 2 scale vectors (32), position table 3*3*2 (18) = 4782.
    # outputs: Q, K 64 each, V 256, V dwconv 256, talking heads 32 each, proj 64, MLPs 2 x 192 = 1152.
    transformer = Cost(19200, 4782, 1152)
    assert parts["t1"] == mbconv + transformer
    # head: 16->32 conv on 2x2 (2048, 512+64, 128), pool, 32->32 no bias (1024, 1024, 32), linear 32->10 (320, 330, 10)
    assert parts["head"] == Cost(3392, 1930, 170)
    assert mini_space.cost(cfg) == Cost(32512, 8008, 2170)


def test_windows_shrink_attention_cost(mini_space):
    """At 16 px t1 has a 4x4 token map: 4 windows of 2x2 cut the query-key pairs from 256 to 64."""
    one = mini_space.cost(_mini_cfg(mini_space, resolution=16, windows=1))
    four = mini_space.cost(_mini_cfg(mini_space, resolution=16, windows=4))
    pairs_saved = 256 - 64
    # per pair: QK^T 16 + attn@V 64 + talking heads 2*2*2 = 88 MACs; talking-head outputs 2*2 per pair
    assert one.macs - four.macs == pairs_saved * 88
    assert one.activations - four.activations == pairs_saved * 4
    # position table 7*7*2 for the 4x4 window against 3*3*2 for 2x2 windows
    assert one.params - four.params == 98 - 18


def test_breakdown_adds_up(shipped_space):
    rng = random.Random(0)
    for _ in range(20):
        cfg = shipped_space.sample(rng)
        parts = shipped_space.cost_breakdown(cfg)
        assert sum(parts.values(), Cost(0, 0, 0)) == shipped_space.cost(cfg)


def test_num_classes_override(mini_space):
    cfg = _mini_cfg(mini_space)
    assert mini_space.cost(cfg, num_classes=20).macs - mini_space.cost(cfg).macs == 32 * 10


def test_every_gene_moves_cost_the_expected_way():
    space = load_space("nasvit")
    base = space.min_subnet()
    base_cost = space.cost(base)
    for index, gene in enumerate(space.genes):
        if len(gene.choices) < 2:
            continue
        values = list(space.to_genes(base))
        values[index] = gene.choices[-1]
        assert space.cost(space.from_genes(values)).macs > base_cost.macs, gene.label


def test_cost_metric_lookup():
    cost = Cost(1, 2, 3)
    assert cost.get("params") == 2
    with pytest.raises(KeyError, match="unknown cost metric 'flops'"):
        cost.get("flops")
