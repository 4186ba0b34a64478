"""Check that the README's demo table shows what a demo run printed: the same budgets, and the same subnet for
every budget whose winner does not depend on the machine (MACs, parameters, activations; a latency budget's
winner depends on the device's speed, so only its presence is checked).

    python tools/check_readme_demo.py --summary runs/demo/summary.json [--readme README.md]

The table sits between ``<!-- demo-table -->`` and ``<!-- /demo-table -->`` in the README; its subnet lines read
``BUDGET: SUBNET`` and an unmet budget's line ``BUDGET not met ...``. Exits 1 listing the differences.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

START, END = "<!-- demo-table -->", "<!-- /demo-table -->"
_SUBNET_LINE = re.compile(r"^(?P<budget>\S+<=\S+): (?P<subnet>\S+:\S+)$")
_BUDGET_LINE = re.compile(r"^(?P<budget>\S+<=\S+)\s")
LATENCY_PREFIX = "latency_ms<="


def readme_rows(text: str) -> dict[str, str | None]:
    """Budget -> subnet (None: shown as not met) of the README's demo table, in table order."""
    if START not in text or END not in text:
        raise ValueError(f"the README has no demo table between {START} and {END}")
    block = text.split(START, 1)[1].split(END, 1)[0].splitlines()
    budgets = [m["budget"] for line in block if (m := _BUDGET_LINE.match(line)) and not _SUBNET_LINE.match(line)]
    subnets = {m["budget"]: m["subnet"] for line in block if (m := _SUBNET_LINE.match(line))}
    return {budget: subnets.get(budget) for budget in budgets}


def summary_rows(summary: list[dict]) -> dict[str, str | None]:
    """Budget -> subnet (None: not met) of a demo's ``summary.json``."""
    return {row["budget"]: row.get("subnet") if row.get("met", True) else None for row in summary}


def differences(readme: dict[str, str | None], summary: dict[str, str | None]) -> list[str]:
    """What the README shows differently from the summary (empty when they agree)."""
    if list(readme) != list(summary):
        return [f"budgets: README {list(readme)}, demo run {list(summary)}"]
    return [
        f"{budget}: README {readme[budget]}, demo run {summary[budget]}"
        for budget in readme
        if not budget.startswith(LATENCY_PREFIX) and readme[budget] != summary[budget]
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--summary", required=True, help="summary.json of a demo run")
    parser.add_argument("--readme", default=str(Path(__file__).resolve().parents[1] / "README.md"))
    args = parser.parse_args()
    found = differences(
        readme_rows(Path(args.readme).read_text()), summary_rows(json.loads(Path(args.summary).read_text()))
    )
    for line in found:
        print(line)
    print("README demo table: " + ("differs from the run; paste the run's table" if found else "matches the run"))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
