"""Start-up time of the light commands, side by side with ``python -c pass`` in one run.

Prints the median and range of wall times over interleaved repetitions (the machine's
noise hits every command alike), for the README's "Start-up" table:

    .venv/bin/python tests/tools/startup_times.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -m harness --help": [sys.executable, "-m", "harness", "--help"],
    "python -m harness validate scenarios/cpu.yaml":
        [sys.executable, "-m", "harness", "validate", "scenarios/cpu.yaml"],
    "python -m harness plan scenarios/cpu.yaml":
        [sys.executable, "-m", "harness", "plan", "scenarios/cpu.yaml"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeats):
        for name, command in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL, check=True)
            times[name].append(time.perf_counter() - start)
    print(f"| command | median s | range s | ({args.repeats} interleaved runs) |")
    print("|---|---|---|---|")
    for name, values in times.items():
        print(f"| `{name}` | {statistics.median(values):.3f} | "
              f"{min(values):.3f}-{max(values):.3f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
