"""Run every benchmark under bench/ in turn and print their tables.

Usage:
  uv run python bench/run_all.py            # all of them (several minutes)
  uv run python bench/run_all.py query      # only bench_query.py
  uv run python bench/run_all.py cold_start # the cold-start benchmark (empty uv cache: downloads
                                            # from PyPI for minutes, so only when named)
"""

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    selected = sorted(HERE.glob("bench_*.py"))
    if argv:
        selected = [p for p in selected if any(name in p.stem for name in argv)]
    else:
        selected = [p for p in selected if p.stem != "bench_cold_start"]
    failures = 0
    for path in selected:
        print(f"\n## {path.name}\n", flush=True)
        start = time.time()
        code = subprocess.call([sys.executable, str(path)], cwd=HERE.parent)
        print(f"\n({path.name}: exit {code}, {time.time() - start:.0f}s)", flush=True)
        failures += code != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
