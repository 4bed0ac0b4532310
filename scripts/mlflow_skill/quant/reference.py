"""The metric tables of references/quantstats-metrics.md, rendered from the registry
(quant/catalog.py) so the reference and the code cannot disagree. Each table sits between the
markers `<!-- metrics-table GROUP -->` and `<!-- /metrics-table -->`; the prose around them is
written by hand. Regenerate with `uv run python tests/metrics_reference.py` (tests check it).
"""

from __future__ import annotations

import re

from mlflow_skill.quant import catalog

HEADER = ("| key | QuantStats | meaning | unit | better |", "|---|---|---|---|---|")
# The benchmark table ends with the rule for the benchmark's own copy of every single-series key
BENCHMARK_ROW = (
    "| `benchmark_<key>` | the benchmark column | every key above, for the benchmark series | as the key | as the key |"
)
TABLE_GROUPS = (
    catalog.RETURNS,
    catalog.RATIOS,
    catalog.RISK,
    catalog.TRADES,
    catalog.DRAWDOWNS,
    catalog.BENCHMARK,
    catalog.TRUST,
)  # the histories are described in prose
BLOCK_RE = re.compile(r"^<!-- metrics-table (?P<group>\w+) -->\n.*?^<!-- /metrics-table -->$", re.M | re.S)


def table_row(metric: catalog.Metric) -> str:
    cells = [f"`{metric.key}`", metric.quantstats, metric.meaning, metric.unit.name, metric.better]
    return "| " + " | ".join(cells) + " |"


def table(group: str) -> str:
    """One group's table, in the registry's order."""
    rows = [table_row(m) for m in catalog.METRICS if m.group == group]
    if group == catalog.BENCHMARK:
        rows.append(BENCHMARK_ROW)
    return "\n".join([*HEADER, *rows])


def block(group: str) -> str:
    return f"<!-- metrics-table {group} -->\n\n{table(group)}\n\n<!-- /metrics-table -->"


def rewrite(text: str) -> str:
    """The document with every metrics table regenerated; each group's block must be there once."""
    found = [match.group("group") for match in BLOCK_RE.finditer(text)]
    if sorted(found) != sorted(TABLE_GROUPS):
        raise ValueError(f"metrics-table blocks found: {found}; expected one each of {list(TABLE_GROUPS)}")
    return BLOCK_RE.sub(lambda match: block(match.group("group")), text)
