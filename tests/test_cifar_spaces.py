"""The 32 px spaces: the hybrid ``cifar`` and its CNN-only twin ``cifar_cnn`` (issue 23)."""

from __future__ import annotations

from search_space import StageKind, load_space


def test_cifar_cnn_is_the_twin_of_cifar():
    hybrid, cnn = load_space("cifar"), load_space("cifar_cnn")
    assert (cnn.stem, cnn.head, cnn.resolutions) == (hybrid.stem, hybrid.head, hybrid.resolutions)
    assert [(s.name, s.stride, s.widths) for s in cnn.stages] == [(s.name, s.stride, s.widths) for s in hybrid.stages]
    assert all(stage.kind is StageKind.CONV for stage in cnn.stages)
    assert [stage.kind for stage in hybrid.stages][-2:] == [StageKind.TRANSFORMER] * 2
    low = max(space.cost(space.min_subnet()).macs for space in (hybrid, cnn))
    high = min(space.cost(space.max_subnet()).macs for space in (hybrid, cnn))
    assert low < high / 4, "the MACs ranges must overlap widely for comparisons at equal cost"


def test_cifar_attention_sees_8x8_and_4x4_tokens_and_stays_cpu_sized():
    hybrid = load_space("cifar")
    transformer_stages = [i for i, stage in enumerate(hybrid.stages) if stage.is_transformer]
    assert [hybrid.stage_sizes(32)[i] for i in transformer_stages] == [8, 4]
    for name in ("cifar", "cifar_cnn"):
        space = load_space(name)
        assert space.max_subnet().resolution == 32 and space.cost(space.max_subnet()).macs < 40e6
