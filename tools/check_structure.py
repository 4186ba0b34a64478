"""Check the code's shape: imports in the stated direction, no import cycle, no private name imported from another
package, no long function.

    python tools/check_structure.py [--max-lines 50]

The import graph is read from the source (``ast``), not by importing it: every ``import`` and ``from ... import``
of a project module counts, at module level, inside functions and under ``if TYPE_CHECKING:`` alike. A module
``a.b`` that imports ``a.b.c`` or ``from a.b import c`` depends on the package ``a.b`` (its ``__init__``) only when
the name is not itself a submodule. Exits 1 and lists every finding when there is one.

The direction: ``search_space`` imports no other package, ``supernet`` and ``evolve`` only ``search_space``,
``nasvit`` any of the three; inside ``nasvit`` a part imports only itself and the parts of earlier groups in
``NASVIT_ORDER`` (errors, data, config, runtime, then latency / reference / evaluation, export, recipes,
commands, the CLI, and the package's ``__init__`` last).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("search_space", "supernet", "evolve", "nasvit")
SCRIPT_FOLDERS = ("tools", "benchmarks")
ALLOWED_PACKAGES = {
    "search_space": (),
    "supernet": ("search_space",),
    "evolve": ("search_space",),
    "nasvit": ("search_space", "supernet", "evolve"),
}
NASVIT_ORDER = (
    ("errors",),
    ("data",),
    ("config",),
    ("runtime",),
    ("latency", "reference", "evaluation"),
    ("export",),
    ("recipes",),
    ("commands",),
    ("cli",),
    ("",),  # nasvit/__init__.py
)


@dataclass(frozen=True)
class Module:
    """One source file: its dotted name, path and parsed tree."""

    name: str
    path: Path
    tree: ast.Module

    @property
    def package(self) -> str:
        return self.name.split(".")[0]


def project_modules(root: Path = ROOT) -> dict[str, Module]:
    """Every module of the packages and the scripts, by dotted name (scripts as ``tools.x``, ``benchmarks.y``)."""
    modules = {}
    for folder in (*PACKAGES, *SCRIPT_FOLDERS):
        for path in sorted((root / folder).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join(parts)
            modules[name] = Module(name, path, ast.parse(path.read_text(), filename=str(path)))
    return modules


def imported(module: Module, known: set[str]) -> Iterator[tuple[str, str, ast.AST]]:
    """``(imported module, imported name or '', node)`` for every import of a project module in ``module``."""
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    yield alias.name, "", node
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] not in PACKAGES:
                continue
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                yield (submodule, "", node) if submodule in known else (node.module, alias.name, node)


def import_graph(modules: dict[str, Module]) -> dict[str, set[str]]:
    """Module name -> the project modules it imports."""
    known = set(modules)
    return {
        name: {target for target, _, _ in imported(module, known) if target in known and target != name}
        for name, module in modules.items()
    }


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted; empty when there is no cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def nasvit_part(name: str) -> str:
    """The part of ``nasvit`` a module belongs to: ``nasvit.recipes.demo`` -> ``recipes``, ``nasvit`` -> ``''``."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def _rank(part: str) -> int:
    for rank, group in enumerate(NASVIT_ORDER):
        if part in group:
            return rank
    raise ValueError(f"nasvit.{part} is in no group of NASVIT_ORDER; add it to the group it belongs to")


def direction_violations(graph: dict[str, set[str]]) -> list[str]:
    """``a imports b against the direction`` for every import of a later package or a later (or sibling) part."""
    found = []
    for name, targets in sorted(graph.items()):
        package = name.split(".")[0]
        if package not in ALLOWED_PACKAGES:  # tools and benchmarks may use anything
            continue
        for target in sorted(targets):
            other = target.split(".")[0]
            if other == package == "nasvit":
                source, part = nasvit_part(name), nasvit_part(target)
                wrong = part != source and _rank(part) >= _rank(source)
            else:
                wrong = other != package and other not in ALLOWED_PACKAGES[package]
            if wrong:
                found.append(f"{name} imports {target} against the direction (see NASVIT_ORDER, ALLOWED_PACKAGES)")
    return found


def private_imports(modules: dict[str, Module]) -> list[str]:
    """``module: from other import _name`` for every private name taken from a module of another package."""
    known = set(modules)
    found = []
    for module in modules.values():
        for target, name, node in imported(module, known):
            taken = name or target.rsplit(".", 1)[-1]
            if taken.startswith("_") and not taken.startswith("__") and target.split(".")[0] != module.package:
                found.append(f"{module.path.relative_to(ROOT)}:{node.lineno}: imports {taken} from {target}")
    return found


def long_functions(modules: dict[str, Module], max_lines: int) -> list[str]:
    """``path:line: name has N lines`` for every function or method longer than ``max_lines`` (docstring included)."""
    found = []
    for module in modules.values():
        for node in ast.walk(module.tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > max_lines:
                    found.append(f"{module.path.relative_to(ROOT)}:{node.lineno}: {node.name} has {lines} lines")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-lines", type=int, default=50, help="longest function allowed, in lines")
    args = parser.parse_args(argv)
    modules = project_modules()
    graph = import_graph(modules)
    findings = [f"import cycle: {' <-> '.join(group)}" for group in import_cycles(graph)]
    findings += direction_violations(graph)
    findings += private_imports(modules)
    findings += long_functions(modules, args.max_lines)
    edges = sum(len(targets) for targets in graph.values())
    print(f"{len(modules)} modules, {edges} imports between them: {len(findings)} findings")
    for line in findings:
        print(f"  {line}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
