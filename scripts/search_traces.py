# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "mlflow-skinny>=3.7,<3.19",
#     "sqlalchemy>=1.4,<3",
#     "alembic>=1.8,!=1.10.0,<2",
#     "flask>=2.2,<4",
#     "python-dotenv>=1.0",
#     "requests>=2.31",
# ]
# [tool.uv]
# compile-bytecode = false  # a first call compiles only what it imports, or borrows it (store/embedded.py)
# ///
# Dependencies: MLflow's client and tracking store without its ML stack (mlflow-skinny plus the
# database and server-handler packages full `mlflow` adds for the embedded sqlite store). Not
# compiled at install: compiling all of it took most of each script's first call, six times over;
# see store/transport.py bytecode_cache and store/embedded.py borrow_bytecode for what happens instead.
"""Find GenAI traces (LLM apps, agents) in MLflow: one compact table, per-group quality and
cost summaries, or metrics over time.

Usage:
  uv run scripts/search_traces.py [--experiment NAME_OR_ID ...] [--run-id ID] [--filter EXPR]
                                  [--status OK|ERROR|IN_PROGRESS] [--session ID] [--user ID]
                                  [--slower-than MS] [--since WHEN] [--until WHEN]
                                  [--tag K=V ...] [--metadata K=V ...] [--text SUBSTRING]
                                  [--span-name NAME] [--assessment NAME[OP VALUE] ...]
                                  [--order-by EXPR ...] [--max-results N] [--page-token TOKEN]
                                  [--group-by KEY [--max-groups N]] [--every DURATION]
                                  [--prices prices.json] [--output FILE [--force]]
                                  [--format markdown|json|csv]

Scope: --experiment (default: MLFLOW_EXPERIMENT_ID, then MLFLOW_EXPERIMENT_NAME), and/or
--run-id (traces logged under that run; its experiment is used when none is given).

--filter takes MLflow's trace filter grammar as is (AND only): trace.status,
trace.timestamp_ms, trace.execution_time_ms, trace.name, tag.K, metadata.`K`, span.name,
span.type, span.status, span.attributes.K, feedback.NAME, expectation.NAME,
trace.text LIKE '%x%'; comparators = != < > LIKE ILIKE RLIKE IN IS NULL. The convenience
flags below are ANDed to it:
  --status ERROR            trace.status = 'ERROR'
  --session ID / --user ID  metadata.`mlflow.trace.session` / metadata.`mlflow.trace.user`
  --slower-than 2000        trace.execution_time_ms > 2000
  --since 1h --until 2026-11-20   trace.timestamp_ms window (durations ago: 30m 1h 2d 1w,
                            or ISO dates/times, UTC unless an offset is given)
  --tag k=v --metadata k=v  exact match (repeatable)
  --text refund             trace.text LIKE '%refund%' (inputs/outputs of spans)
  --span-name retriever     span.name = 'retriever' (some span of the trace)
  --assessment correct=yes  feedback.correct = 'yes' (booleans match 'true'/'false');
  --assessment "score>=0.8" numeric feedback: > >= < <= (MLflow's feedback.* grammar);
  --assessment helpful      has that feedback at all (IS NOT NULL); repeatable, ANDed

Table: trace id, time (UTC), status, duration, name (root span), session, user, request
preview, tokens (when recorded) and, for failed traces, the root-cause error: the message of
the deepest failed span. Only that column needs spans, so spans are fetched for the ERROR
traces on the shown page only (--no-errors skips it). Empty columns are left out.

--group-by KEY pages through ALL matching traces (up to --limit, default 10000, 500 per
request) and shows per group: traces, errors, error rate, p50/p95 latency, tokens, each
feedback's pass rate (booleans, yes/no, pass/fail) or mean (numbers), and trace ids to open
(failed first, then slowest). KEY: session, user, status, name, tag.NAME or metadata.NAME
(e.g. --group-by tag.app_version: "is version B better than A on feedback?" in one call).

--every 1h: metrics over time (with --since, default 7d): traces, errors, error rate,
p50/p95 latency and tokens per bucket, a sparkline per series (each character keeps its
bucket's min and max, never a mean), per group with --group-by. Uses the server's
POST /api/3.0/mlflow/traces/metrics (MLflow 3.x) when the flags fit it (status, session, user,
tag and metadata equality; --group-by name or status); otherwise, or with --client-side, it
aggregates a bounded search here and says so.

--prices prices.json adds a cost column (USD) from the models named on the spans that carry
token usage: {"gpt-4o-mini": {"input_per_1m": 0.15, "output_per_1m": 0.6}, ...}. Costs need
spans, fetched for every trace counted. Nothing is priced without this file.

Newest first by default; --order-by takes MLflow's keys (timestamp_ms, execution_time_ms,
status, name) with ASC/DESC.

Examples:
  uv run scripts/search_traces.py --experiment my-agent --status ERROR --since 1d
  uv run scripts/search_traces.py --experiment my-agent --session sess-42 --order-by "timestamp_ms ASC"
  uv run scripts/search_traces.py --experiment my-agent --slower-than 2000 --since 2026-11-20
  uv run scripts/search_traces.py --experiment 3 --assessment correct=false --user alice
  uv run scripts/search_traces.py --experiment my-agent --group-by tag.app_version --since 7d
  uv run scripts/search_traces.py --experiment my-agent --every 1d --since 7d
  uv run scripts/search_traces.py --experiment my-agent --group-by session --prices prices.json
  uv run scripts/search_traces.py --experiment my-agent --max-results 200 --output traces.json
Next: uv run scripts/get_trace.py --trace-id TRACE_ID   (span tree, errors, assessments)
      uv run scripts/get_trace.py --session SESSION_ID --experiment NAME   (a conversation)
"""

from __future__ import annotations

import sys

from mlflow_skill.cli.frame import Context, check_output_target, make_parser, run_main
from mlflow_skill.core.errors import EXIT_OK, UsageError
from mlflow_skill.core.values import parse_duration_ms
from mlflow_skill.traces import api as tr
from mlflow_skill.traces.cost import load_prices
from mlflow_skill.traces.filters import search_scope
from mlflow_skill.traces.groups import group_label, group_view
from mlflow_skill.traces.listing import list_view
from mlflow_skill.traces.timeline import metrics_view

SCRIPT = "search_traces.py"


def build_parser():
    parser = make_parser(__doc__, prog=f"uv run scripts/{SCRIPT}", formats=("markdown", "json", "csv"))
    scope = parser.add_argument_group("scope")
    scope.add_argument("--experiment", action="append", metavar="NAME_OR_ID", help="experiment name or id; repeatable")
    scope.add_argument("--run-id", help="only traces logged under this run")
    flt = parser.add_argument_group("filters (ANDed)")
    flt.add_argument("--filter", help="MLflow trace filter expression, passed as is")
    flt.add_argument("--status", type=str.upper, choices=tr.TRACE_STATES, help="trace status")
    flt.add_argument("--session", help="session id (metadata mlflow.trace.session)")
    flt.add_argument("--user", help="user id (metadata mlflow.trace.user)")
    flt.add_argument("--slower-than", type=float, metavar="MS", help="execution time above MS milliseconds")
    flt.add_argument("--since", metavar="WHEN", help="started at or after: 30m, 1h, 2d, 1w ago, or an ISO date/time")
    flt.add_argument("--until", metavar="WHEN", help="started before: same forms as --since")
    flt.add_argument("--tag", action="append", metavar="K=V", help="trace tag equals; repeatable")
    flt.add_argument("--metadata", action="append", metavar="K=V", help="trace metadata equals; repeatable")
    flt.add_argument("--text", metavar="SUBSTRING", help="text anywhere in span inputs/outputs (trace.text LIKE)")
    flt.add_argument("--span-name", metavar="NAME", help="has a span with this name")
    flt.add_argument(
        "--assessment",
        action="append",
        metavar="NAME[OP VALUE]",
        help="feedback filter: NAME, NAME=VALUE, NAME!=VALUE, 'NAME>=0.8'; repeatable",
    )
    out = parser.add_argument_group("paging and output")
    out.add_argument("--order-by", action="append", metavar="EXPR", help='e.g. "execution_time_ms DESC"; repeatable')
    out.add_argument("--max-results", type=int, default=10, help="traces per page (default 10, at most 500)")
    out.add_argument("--page-token", help="token printed by the previous page")
    out.add_argument(
        "--group-by", metavar="KEY", help="session|user|status|name|tag.NAME|metadata.NAME: summarise per group"
    )
    out.add_argument(
        "--max-groups", type=int, default=10, help="groups shown in markdown (default 10; all in json/csv)"
    )
    out.add_argument(
        "--every", metavar="DURATION", help="metrics per time bucket, e.g. 1h or 1d (with --since, default 7d)"
    )
    out.add_argument("--client-side", action="store_true", help="--every: aggregate here even if the server could")
    out.add_argument(
        "--limit", type=int, default=10000, help="--group-by/--every: at most this many traces (default 10000)"
    )
    out.add_argument(
        "--prices", metavar="FILE", help="prices.json: adds a cost column (USD per million tokens per model)"
    )
    out.add_argument("--no-errors", action="store_true", help="do not fetch spans for the error column")
    out.add_argument("--output", metavar="FILE", help="also write the full result (complete trace infos) as JSON")
    out.add_argument("--force", action="store_true", help="let --output replace an existing file")
    return parser


def check_args(args) -> None:
    if not 1 <= args.max_results <= tr.TRACE_PAGE_MAX:
        raise UsageError(f"--max-results must be 1..{tr.TRACE_PAGE_MAX} (the server's page limit)")
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    if args.max_groups < 1:
        raise UsageError("--max-groups must be at least 1")
    if (args.group_by or args.every) and args.page_token:
        raise UsageError("--group-by and --every cover all matching traces: drop --page-token")
    if args.group_by:
        group_label(args.group_by)  # validates
    if args.every is not None:
        every = parse_duration_ms(args.every, "--every")
        if every < 1000 or every % 1000:
            raise UsageError(f"--every {args.every}: use whole seconds or more, e.g. 30m, 1h, 1d")
    check_output_target(args)


def command(ctx: Context) -> int:
    args = ctx.args
    check_args(args)
    prices = load_prices(args.prices)
    scope = search_scope(ctx)
    if args.every:
        view = metrics_view(ctx, scope)
    elif args.group_by:
        view = group_view(ctx, scope, prices)
    else:
        view = list_view(ctx, scope, prices)
    ctx.emit(view)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), command, argv, SCRIPT)


if __name__ == "__main__":
    sys.exit(main())
