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
"""Read one MLflow trace (or several) as a span tree, or a whole session as a conversation.

Usage:
  uv run scripts/get_trace.py --trace-id ID [ID ...] [--full] [--span NAME_OR_ID]
                              [--max-spans N] [--prices prices.json] [--output FILE [--force]]
                              [--format markdown|json]
  uv run scripts/get_trace.py --session ID [--experiment NAME_OR_ID ...] [--max-turns N]
                              [--prices prices.json] [--format markdown|json]

A trace: a header (status, start time, duration, session, user, tags, token usage, request and
response previews, root-cause error), the span tree indented by nesting (name, span type,
duration and share of the trace, status, inputs -> outputs previews; failed spans show their
exception or status message), the slowest spans by own time (duration minus child spans),
and the assessments: feedback and expectations with value, source (HUMAN, LLM_JUDGE, CODE and
who), rationale (bounded) and the span each points at.

  --full            inputs and outputs whole instead of short previews
  --span NAME_OR_ID one span completely: attributes, inputs, outputs, events (stack traces)
  --max-spans N     spans listed in the tree (default 200; the rest are counted)
  --output FILE     write the complete trace JSON ({"info": ..., "data": {"spans": ...}}, the
                    shape `mlflow traces get` prints; a list for several ids) and print only
                    the summary, without the tree

A session (--session ID, metadata mlflow.trace.session): its traces oldest first, each turn as
user input -> response (previews), with status, latency, tokens, feedback and, for failed
turns, the root-cause error inline; then the totals (turns, errors, time, tokens, feedback
pass rates or means, cost with --prices) and the trace id of every turn to open. Scope:
--experiment (default MLFLOW_EXPERIMENT_ID / _NAME). --max-turns N turns shown (default 8;
all in --format json); failed turns beyond them are still listed.

--prices prices.json: cost in USD from the models named on spans with token usage,
{"gpt-4o-mini": {"input_per_1m": 0.15, "output_per_1m": 0.6}}; no file, no cost.

An unknown trace id or an empty session is an error (exit 3). Find ids with
scripts/search_traces.py (sessions: search_traces.py --group-by session).

Examples:
  uv run scripts/get_trace.py --trace-id tr-8d3f0c1e2b4a4f5e9d7c6b5a4f3e2d1c
  uv run scripts/get_trace.py --trace-id tr-8d3f... --span retriever
  uv run scripts/get_trace.py --trace-id tr-8d3f... tr-19ab... --output traces.json
  uv run scripts/get_trace.py --trace-id tr-8d3f... --format json
  uv run scripts/get_trace.py --session sess-42 --experiment my-agent
"""

from __future__ import annotations

import sys

from mlflow_skill.cli.frame import Context, check_output_target, make_parser, run_main
from mlflow_skill.core.errors import EXIT_OK, UsageError
from mlflow_skill.traces.cost import load_prices
from mlflow_skill.traces.sessions import session_view
from mlflow_skill.traces.tree import traces_view

SCRIPT = "get_trace.py"


def build_parser():
    parser = make_parser(__doc__, prog=f"uv run scripts/{SCRIPT}")
    parser.add_argument("--trace-id", nargs="+", action="extend", metavar="ID", help="trace id(s)")
    parser.add_argument("--session", metavar="ID", help="a session's traces as a conversation")
    parser.add_argument(
        "--experiment", action="append", metavar="NAME_OR_ID", help="--session: experiment(s) to look in"
    )
    parser.add_argument("--max-turns", type=int, default=8, help="--session: turns shown (default 8; all in json)")
    parser.add_argument(
        "--limit", type=int, default=1000, help="--session: at most this many traces read (default 1000)"
    )
    parser.add_argument("--full", action="store_true", help="show inputs and outputs whole")
    parser.add_argument("--span", metavar="NAME_OR_ID", help="show one span completely (attributes, events)")
    parser.add_argument("--max-spans", type=int, default=200, help="spans listed in the tree (default 200)")
    parser.add_argument("--prices", metavar="FILE", help="prices.json: cost in USD per model (see above)")
    parser.add_argument("--output", metavar="FILE", help="write the complete trace JSON; print only the summary")
    parser.add_argument("--force", action="store_true", help="let --output replace an existing file")
    return parser


def check_session_args(args) -> None:
    if args.trace_id:
        raise UsageError("pass --trace-id or --session, not both")
    if args.max_turns < 1 or args.limit < 1:
        raise UsageError("--max-turns and --limit must be at least 1")
    if args.output or args.span or args.full:
        raise UsageError(
            "--output, --span and --full read one trace: open a turn with --trace-id ID "
            "(or --format json for the session)"
        )


def trace_ids(args) -> list[str]:
    ids = list(dict.fromkeys(t.strip() for t in args.trace_id or [] if t.strip()))
    if not ids:
        raise UsageError(
            "pass --trace-id ID (find ids: uv run scripts/search_traces.py --experiment NAME), "
            "or --session ID for a conversation"
        )
    return ids


def command(ctx: Context) -> int:
    args = ctx.args
    if args.max_spans < 1:
        raise UsageError("--max-spans must be at least 1")
    if args.session is not None:
        check_session_args(args)
        ctx.emit(session_view(ctx, load_prices(args.prices)))
        return EXIT_OK
    ids = trace_ids(args)
    check_output_target(args)
    ctx.emit(traces_view(ctx, ids, load_prices(args.prices)))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), command, argv, SCRIPT)


if __name__ == "__main__":
    sys.exit(main())
