"""Trace metrics over time for search_traces.py --every: counts, errors, latency percentiles and
tokens per time bucket, from MLflow's server-side endpoint (POST /api/3.0/mlflow/traces/metrics,
MLflow 3.x) when the question fits it, else aggregated here over a bounded search; and the
min/max-preserving sparkline that draws each series.

Buckets are aligned as the server aligns them: floor(timestamp / interval) * interval (UTC).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mlflow_skill.core.errors import NotFoundError, ServerError, UsageError
from mlflow_skill.core.formatting import fmt_duration
from mlflow_skill.core.values import parse_key_values, percentile
from mlflow_skill.store.transport import NotMlflowError, Store
from mlflow_skill.traces import api as tr
from mlflow_skill.traces.filters import sql_literal

METRICS_PATH = "/api/3.0/mlflow/traces/metrics"
SPARK_CHARS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 48
MAX_BUCKETS = 2000
SERVER_GROUPS = (None, "name", "status")  # the dimensions/filters the endpoint can split by


class MetricsUnavailable(Exception):
    """The server has no trace metrics endpoint (or rejects this query): aggregate here instead."""


# ---------------------------------------------------------------------------------------------
# Sparkline
# ---------------------------------------------------------------------------------------------
def sparkline(values: list[float | None], width: int = SPARK_WIDTH) -> str:
    """One character per value while they fit; beyond `width`, each chunk of values gives two
    characters, its minimum and its maximum in the order they occur, so spikes and dips survive
    (a mean would flatten them). ' ' marks an empty bucket."""
    present = [v for v in values if v is not None]
    if not present:
        return " " * min(len(values), width)
    lo, hi = min(present), max(present)

    def char(v: float | None) -> str:
        if v is None:
            return " "
        if hi == lo:
            return SPARK_CHARS[3] if hi else SPARK_CHARS[0]
        return SPARK_CHARS[min(len(SPARK_CHARS) - 1, int((v - lo) / (hi - lo) * len(SPARK_CHARS)))]

    if len(values) <= width:
        return "".join(char(v) for v in values)
    chunks = max(1, width // 2)
    out = []
    for i in range(chunks):
        part = values[i * len(values) // chunks : (i + 1) * len(values) // chunks]
        got = [(j, v) for j, v in enumerate(part) if v is not None]
        if not got:
            out.append("  ")
            continue
        jmin = min(got, key=lambda p: p[1])[0]
        jmax = max(got, key=lambda p: p[1])[0]
        first, second = sorted((jmin, jmax))
        out.append(char(part[first]) + char(part[second]))
    return "".join(out)


def per_char(n_buckets: int, every_ms: int, width: int = SPARK_WIDTH) -> str:
    if n_buckets <= width:
        return f"1 char = {fmt_duration(every_ms)}"
    chunk = n_buckets / max(1, width // 2)
    return f"2 chars (min, max) per {fmt_duration(chunk * every_ms)}"


# ---------------------------------------------------------------------------------------------
# Buckets
# ---------------------------------------------------------------------------------------------
def bucket_starts(start_ms: int, end_ms: int, every_ms: int) -> list[int]:
    first = start_ms // every_ms * every_ms
    count = (end_ms - first) // every_ms + 1
    if count > MAX_BUCKETS:
        raise UsageError(
            f"--every {fmt_duration(every_ms)} over this window makes {count} buckets (at most {MAX_BUCKETS}): "
            "use a larger --every or a shorter --since"
        )
    return [first + i * every_ms for i in range(max(0, count))]


@dataclass
class Bucket:
    """One time bucket of one series; its fields, in order, are the JSON keys of a bucket."""

    start_ms: int
    traces: int = 0
    errors: int = 0
    error_rate: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    tokens: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def client_bucket(start: int, members: list[dict]) -> Bucket:
    """A bucket aggregated from the trace summaries that started in it."""
    bucket = Bucket(start)
    if not members:
        return bucket
    durations = [m["duration_ms"] for m in members if m["duration_ms"] is not None]
    tokens = [
        m["tokens"]["total_tokens"] for m in members if m["tokens"] and m["tokens"].get("total_tokens") is not None
    ]
    bucket.traces = len(members)
    bucket.errors = sum(1 for m in members if m["status"] == "ERROR")
    bucket.error_rate = bucket.errors / len(members)
    bucket.p50_ms = percentile(durations, 50)
    bucket.p95_ms = percentile(durations, 95)
    bucket.tokens = sum(tokens) if tokens else None
    return bucket


def client_buckets(rows: list[dict], starts: list[int], every_ms: int) -> list[dict]:
    """Aggregate trace summaries into the given buckets."""
    members: dict[int, list[dict]] = {s: [] for s in starts}
    for r in rows:
        ts = r["timestamp_ms"]
        if ts is None:
            continue
        key = ts // every_ms * every_ms
        if key in members:
            members[key].append(r)
    return [client_bucket(start, members[start]).as_dict() for start in starts]


# ---------------------------------------------------------------------------------------------
# The server-side endpoint
# ---------------------------------------------------------------------------------------------
def server_filters(args) -> list[str] | None:
    """The endpoint's filters for these flags (equality on status, tags and metadata only), or
    None when a flag asks for more than it can filter."""
    if any(getattr(args, a, None) for a in ("filter", "text", "span_name", "slower_than", "assessment", "run_id")):
        return None
    pairs: list[tuple[str, str, str]] = []
    if args.session is not None:
        pairs.append(("metadata", tr.TRACE_SESSION_KEY, args.session))
    if args.user is not None:
        pairs.append(("metadata", tr.TRACE_USER_KEY, args.user))
    for key, value in parse_key_values(args.tag, "--tag").items():
        pairs.append(("tag", key, value))
    for key, value in parse_key_values(args.metadata, "--metadata").items():
        pairs.append(("metadata", key, value))
    filters = [f"trace.status = '{args.status}'"] if args.status else []
    for kind, key, value in pairs:
        literal, exact = sql_literal(value)
        if not exact or "`" in key:
            return None
        filters.append(f"trace.{kind}.`{key}` = {literal}")
    return filters


def query(store: Store, body: dict) -> list[dict]:
    from mlflow_skill.store.lookups import PageGuard

    points: list[dict] = []
    token = None
    guard = PageGuard(store, METRICS_PATH)  # a server whose pages never end: exit 6
    while True:
        req = {**body, "max_results": 1000, **({"page_token": token} if token else {})}
        try:
            page = store.post(METRICS_PATH, req, what="querying trace metrics")
        except (NotFoundError, UsageError, NotMlflowError) as exc:  # no such endpoint, or it rejects the query
            raise MetricsUnavailable(str(exc)) from None
        except ServerError as exc:
            if "ENDPOINT_NOT_FOUND" in str(exc) or "not found" in str(exc).lower() or "405" in str(exc):
                raise MetricsUnavailable(str(exc)) from None
            raise
        items = page.get("data_points", []) or []
        points += items
        token = page.get("next_page_token")
        guard.check(items, token, 1000)
        if not token:
            return points


VALUE_METRICS = (  # asked per bucket after the counts: metric name, aggregations
    (
        "latency",
        [
            {"aggregation_type": "PERCENTILE", "percentile_value": 50},
            {"aggregation_type": "PERCENTILE", "percentile_value": 95},
        ],
    ),
    ("total_tokens", [{"aggregation_type": "SUM"}]),
)


@dataclass
class BucketGrid:
    """The endpoint's data points gathered into buckets, by group value then bucket start."""

    cells: dict[str, dict[int, Bucket]] = field(default_factory=dict)

    def cell(self, group: str, start: int) -> Bucket:
        return self.cells.setdefault(group, {}).setdefault(start, Bucket(start))

    def add_counts(self, points: list[dict], group: str | None) -> None:
        """trace_count points, split by status (and name): traces and errors per bucket."""
        for p in points:
            d = p.get("dimensions", {})
            gkey = (
                d.get("trace_name", "") if group == "name" else d.get("trace_status", "") if group == "status" else ""
            )
            bucket = self.cell(gkey, tr.pb_timestamp_ms(d.get("time_bucket")))
            n = int(p["values"].get("COUNT", 0))
            bucket.traces += n
            bucket.errors += n if d.get("trace_status") == "ERROR" else 0

    def add_values(self, points: list[dict], metric: str, group: str | None) -> None:
        """latency or total_tokens points; group None takes the group from the trace_name dimension."""
        for p in points:
            d = p.get("dimensions", {})
            bucket = self.cell(
                group if group is not None else d.get("trace_name", ""), tr.pb_timestamp_ms(d.get("time_bucket"))
            )
            values = p.get("values", {})
            if metric == "latency":
                bucket.p50_ms, bucket.p95_ms = value_of(values, "P50"), value_of(values, "P95")
            else:
                bucket.tokens = value_of(values, "SUM")

    def series(self, starts: list[int]) -> dict[str, list[dict]]:
        out = {}
        for group, cells in self.cells.items():
            buckets = [cells.get(s) or Bucket(s) for s in starts]
            for bucket in buckets:
                bucket.error_rate = bucket.errors / bucket.traces if bucket.traces else None
            out[group] = [bucket.as_dict() for bucket in buckets]
        return out


def server_buckets(
    store: Store,
    exp_ids: list[str],
    filters: list[str],
    window: tuple[int, int, int],
    starts: list[int],
    group: str | None,
) -> dict[str, list[dict]]:
    """{group value ('' without --group-by): buckets} from the endpoint: trace_count by status,
    latency P50/P95 and total_tokens SUM, each per time bucket."""
    every_ms, start_ms, end_ms = window  # both ends inclusive, as the endpoint takes them
    base = {
        "experiment_ids": exp_ids,
        "view_type": "TRACES",
        "time_interval_seconds": every_ms // 1000,
        "start_time_ms": start_ms,
        "end_time_ms": end_ms,
    }
    dim = ["trace_name"] if group == "name" else []
    grid = BucketGrid()
    counts = query(
        store,
        {
            **base,
            "filters": filters,
            "metric_name": "trace_count",
            "aggregations": [{"aggregation_type": "COUNT"}],
            "dimensions": [*dim, "trace_status"],
        },
    )
    grid.add_counts(counts, group)
    # The endpoint splits latency and tokens by name but not by status: one query per status.
    splits = [(g, [f"trace.status = '{g}'"]) for g in grid.cells] if group == "status" else [(None, [])]
    for split, extra in splits:
        for metric, aggs in VALUE_METRICS:
            body = {
                **base,
                "filters": [*filters, *extra],
                "metric_name": metric,
                "aggregations": aggs,
                "dimensions": dim,
            }
            grid.add_values(query(store, body), metric, split)
    return grid.series(starts)


def value_of(values: dict, prefix: str) -> Any:
    for key, v in values.items():
        if key == prefix or key.startswith(prefix + "."):
            return v
    return None


def totals(buckets: list[dict]) -> dict:
    traces = sum(b["traces"] for b in buckets)
    errors = sum(b["errors"] for b in buckets)
    tokens = [b["tokens"] for b in buckets if b["tokens"] is not None]
    return {
        "traces": traces,
        "errors": errors,
        "error_rate": errors / traces if traces else None,
        "tokens": sum(tokens) if tokens else None,
        "p95_max_ms": max((b["p95_ms"] for b in buckets if b["p95_ms"] is not None), default=None),
    }
