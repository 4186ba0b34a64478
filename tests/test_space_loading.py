"""Loading and validating search-space files."""

from __future__ import annotations

import pytest
import yaml

from search_space import SpaceError, StageKind, available_spaces, load_space, parse_space


def test_shipped_spaces_exist():
    assert {"nasvit", "nasvit_official", "tiny"} <= set(available_spaces())


def test_every_shipped_space_loads(shipped_space):
    assert shipped_space.stages
    assert shipped_space.resolutions == tuple(sorted(shipped_space.resolutions))
    assert shipped_space.min_subnet() != shipped_space.max_subnet()


def test_paper_space_matches_spec_table():
    space = load_space("nasvit")
    by_name = {s.name: s for s in space.stages}
    assert [s.kind for s in space.stages] == [StageKind.CONV] * 3 + [StageKind.TRANSFORMER] * 4
    assert by_name["s4"].windows == (1, 2, 4) and by_name["s5"].windows == (1,)
    assert by_name["s5"].depths == tuple(range(3, 10)) and by_name["s6"].widths == (160, 168, 176, 184)
    assert all(s.mlp_ratios == (1, 2) for s in space.stages if s.is_transformer)
    assert space.transformer.mlp_dwconv and space.head.widths == (1792, 1984)
    assert space.resolutions == (192, 224, 256, 288)


def test_official_space_switches():
    space = load_space("nasvit_official")
    assert all(s.mlp_ratios == (1,) and s.windows == (1,) for s in space.stages if s.is_transformer)
    assert not space.transformer.mlp_dwconv
    assert space.transformer.norm.value == "token_channel"
    assert space.transformer.scale_layout.value == "reference"
    assert space.transformer.position_bias_size == 18


def test_load_by_path(tmp_path, mini_space_dict):
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(mini_space_dict))
    assert load_space(str(path)).name == "mini"


def test_unknown_space_name_suggests():
    with pytest.raises(SpaceError, match=r'did you mean "nasvit"'):
        load_space("nasvitt")


def test_missing_file():
    with pytest.raises(SpaceError, match="does not exist"):
        load_space("/nonexistent/space.yaml")


def test_invalid_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed")
    with pytest.raises(SpaceError, match="not valid YAML"):
        load_space(str(path))


def test_unknown_key_with_suggestion(mini_space_dict):
    mini_space_dict["resolution"] = [8]
    with pytest.raises(SpaceError, match=r'resolution: unknown key \(did you mean "resolutions"\?\)'):
        parse_space(mini_space_dict)


def test_unknown_stage_key_with_suggestion(mini_space_dict):
    mini_space_dict["stages"][0]["kernel"] = [3]
    with pytest.raises(SpaceError, match=r'stages\[0\]\.kernel: unknown key \(did you mean "kernels"\?\)'):
        parse_space(mini_space_dict)


def test_all_errors_reported_at_once(mini_space_dict):
    mini_space_dict["activation"] = "swishh"
    mini_space_dict["stem"]["widths"] = [16, 8]
    mini_space_dict["stages"][1]["kind"] = "attention"
    del mini_space_dict["head"]["dropout"]
    with pytest.raises(SpaceError) as info:
        parse_space(mini_space_dict)
    problems = info.value.problems
    assert len(problems) == 4, problems
    text = str(info.value)
    assert "activation: 'swishh' is not one of" in text and 'did you mean "swish"' in text
    assert "stem.widths: choices must be unique and ascending, got [16, 8]; write [8, 16]" in text
    assert "kind: 'attention' is not one of ['conv', 'transformer']" in text
    assert "head.dropout: missing (required)" in text


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("in_channels",), 0, "in_channels: expected a positive integer, got 0"),
        (("resolutions",), [], "resolutions: expected a non-empty list"),
        (("stages", 0, "kernels"), [3, 4], "kernels must be odd"),
        (("stages", 0, "se"), "yes", "se: expected true or false"),
        (("stages", 1, "widths"), [12, 24], "must all be multiples of transformer.head_dim=8"),
        (("stages", 1, "windows"), [1, 3], "outside the supported [1, 2, 4]"),
        (("transformer", "norm"), "batch", "transformer.norm: 'batch' is not one of"),
        (("transformer", "position_bias_size"), 1, "position_bias_size: 1 is smaller than"),
        (("stages", 0, "name"), "t1", "names must be unique"),
    ],
)
def test_each_kind_of_bad_value(mini_space_dict, path, value, message):
    target = mini_space_dict
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(SpaceError) as info:
        parse_space(mini_space_dict)
    assert message in str(info.value)


def test_conv_stage_rejects_transformer_keys(mini_space_dict):
    mini_space_dict["stages"][0]["windows"] = [1]
    with pytest.raises(SpaceError, match="only transformer stages have windows"):
        parse_space(mini_space_dict)


def test_windows_must_tile_the_token_map(mini_space_dict):
    mini_space_dict["resolutions"] = [8, 12]  # 12 -> 6 -> 6 -> 3: a 3x3 map cannot hold 2 or 4 windows
    with pytest.raises(SpaceError, match="windows=2 needs a token map divisible by 2x1, but resolution 12 gives 3x3"):
        parse_space(mini_space_dict)


def test_not_a_mapping():
    with pytest.raises(SpaceError, match="expected a mapping"):
        parse_space([1, 2, 3])
