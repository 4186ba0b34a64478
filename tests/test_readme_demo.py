"""The README's demo table cannot drift from what the demo prints (``tools/check_readme_demo.py``)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from evolve import parse_budget
from nasvit.config.loading import load_config
from nasvit.config.search import SearchConfig

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_readme_demo", ROOT / "tools" / "check_readme_demo.py")
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)


def test_the_readme_table_shows_the_budgets_the_demo_searches() -> None:
    rows = check.readme_rows((ROOT / "README.md").read_text())
    budgets = load_config(SearchConfig, "configs/search/demo.yaml", ()).evolve.budgets
    assert list(rows) == [parse_budget(b).label for b in budgets]
    assert all(subnet and subnet.startswith("demo:") for subnet in rows.values())


def test_a_summary_with_another_subnet_or_budget_is_a_difference() -> None:
    readme = check.readme_rows((ROOT / "README.md").read_text())
    summary = [{"budget": b, "met": True, "subnet": s} for b, s in readme.items()]
    assert check.differences(readme, check.summary_rows(summary)) == []
    cost_budget = next(b for b in readme if not b.startswith(check.LATENCY_PREFIX))
    changed = [{**row, "subnet": "demo:other"} if row["budget"] == cost_budget else row for row in summary]
    assert check.differences(readme, check.summary_rows(changed)) == [
        f"{cost_budget}: README {readme[cost_budget]}, demo run demo:other"
    ]
    assert check.differences(readme, check.summary_rows(summary[:-1]))[0].startswith("budgets:")


@pytest.mark.slow
def test_a_fresh_demo_run_matches_the_readme(tmp_path: Path) -> None:
    from nasvit.recipes.demo import DemoRecipe

    DemoRecipe(tmp_path / "demo").run()
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    readme = check.readme_rows((ROOT / "README.md").read_text())
    assert check.differences(readme, check.summary_rows(summary)) == []
