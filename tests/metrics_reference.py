"""Regenerate the metric tables of references/quantstats-metrics.md from the metric registry
(scripts/mlflow_skill/quant/catalog.py, rendered by quant/reference.py).

Usage:
  uv run python tests/metrics_reference.py            # rewrite the tables in the reference
  uv run python tests/metrics_reference.py --check    # exit 1 if they differ from the registry
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "references" / "quantstats-metrics.md"


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT / "scripts"))
    from mlflow_skill.quant import reference

    text = REFERENCE.read_text()
    fresh = reference.rewrite(text)
    if "--check" in argv:
        if fresh != text:
            print(f"{REFERENCE.name}: metric tables differ from the registry: run without --check", file=sys.stderr)
            return 1
        return 0
    if fresh != text:
        REFERENCE.write_text(fresh)
        print(f"rewrote the metric tables of {REFERENCE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
