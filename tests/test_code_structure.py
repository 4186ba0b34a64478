"""The code keeps its shape (``tools/check_structure.py``): imports in the stated direction, no import cycle, no
private name taken from another package, no function over 50 lines."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("check_structure", ROOT / "tools" / "check_structure.py")
structure = sys.modules.setdefault("check_structure", importlib.util.module_from_spec(_spec))  # dataclasses look it up
_spec.loader.exec_module(structure)


def test_the_project_has_no_finding(capsys):
    assert structure.main([]) == 0, capsys.readouterr().out


def _modules(sources: dict[str, str]) -> dict:
    return {
        name: structure.Module(name, ROOT / f"{name.replace('.', '/')}.py", ast.parse(text))
        for name, text in sources.items()
    }


def test_a_cycle_through_a_type_checking_import_is_found():
    modules = _modules(
        {
            "search_space.a": "from search_space.b import B\n",
            "search_space.b": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from search_space.c import C\n",
            "search_space.c": "def f():\n    from search_space.a import A\n",
            "search_space.d": "from search_space.a import A\n",
        }
    )
    assert structure.import_cycles(structure.import_graph(modules)) == [
        ["search_space.a", "search_space.b", "search_space.c"]
    ]


def test_a_private_name_from_another_package_is_found_but_not_from_its_own():
    modules = _modules(
        {
            "supernet.static_model": "def _build_block(): ...\n",
            "supernet.other": "from supernet.static_model import _build_block\n",
            "nasvit.lut": "from supernet.static_model import _build_block\n",
        }
    )
    found = structure.private_imports(modules)
    assert len(found) == 1 and "nasvit/lut.py:1: imports _build_block from supernet.static_model" in found[0]


def test_a_long_function_is_found():
    body = "\n".join(f"    x{i} = {i}" for i in range(50))
    modules = _modules({"evolve.long": f"def short():\n    pass\n\n\ndef long():\n{body}\n"})
    assert structure.long_functions(modules, 50) == ["evolve/long.py:5: long has 51 lines"]


def test_imports_against_the_direction_are_found():
    modules = _modules(
        {
            "search_space.a": "import supernet.x\n",
            "supernet.x": "from evolve.y import Y\n",
            "evolve.y": "from search_space.a import A\n",
            "nasvit.errors": "from nasvit.runtime.checkpoint import load\n",
            "nasvit.runtime.checkpoint": "from nasvit.errors import NasvitError\n",
            "nasvit.latency.table": "from nasvit.reference.subnet import f\n",
            "nasvit.reference.subnet": "from nasvit.runtime.checkpoint import load\n",
            "nasvit.commands.demo": "from nasvit.recipes.demo import DemoRecipe\nfrom nasvit.commands.x import y\n",
            "nasvit.recipes.demo": "from nasvit.commands.demo import run\n",
        }
    )
    found = structure.direction_violations(structure.import_graph(modules))
    assert [line.split(" against")[0] for line in found] == [
        "nasvit.errors imports nasvit.runtime.checkpoint",
        "nasvit.latency.table imports nasvit.reference.subnet",
        "nasvit.recipes.demo imports nasvit.commands.demo",
        "search_space.a imports supernet.x",
        "supernet.x imports evolve.y",
    ]
