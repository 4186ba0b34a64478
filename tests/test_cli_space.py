"""The ``nasvit space`` and ``nasvit flops`` commands."""

from __future__ import annotations

import json

import pytest

from nasvit.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_space_show(capsys):
    code, out, _ = run_cli(capsys, "space", "show", "nasvit")
    assert code == 0
    assert "s4     transformer  2       no   {64,72}" in out
    assert "distinct subnets: 2,311,581,597,696" in out
    assert "smallest: 176.6M MACs" in out


@pytest.mark.parametrize(("arch", "resolution", "expected"), [("min", "192", 189.8e6), ("max", "288", 1881.7e6)])
def test_flops_reference_figures(capsys, arch, resolution, expected):
    code, out, _ = run_cli(
        capsys, "flops", "--space", "nasvit_official", "--arch", arch, "--resolution", resolution, "--json"
    )
    assert code == 0
    payload = json.loads(out)
    assert set(payload) == {"macs", "params", "activations", "resolution", "arch"}
    assert payload["macs"] == pytest.approx(expected, rel=0.005)
    assert payload["resolution"] == int(resolution)


def test_flops_accepts_string_and_json_file(capsys, tmp_path):
    from search_space import load_space

    cfg = load_space("tiny").min_subnet()
    code, out, _ = run_cli(capsys, "flops", "--space", "tiny", "--arch", str(cfg), "--json")
    from_string = json.loads(out)
    path = tmp_path / "subnet.json"
    path.write_text(cfg.to_json())
    code, out, _ = run_cli(capsys, "flops", "--space", "tiny", "--arch", str(path), "--json")
    assert code == 0 and json.loads(out) == from_string
    path.write_text(json.dumps({"subnet": str(cfg), "num_classes": 10}))  # an export directory's description
    code, out, _ = run_cli(capsys, "flops", "--space", "tiny", "--arch", str(tmp_path), "--json")
    assert code == 0 and json.loads(out) == from_string
    assert from_string["macs"] == load_space("tiny").cost(cfg).macs


def test_flops_random_is_seeded(capsys):
    outs = [
        run_cli(capsys, "flops", "--space", "nasvit", "--arch", "random", "--seed", "3", "--json")[1] for _ in range(2)
    ]
    assert outs[0] == outs[1]


def test_flops_by_part_adds_up_to_the_whole(capsys):
    code, out, _ = run_cli(capsys, "flops", "--space", "nasvit", "--arch", "random", "--by-part", "--json")
    payload = json.loads(out)
    assert code == 0 and list(payload["parts"]) == ["stem", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "head"]
    for metric in ("macs", "params", "activations"):
        assert sum(part[metric] for part in payload["parts"].values()) == payload[metric]
    code, out, _ = run_cli(capsys, "flops", "--space", "tiny", "--arch", "max", "--by-part")
    assert code == 0 and "MACs share" in out and out.rstrip().splitlines()[-1].startswith("head")


def test_flops_text_output(capsys):
    code, out, _ = run_cli(capsys, "flops", "--space", "tiny", "--arch", "max")
    assert code == 0 and "MACs:" in out and "activations:" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["flops", "--space", "nope"], "unknown search space 'nope'"),
        (["flops", "--space", "tiny", "--arch", "tiny:r32:oops"], "malformed subnet string"),
        (
            ["flops", "--space", "tiny", "--arch", "max", "--resolution", "33"],
            "resolution 33 is not one of [16, 24, 32]",
        ),
        (["flops", "--space", "tiny", "--arch", "missing.json"], "subnet file missing.json does not exist"),
        (["flops", "--space", "tiny", "--arch", "biggest"], "ARCH 'biggest' is not min, max, random"),
    ],
)
def test_bad_input_is_one_clear_line(capsys, argv, message):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
