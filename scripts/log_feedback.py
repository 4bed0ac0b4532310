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
"""Record what was learnt about a GenAI trace: feedback or ground truth, tags, the run it belongs to.

Usage:
  uv run scripts/log_feedback.py --trace-id ID [--trace-id ID ...]
                                 [--name NAME --value V [--rationale TEXT] [--source human|llm|code]
                                  [--source-id ID] [--expectation]]
                                 [--tag KEY=VALUE ...] [--untag KEY ...] [--run-id RUN_ID]
                                 [--delete-assessment ASSESSMENT_ID]

--name/--value log an MLflow assessment on each trace: feedback (a judgement: correct=false,
score=0.4), or with --expectation the expected answer (ground truth). --value is read as JSON
when it is JSON (false, 0.8, {"a": 1}), else as text. --source says who judged (human, the
default; llm for a judge model; code), --source-id which one (default mlflow-python-skill). Search
traces by it with search_traces.py --assessment NAME=VALUE; read it with get_trace.py.
--tag/--untag set and remove trace tags. --run-id links the traces to a run (MLflow 3's
link-to-run endpoint; an older server is said to lack it). --delete-assessment removes one
assessment (the undo of a feedback).

Every write looks first: the same assessment (name, value, source, rationale) already on the trace
is "already so", so the same command twice logs once. The answer lists each change (before ->
after) and the exact command that undoes it; what the skill wrote carries mlflow_skill.audit (this
script, when, what). Read-only mode (MLFLOW_SKILL_READ_ONLY=1): nothing is sent, exit 8.

Examples:
  uv run scripts/log_feedback.py --trace-id tr-0a1b2c3d --name correct --value false \\
      --rationale "cites the 2023 policy, replaced in 2024"
  uv run scripts/log_feedback.py --trace-id tr-0a1b2c3d --name expected_answer --value "Refunds take 14 days" \\
      --expectation
  uv run scripts/log_feedback.py --trace-id tr-0a1b2c3d --name relevance --value 0.4 --source llm --source-id gpt-judge
  uv run scripts/log_feedback.py --trace-id tr-0a1b2c3d --trace-id tr-4e5f6a7b --tag reviewed=yes
  uv run scripts/log_feedback.py --trace-id tr-0a1b2c3d --run-id 0a1b2c3d4e5f60718293a4b5c6d7e8f9
"""

from __future__ import annotations

import sys

from mlflow_skill.cli.frame import Context, make_parser, run_main

SCRIPT = "log_feedback.py"


def build_parser():
    parser = make_parser(__doc__, prog=f"uv run scripts/{SCRIPT}")
    parser.add_argument("--trace-id", "-t", action="append", metavar="ID", help="the trace; repeatable")
    parser.add_argument("--name", "-n", help="assessment name, e.g. correct, relevance, expected_answer")
    parser.add_argument("--value", "-v", help="its value: JSON (false, 0.8) or text")
    parser.add_argument("--rationale", "-r", metavar="TEXT", help="why: shown beside the value")
    parser.add_argument("--source", choices=("human", "llm", "code"), default="human", help="who judged (human)")
    parser.add_argument("--source-id", metavar="ID", help="which human, judge or code (default mlflow-python-skill)")
    parser.add_argument("--expectation", action="store_true", help="log the expected answer (ground truth)")
    parser.add_argument("--tag", action="append", metavar="KEY=VALUE", help="set a trace tag; repeatable")
    parser.add_argument("--untag", action="append", metavar="KEY", help="remove a trace tag; repeatable")
    parser.add_argument("--run-id", metavar="RUN_ID", help="link the traces to this run (MLflow 3)")
    parser.add_argument("--delete-assessment", metavar="ASSESSMENT_ID", help="remove one assessment (an undo)")
    return parser


def command(ctx: Context) -> int:
    from mlflow_skill.writes.annotate import cmd_log_feedback

    return cmd_log_feedback(ctx)


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), command, argv, SCRIPT)


if __name__ == "__main__":
    sys.exit(main())
