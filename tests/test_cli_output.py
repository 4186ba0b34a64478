"""What the CLI prints when its output is not a terminal (a log file, CI): plain periodic lines, each once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# one path a step (the cheapest rule): what is printed does not depend on the rule
SETTINGS = ["data.batch_size=32", "sampling.rule=spos", "device=cpu", "eval.bn_batches=1", "max_steps=4"]


def test_training_into_a_log_file_prints_plain_lines(tmp_path: Path) -> None:
    sets = [x for setting in [*SETTINGS, "log_every=2"] for x in ("--set", setting)]
    argv = ["train", "--config", "configs/train/tiny.yaml", "--out", str(tmp_path / "run"), *sets]
    program = "import sys; from nasvit.cli import main; sys.exit(main())"
    result = subprocess.run([sys.executable, "-c", program, *argv], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stderr  # no progress bar redraws in a file
    lines = [line for line in result.stderr.splitlines() if "step 2/" in line or "step 4/" in line]
    assert len(lines) == 2 and lines[0].startswith("INFO") and "lr" in lines[0], result.stderr


def test_light_commands_do_not_import_torch_or_timm() -> None:
    """``--help``, ``space show``, ``flops`` and ``scale`` answer without loading torch or timm (seconds of
    imports), and timm still finds ``nasvit_subnet`` once it is imported after nasvit."""
    program = (
        "import contextlib, io, sys\n"
        "from nasvit.cli import main\n"
        "for argv in (['space', 'show', 'tiny'], ['flops', '--space', 'nasvit', '--arch', 'min'],\n"
        "             ['scale', '--space', 'demo', '--arch', 'max', '--rule', 'w', '--factor', '2']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        assert main(argv) == 0\n"
        "heavy = sorted({'torch', 'timm', 'torchvision', 'supernet'} & set(sys.modules))\n"
        "import timm\n"
        "print(heavy, 'nasvit_subnet' in timm.list_models('nasvit*'))\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[] True"
