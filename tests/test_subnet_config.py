"""SubnetConfig: validation, string and JSON round trips."""

from __future__ import annotations

import json
import random

import pytest

from search_space import SpaceError, StageChoice, SubnetConfig, load_space, load_subnet


def test_validation_message_names_value_and_allowed():
    space = load_space("nasvit")
    cfg = space.max_subnet()
    stages = list(cfg.stages)
    stages[4] = StageChoice(100, 3, 3, 4, 1, 1)
    with pytest.raises(SpaceError, match=r"stage s5: width 100 is not one of \[112, 120, 128\]"):
        cfg.replace(stages=tuple(stages))


def test_all_invalid_values_reported(mini_space):
    with pytest.raises(SpaceError) as info:
        SubnetConfig(mini_space, 9, 7, (StageChoice(8, 1, 3, 1), StageChoice(16, 1, 3, 2, 3, 3)), 32)
    text = str(info.value)
    assert "resolution 9 is not one of [8, 16]" in text
    assert "stem: width 7 is not one of [8, 16]" in text
    assert "stage t1: mlp ratio 3 is not one of [1, 2]" in text
    assert "stage t1: windows 3 is not one of [1, 2, 4]" in text


def test_frozen_and_hashable(mini_space):
    cfg = mini_space.max_subnet()
    with pytest.raises(AttributeError):
        cfg.resolution = 8
    assert len({cfg, mini_space.max_subnet(), mini_space.min_subnet()}) == 2


def test_string_round_trip_many(shipped_space):
    rng = random.Random(1)
    for _ in range(200):
        cfg = shipped_space.sample(rng)
        text = str(cfg)
        assert "\n" not in text and " " not in text
        again = load_subnet(text)
        assert again == cfg and str(again) == text


def test_json_round_trip_many(shipped_space):
    rng = random.Random(2)
    for _ in range(200):
        cfg = shipped_space.sample(rng)
        data = json.loads(json.dumps(cfg.to_dict()))
        assert load_subnet(data) == cfg
        assert SubnetConfig.from_dict(cfg.to_json(), shipped_space) == cfg


def test_string_form_is_readable():
    cfg = load_space("nasvit_official").min_subnet()
    assert str(cfg).startswith("nasvit_official:r192:stem16:s1-w16-d1-k3-e1:s2-w24-d3-k3-e4:")
    assert str(cfg).endswith(":s7-w208-d3-k3-e6-m1-win1:head1792")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nasvit:r224", "malformed subnet string"),
        ("nasvit:x224:stem16:s1-w16-d1-k3-e1:head1792", "expected 'r<int>', got 'x224'"),
        ("nasvit:r224:stem16:s1-w16-d1-k3-e1:head1792", "expected stage tokens for ['s1', 's2'"),
        ("nosuchspace:r224:stem16:s1-w16:head1792", "unknown search space 'nosuchspace'"),
    ],
)
def test_malformed_strings(text, message):
    with pytest.raises(SpaceError) as info:
        load_subnet(text)
    assert message in str(info.value)


def test_malformed_stage_token():
    text = str(load_space("nasvit").max_subnet()).replace("s1-w24-d2-k5-e1", "s1-w24-d2-k5")
    with pytest.raises(SpaceError, match="needs exactly the fields"):
        load_subnet(text)


def test_config_of_another_space_is_rejected():
    text = str(load_space("nasvit").max_subnet())
    with pytest.raises(SpaceError, match="belongs to space 'nasvit', not to 'tiny'"):
        SubnetConfig.from_string(text, load_space("tiny"))


def test_from_dict_key_errors(mini_space):
    data = mini_space.max_subnet().to_dict()
    data["extra"] = 1
    with pytest.raises(SpaceError, match=r"unknown keys \['extra'\]"):
        SubnetConfig.from_dict(data, mini_space)
    data = mini_space.max_subnet().to_dict()
    data["stages"]["t1"]["depthh"] = 2
    with pytest.raises(SpaceError, match="stage t1: expected keys"):
        SubnetConfig.from_dict(data, mini_space)


def test_replace_validates_and_rejects_unknown_fields(mini_space):
    cfg = mini_space.max_subnet()
    assert cfg.replace(resolution=8).resolution == 8
    with pytest.raises(SpaceError, match="resolution 10 is not one of"):
        cfg.replace(resolution=10)
    with pytest.raises(SpaceError, match="cannot replace"):
        cfg.replace(depth=3)
