"""Sampling, mutation, crossover and constrained sampling."""

from __future__ import annotations

import random

import pytest

from search_space import SpaceError, load_space


def test_min_and_max_are_extremes(shipped_space):
    low, high = shipped_space.cost(shipped_space.min_subnet()), shipped_space.cost(shipped_space.max_subnet())
    rng = random.Random(0)
    for _ in range(300):
        cost = shipped_space.cost(shipped_space.sample(rng))
        assert low.macs <= cost.macs <= high.macs
        assert low.params <= cost.params <= high.params


def test_same_seed_same_subnets(shipped_space):
    first = [shipped_space.sample(random.Random(7)) for _ in range(3)]
    a = [shipped_space.sample(r) for r in [random.Random(11)] * 50]
    b = [shipped_space.sample(r) for r in [random.Random(11)] * 50]
    assert a == b
    assert first[0] == first[1] == first[2]
    assert len(set(a)) > 40  # and the draws actually vary


def test_sampling_covers_every_choice(mini_space):
    rng = random.Random(3)
    seen = [set() for _ in mini_space.genes]
    for _ in range(500):
        for values, gene in zip(seen, mini_space.to_genes(mini_space.sample(rng))):
            values.add(gene)
    assert [sorted(s) for s in seen] == [sorted(g.choices) for g in mini_space.genes]


def test_genes_round_trip(shipped_space):
    rng = random.Random(4)
    for _ in range(50):
        cfg = shipped_space.sample(rng)
        assert shipped_space.from_genes(shipped_space.to_genes(cfg)) == cfg


def test_mutation_changes_to_different_allowed_values(shipped_space):
    rng = random.Random(5)
    mutable = [len(g.choices) > 1 for g in shipped_space.genes]
    for _ in range(100):
        parent = shipped_space.sample(rng)
        child = shipped_space.mutate(parent, rng, prob=1.0)  # every mutable gene must change
        before, after = shipped_space.to_genes(parent), shipped_space.to_genes(child)
        for changed, can, a, b, gene in zip(range(len(before)), mutable, before, after, shipped_space.genes):
            assert b in gene.choices
            assert (a != b) == can, (changed, gene.label)


def test_mutation_probability_zero_is_identity(mini_space):
    cfg = mini_space.sample(random.Random(0))
    assert mini_space.mutate(cfg, random.Random(1), prob=0.0) == cfg


def test_mutation_rate_matches_probability():
    space = load_space("nasvit")
    rng = random.Random(6)
    mutable = [i for i, g in enumerate(space.genes) if len(g.choices) > 1]
    changed = total = 0
    for _ in range(300):
        parent = space.sample(rng)
        a, b = space.to_genes(parent), space.to_genes(space.mutate(parent, rng, 0.2))
        changed += sum(a[i] != b[i] for i in mutable)
        total += len(mutable)
    assert 0.17 < changed / total < 0.23


def test_crossover_takes_each_gene_from_a_parent(shipped_space):
    rng = random.Random(8)
    from_first = from_second = 0
    for _ in range(100):
        a, b = shipped_space.sample(rng), shipped_space.sample(rng)
        child = shipped_space.crossover(a, b, rng)
        for x, y, z in zip(shipped_space.to_genes(a), shipped_space.to_genes(b), shipped_space.to_genes(child)):
            assert z in (x, y)
            from_first += z == x != y
            from_second += z == y != x
    assert from_first > 0 and from_second > 0


def test_sample_within_respects_bounds():
    space = load_space("nasvit")
    rng = random.Random(9)
    for _ in range(20):
        cfg = space.sample_within(rng, macs=(300e6, 400e6), params=(None, 12e6))
        cost = space.cost(cfg)
        assert 300e6 <= cost.macs <= 400e6 and cost.params <= 12e6


def test_sample_within_is_deterministic():
    space = load_space("nasvit")
    a = space.sample_within(random.Random(10), macs=(250e6, 350e6))
    b = space.sample_within(random.Random(10), macs=(250e6, 350e6))
    assert a == b


def test_sample_within_unsatisfiable_names_smallest():
    space = load_space("nasvit_official")
    with pytest.raises(
        SpaceError, match=r"macs <= 100M is unsatisfiable: the smallest attainable macs .* is 189\.8M \(189789040\)"
    ):
        space.sample_within(random.Random(0), macs=(None, 100e6))


def test_sample_within_above_largest():
    space = load_space("tiny")
    with pytest.raises(SpaceError, match="the largest attainable params"):
        space.sample_within(random.Random(0), params=(1e9, None))


def test_sample_within_gives_up_clearly():
    space = load_space("nasvit")
    with pytest.raises(SpaceError, match="found in 5 random draws; widen the bounds or raise max_tries"):
        space.sample_within(random.Random(0), macs=(180e6, 181e6), max_tries=5)


def test_num_subnets():
    assert (
        load_space("tiny").num_subnets
        == 3 * 2 * (2 * 2 * 2 * 1) * (2 * 2 * 2 * 2) * (2 * 2 * 1 * 2 * 2 * 3) * (2 * 2 * 1 * 1 * 2 * 1) * 2
    )
