"""What a query_experiments.py command's arguments point at: the runs its --experiment, --filter
and --view select, and the run a RUN_ID names, which may be a model version URI.

Model version URIs (models:/NAME@alias, models:/NAME/3) are the registry's to resolve, and the
registry sits above this domain: commands that take run ids receive its resolver as an argument.
"""

from __future__ import annotations

from collections.abc import Callable

from mlflow_skill.cli.frame import Context
from mlflow_skill.runs import search as rs
from mlflow_skill.store.transport import Store

PROG = "uv run scripts/query_experiments.py"
MODEL_URI = "models:/"

RunRefResolver = Callable[[Store, str], str]  # (store, models:/ URI) -> the source run's id


class ModelRunId(str):
    """A run id that came from a model version URI, still a plain str to every caller, which
    remembers the version that named it (`churn@champion v3`) for headers such as compare's."""

    model_version: str

    def __new__(cls, run_id: str, model_version: str) -> ModelRunId:
        made = super().__new__(cls, run_id)
        made.model_version = model_version
        return made


def model_version_of(run_id: str) -> str | None:
    """'churn@champion v3' when the id was resolved from models:/churn@champion, else None."""
    return getattr(run_id, "model_version", None)


def query_for(ctx: Context, order_by: list[str] | None = None, extra: list[str] | None = None) -> rs.Query:
    """The run query a search command's --experiment, --filter and --view describe."""
    args = ctx.args
    return rs.build_query(
        ctx.store, args.experiment, args.filter, order_by, extra, getattr(args, "view", None) or "active"
    )


def run_id_of(ctx: Context, ref: str, resolve_ref: RunRefResolver) -> str:
    """A run id, or a model version URI (models:/NAME@alias, models:/NAME/3) -> its run id."""
    return resolve_ref(ctx.store, ref) if ref.startswith(MODEL_URI) else ref
