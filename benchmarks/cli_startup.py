"""How long the light ``nasvit`` commands take to answer, against a bare ``python -c pass`` (target: under 1 s).

    python benchmarks/cli_startup.py [--runs 5]

Each command runs in a fresh interpreter (``python -m nasvit.cli ...``, what the ``nasvit`` script does), the
commands in turn for ``--runs`` rounds so that a drift of the machine hits them all alike; the median wall time
of each is printed with its ratio to the bare interpreter. Exits 1 when a command's median is over the target.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

TARGET_SECONDS = 1.0
COMMANDS = {
    "python -c pass": ["-c", "pass"],
    "nasvit --help": ["-m", "nasvit.cli", "--help"],
    "nasvit space show nasvit": ["-m", "nasvit.cli", "space", "show", "nasvit"],
    "nasvit flops --space nasvit --arch min": ["-m", "nasvit.cli", "flops", "--space", "nasvit", "--arch", "min"],
}


def wall_seconds(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.runs):
        for name, argv in COMMANDS.items():
            times[name].append(wall_seconds(argv))
    baseline = statistics.median(times["python -c pass"])
    slow = []
    print(f"{'command':<42} {'median s':>9} {'x python -c pass':>17}")
    for name, runs in times.items():
        median = statistics.median(runs)
        print(f"{name:<42} {median:>9.3f} {median / baseline:>17.1f}")
        if name != "python -c pass" and median > TARGET_SECONDS:
            slow.append(name)
    verdict = f"MISSED by {', '.join(slow)}" if slow else "met"
    print(f"target: every nasvit command under {TARGET_SECONDS:.1f} s: {verdict}")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
