# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "mlflow>=3.7",
#     "python-dotenv>=1.0",
#     "requests>=2.31",
# ]
# [tool.uv]
# compile-bytecode = true  # MLflow is imported for non-server stores: compile once, not per call
# ///
"""Query an MLflow tracking store: experiments, runs, one run, comparisons, best runs, overfitting,
failures, aggregates, exports and artifacts. Read-only: nothing is ever written to the store.

Usage:
  uv run scripts/query_experiments.py COMMAND [options]     (COMMAND --help shows its examples)

Commands:
  experiments  list experiments (active, deleted or all; name filter; paged)
  runs         search runs with MLflow's filter grammar, plus OR and numeric comparisons on params
  run          one run: info, params, latest metrics, tags, datasets, parent/children, artifacts
  compare      several runs side by side, only what differs by default
  best         top N runs by a metric (max or min)
  overfit      runs whose train/test metric gap exceeds a threshold
  failed       FAILED or KILLED runs with their error tags
  aggregate    group runs by params/tags and summarise metrics (count, mean, min, max)
  export       every matching run to a CSV or JSON file (atomic, --force to overwrite)
  artifacts    a run's artifacts (path, size), optionally under a sub-path

Filters (runs, best, overfit, failed, aggregate, export): MLflow's grammar is passed to the
server (metrics.x > 1, params.opt = 'adam', tags.team LIKE 'q%', attributes.status = 'FAILED',
datasets.name IN ('a','b'), params."learning rate" = '0.1', params.`batch-size` = '32').
Two extensions run on the client, and the output says so:
  - OR between AND-groups: each group is one server search; results are merged by run id
    (no duplicates) and re-sorted by --order-by.
  - numeric comparisons on params (params.lr > 0.001, >=, <, <=, and = / != with an unquoted
    number): removed from the server filter and evaluated on the fetched runs. A run that lacks
    the param does not match; a run whose value is not a number is an error (exit 2).
Such queries fetch every matching run, then show one page; their page token is an offset.

Examples:
  uv run scripts/query_experiments.py experiments
  uv run scripts/query_experiments.py runs --experiment btc-momentum --order-by "metrics.sharpe DESC"
  uv run scripts/query_experiments.py runs --filter "metrics.sharpe > 1 OR params.lr > 0.001"
  uv run scripts/query_experiments.py run 0a1b2c3d4e5f60718293a4b5c6d7e8f9
  uv run scripts/query_experiments.py best --experiment btc-momentum --metric sharpe --top 5
  uv run scripts/query_experiments.py export --experiment btc-momentum --output runs.csv
"""


import argparse
import csv
import io
import json
import math
import re
import shlex
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import _common as c

SCRIPT = "query_experiments.py"
PROG = f"uv run scripts/{SCRIPT}"
SEARCH_RUNS = f"{c.API}/runs/search"
VIEWS = {"active": "ACTIVE_ONLY", "deleted": "DELETED_ONLY", "all": "ALL"}
FORMATS = ("markdown", "json", "csv")
SCAN_PAGE = 2_000  # runs per request when every match is needed: measured as fast as 10,000 at half the memory
MAX_OR_GROUPS = 100  # each OR group is one server search (or a full scan): bound what one filter costs
OFFSET_PREFIX = "offset-"  # page tokens of client-side queries: an offset into the merged result
ERROR_WORDS = ("error", "exception", "traceback", "failure", "fail_reason")
LOWER_IS_BETTER_WORDS = ("loss", "error", "err", "mse", "mae", "rmse", "mape", "drawdown", "perplexity", "latency", "wer", "cer")
ATTRIBUTES = {  # column name -> how to read it from a run's info
    "run_id": "run_id",
    "run_name": "run_name",
    "status": "status",
    "start_time": "start_time",
    "end_time": "end_time",
    "user_id": "user_id",
    "user": "user_id",
    "artifact_uri": "artifact_uri",
    "lifecycle_stage": "lifecycle_stage",
    "experiment_id": "experiment_id",
}
PREFIXES = {
    "metric": "metrics", "metrics": "metrics",
    "param": "params", "params": "params", "parameter": "params", "parameters": "params",
    "tag": "tags", "tags": "tags",
    "attribute": "attr", "attributes": "attr", "attr": "attr", "run": "attr",
    "dataset": "datasets", "datasets": "datasets",
}  # fmt: skip


# =============================================================================================
# The filter language: MLflow's AND-grammar, plus OR groups and numeric comparisons on params
# =============================================================================================
@dataclass
class Token:
    kind: str  # word, str (single-quoted), quoted ("..." or `...`), op, punct, and, or
    text: str
    start: int
    end: int


OPERATORS = (">=", "<=", "!=", "<>", "=", ">", "<")


def tokenize(text: str) -> list[Token]:
    """Split a filter into tokens, keeping quoted strings and quoted keys (params."a b") whole."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        start = i
        if ch in "'\"`":
            i = _quoted_end(text, i)
            tokens.append(Token("str" if ch == "'" else "quoted", text[start:i], start, i))
            continue
        if ch in "(),":
            tokens.append(Token("punct", ch, start, i + 1))
            i += 1
            continue
        op = next((o for o in OPERATORS if text.startswith(o, i)), None)
        if op:
            tokens.append(Token("op", op, start, i + len(op)))
            i += len(op)
            continue
        while i < n and not text[i].isspace() and text[i] not in "(),<>=!'":
            if text[i] in "\"`":
                if text[i - 1] != ".":
                    break
                i = _quoted_end(text, i)  # params."learning rate": the quoted key belongs to the word
                continue
            i += 1
        if i == start:  # a lone '!' or similar
            raise c.UsageError(f"cannot read the filter at {text[start:start + 20]!r}: check its syntax")
        word = text[start:i]
        kind = word.lower() if word.lower() in ("and", "or") else "word"
        tokens.append(Token(kind, word, start, i))
    return tokens


def _quoted_end(text: str, i: int) -> int:
    quote = text[i]
    j = text.find(quote, i + 1)
    if j < 0:
        raise c.UsageError(f"unclosed {quote} in the filter near {text[i:i + 30]!r}: close the quote")
    return j + 1


def split_tokens(tokens: list[Token], sep: str) -> list[list[Token]]:
    """Split at top-level separator tokens (outside parentheses)."""
    parts: list[list[Token]] = [[]]
    depth = 0
    for tok in tokens:
        if tok.kind == "punct" and tok.text == "(":
            depth += 1
        elif tok.kind == "punct" and tok.text == ")":
            depth -= 1
        if tok.kind == sep and depth == 0:
            parts.append([])
        else:
            parts[-1].append(tok)
    return parts


def split_key(word: str) -> tuple[str, str] | None:
    """'params."learning rate"' -> ('params', 'learning rate'); bare attributes -> ('attr', name)."""
    if "." not in word:
        return ("attr", word) if word in ATTRIBUTES or word in ("created", "run name") else None
    prefix, key = word.split(".", 1)
    kind = PREFIXES.get(prefix)
    if kind is None:
        return None
    if len(key) >= 2 and key[0] == key[-1] and key[0] in "\"`'":
        key = key[1:-1]
    return kind, key


@dataclass
class ParamComparison:
    """A numeric comparison on a param, evaluated on the client."""

    key: str
    op: str
    value: float
    text: str

    def matches(self, run: dict) -> bool:
        raw = c.run_params(run).get(self.key)
        if raw is None:
            return False
        try:
            number = float(raw)
        except ValueError:
            raise c.UsageError(
                f"run {c.run_name(run) or '?'} ({run['info']['run_id']}) has params.{quote_key(self.key)} = {raw!r}, "
                f"not a number, so `{self.text}` cannot compare it: use a text comparison "
                f"(params.{quote_key(self.key)} = '{raw}') or narrow --experiment/--filter"
            ) from None
        return {
            ">": number > self.value, ">=": number >= self.value, "<": number < self.value,
            "<=": number <= self.value, "=": number == self.value, "!=": number != self.value,
            "<>": number != self.value,
        }[self.op]  # fmt: skip


def quote_key(key: str) -> str:
    return key if key.replace("_", "").replace(".", "").isalnum() else f"`{key}`"


@dataclass
class Group:
    """One AND-group: clauses for the server, numeric param comparisons for the client."""

    server: list[str] = field(default_factory=list)
    client: list[ParamComparison] = field(default_factory=list)

    @property
    def server_filter(self) -> str:
        return " AND ".join(self.server)

    def accepts(self, run: dict) -> bool:
        return all(cmp.matches(run) for cmp in self.client)


def _as_number(tok: Token, op: str) -> float | None:
    """The comparison value, when it makes the clause a numeric comparison on a param."""
    text = tok.text
    if tok.kind == "str":
        if op in ("=", "!=", "<>"):
            return None  # a quoted value compared for (in)equality is MLflow's text comparison
        text = text[1:-1]
    elif tok.kind != "word":
        return None
    try:
        return float(text)
    except ValueError:
        return None


def parse_filter(text: str | None) -> tuple[list[Group], list[tuple[str, str]]]:
    """-> (AND-groups, keys referenced as (kind, key)). One group when there is no OR."""
    text = (text or "").strip()
    if not text:
        return [Group()], []
    tokens = tokenize(text)
    groups: list[Group] = []
    refs: list[tuple[str, str]] = []
    or_parts = split_tokens(tokens, "or")
    if len(or_parts) > MAX_OR_GROUPS:
        raise c.UsageError(
            f"--filter has {len(or_parts)} OR branches, at most {MAX_OR_GROUPS}: use IN ('a', 'b', ...) for many "
            "values of one key, or several narrower queries"
        )
    for or_part in or_parts:
        if not or_part:
            raise c.UsageError(f"empty OR branch in --filter {text!r}: write `A OR B`, each side a condition")
        group = Group()
        for clause in split_tokens(or_part, "and"):
            if not clause:
                raise c.UsageError(f"empty AND clause in --filter {text!r}: write `A AND B`")
            clause_text = text[clause[0].start : clause[-1].end]
            ident = split_key(clause[0].text) if clause[0].kind == "word" else None
            if ident and (ident[0] != "attr" or ident[1] in ATTRIBUTES):
                refs.append(ident)
            if ident and ident[0] == "params" and len(clause) == 3 and clause[1].kind == "op":
                number = _as_number(clause[2], clause[1].text)
                if number is not None:
                    group.client.append(ParamComparison(ident[1], clause[1].text, number, clause_text))
                    continue
            group.server.append(clause_text)
        groups.append(group)
    return groups, list(dict.fromkeys(refs))


# =============================================================================================
# Ordering (the server's, reproduced on the client for merged OR results)
# =============================================================================================
@dataclass
class OrderKey:
    kind: str  # metrics, params, tags, attr
    key: str
    desc: bool
    raw: str


def parse_order(raw: str) -> OrderKey:
    try:
        words = shlex.split(raw.replace("`", '"'))
    except ValueError:
        words = []
    if not words or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
        raise c.UsageError(f"--order-by {raw!r} is not KEY [ASC|DESC], e.g. \"metrics.sharpe DESC\"")
    ident = split_key(words[0]) or ("attr", words[0])
    if ident[0] == "datasets":
        raise c.UsageError(f"--order-by {raw!r}: datasets cannot be ordered by")
    return OrderKey(ident[0], ident[1], len(words) == 2 and words[1].lower() == "desc", raw)


def sort_value(run: dict, kind: str, key: str) -> Any:
    if kind == "metrics":
        value = c.run_metrics(run).get(key)
        return None if value is None or math.isnan(value) else value
    if kind == "params":
        return c.run_params(run).get(key)
    if kind == "tags":
        return c.run_tags(run).get(key)
    info = run.get("info", {})
    field_name = {"created": "start_time", "run name": "run_name"}.get(key, ATTRIBUTES.get(key, key))
    value = info.get(field_name)
    if field_name in ("start_time", "end_time") and value not in (None, ""):
        return int(value)
    return value


def sort_runs(runs: list[dict], order: list[OrderKey]) -> list[dict]:
    """Sort like the server: each key in turn, missing values last; then start_time DESC, run_id."""
    keys = [*order, OrderKey("attr", "start_time", True, ""), OrderKey("attr", "run_id", False, "")]
    if not order:
        keys = keys[-2:]
    result = sorted(runs, key=lambda r: r["info"]["run_id"])
    for key in reversed(keys):
        present = [r for r in result if sort_value(r, key.kind, key.key) is not None]
        missing = [r for r in result if sort_value(r, key.kind, key.key) is None]
        present.sort(key=lambda r: sort_value(r, key.kind, key.key), reverse=key.desc)
        result = present + missing
    return result


# =============================================================================================
# Fetching runs
# =============================================================================================
@dataclass
class Query:
    experiments: list[dict]
    groups: list[Group]
    refs: list[tuple[str, str]]
    order: list[OrderKey]
    view: str = "ACTIVE_ONLY"

    @property
    def exp_ids(self) -> list[str]:
        return [e["experiment_id"] for e in self.experiments]

    @property
    def client_side(self) -> bool:
        return len(self.groups) > 1 or any(g.client for g in self.groups)

    def body(self, group: Group) -> dict:
        body: dict[str, Any] = {"experiment_ids": self.exp_ids, "run_view_type": self.view}
        if group.server_filter:
            body["filter"] = group.server_filter
        if self.order:
            body["order_by"] = [o.raw for o in self.order]
        return body

    def notes(self) -> list[str]:
        """What ran where, in words: the output always says what was evaluated client-side."""
        notes = []
        if len(self.groups) > 1:
            shown = " | ".join(
                f"`{g.server_filter or '(all runs)'}`" + (f" + client `{' AND '.join(x.text for x in g.client)}`" if g.client else "")
                for g in self.groups
            )
            notes.append(
                f"OR: {len(self.groups)} AND-groups sent to the server one by one ({shown}); merged by run id "
                "without duplicates and re-sorted on the client"
            )
        client = [cmp.text for g in self.groups for cmp in g.client]
        if client:
            notes.append(
                "evaluated client-side (params are text on the server; compared here as numbers): "
                + ", ".join(f"`{t}`" for t in client)
            )
        return notes


def build_query(ctx: c.Context, filter_text: str | None, order_by: list[str] | None = None, extra: list[str] | None = None) -> Query:
    groups, refs = parse_filter(filter_text)
    for group in groups:
        group.server.extend(extra or [])
    order = [parse_order(o) for o in order_by or []]
    view = VIEWS[getattr(ctx.args, "view", None) or "active"]
    return Query(resolve_experiments(ctx), groups, refs, order, view)


def resolve_experiments(ctx: c.Context) -> list[dict]:
    refs = getattr(ctx.args, "experiment", None) or []
    if refs:
        found = [c.get_experiment(ctx.store, ref) for ref in refs]
        return list({e["experiment_id"]: e for e in found}.values())
    return c.all_experiments(ctx.store, "ACTIVE_ONLY")


def iter_group(store: c.Store, query: Query, group: Group, limit: int | None, page_size: int = SCAN_PAGE) -> Iterator[dict]:
    """The runs of one AND-group, server pages followed, client-side clauses applied."""
    if not query.exp_ids:
        return
    server_limit = None if group.client else limit
    kept = 0
    for run in stream_search(store, query.body(group), server_limit, page_size):
        if group.accepts(run):
            yield run
            kept += 1
            if limit is not None and kept >= limit:
                return


def stream_search(store: c.Store, body: dict, limit: int | None, page_size: int) -> Iterator[dict]:
    """Follow next_page_token; each run is released as soon as it is consumed and a page is
    dropped before the next is requested, so at most one page of raw JSON is alive."""
    body = dict(body)
    seen = 0
    while True:
        body["max_results"] = min(page_size, limit - seen) if limit is not None else page_size
        page = store.post(SEARCH_RUNS, body)
        token = page.get("next_page_token")
        runs = page.pop("runs", None) or []
        del page
        runs.reverse()
        while runs:
            yield runs.pop()
            seen += 1
        if not token or (limit is not None and seen >= limit):
            return
        body["page_token"] = token


def iter_runs(store: c.Store, query: Query, limit: int | None = None, page_size: int = SCAN_PAGE) -> Iterator[dict]:
    """Every matching run once, in server order per group (no re-sort: export streams this)."""
    seen: set[str] = set()
    for group in query.groups:
        for run in iter_group(store, query, group, limit, page_size):
            run_id = run["info"]["run_id"]
            if run_id not in seen:
                seen.add(run_id)
                yield run


def fetch_all(store: c.Store, query: Query, limit: int | None = None) -> list[dict]:
    """Every matching run (or the first `limit` in --order-by order), merged and sorted."""
    runs = list(iter_runs(store, query, limit))
    if len(query.groups) > 1:
        runs = sort_runs(runs, query.order)
    return runs[:limit] if limit is not None else runs


@dataclass
class Page:
    runs: list[dict]
    next_token: str | None
    first: int = 1
    total: int | None = None


def fetch_page(store: c.Store, query: Query, max_results: int, token: str | None) -> Page:
    """One page: straight from the server when it can answer alone, else fetch-sort-slice."""
    if max_results < 1:
        raise c.UsageError("--max-results must be at least 1")
    if not query.client_side:
        if token and token.startswith(OFFSET_PREFIX):
            raise c.UsageError("that --page-token came from an OR/numeric-param query: rerun with the same --filter")
        if not query.exp_ids:
            return Page([], None)
        body = query.body(query.groups[0]) | {"max_results": min(max_results, 50_000)}
        if token:
            body["page_token"] = token
        answer = store.post(SEARCH_RUNS, body)
        return Page(answer.get("runs", []), answer.get("next_page_token") or None)
    offset = 0
    if token:
        if not token.startswith(OFFSET_PREFIX) or not token[len(OFFSET_PREFIX) :].isdigit():
            raise c.UsageError("that --page-token came from a plain server query, not this OR/numeric-param one")
        offset = int(token[len(OFFSET_PREFIX) :])
    runs = fetch_all(store, query)
    chunk = runs[offset : offset + max_results]
    more = offset + max_results < len(runs)
    return Page(chunk, f"{OFFSET_PREFIX}{offset + max_results}" if more else None, offset + 1, len(runs))


# =============================================================================================
# Shaping runs into rows
# =============================================================================================
@dataclass(frozen=True)
class Column:
    kind: str  # metrics, params, tags, attr, experiment, duration
    key: str

    @property
    def label(self) -> str:
        if self.kind == "attr":
            return {"run_name": "run", "run_id": "id", "start_time": "start", "end_time": "end"}.get(self.key, self.key)
        if self.kind in ("experiment", "duration", "error"):
            return self.kind
        return f"{self.kind}.{self.key}"


def parse_columns(text: str | None) -> list[Column]:
    cols = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        if part in ("experiment", "duration"):
            cols.append(Column(part, part))
            continue
        ident = split_key(part)
        if ident is None or ident[0] == "datasets":
            raise c.UsageError(
                f"--columns: unknown column {part!r}; use metrics.KEY, params.KEY, tags.KEY, experiment, duration "
                f"or one of {', '.join(sorted(ATTRIBUTES))}"
            )
        cols.append(Column(*ident))
    return cols


def cell(run: dict, col: Column, exp_names: dict[str, str]) -> Any:
    """The raw value of a column for a run (None when absent)."""
    info = run.get("info", {})
    if col.kind == "metrics":
        return c.run_metrics(run).get(col.key)
    if col.kind == "params":
        return c.run_params(run).get(col.key)
    if col.kind == "tags":
        return c.run_tags(run).get(col.key)
    if col.kind == "error":
        return "; ".join(f"{k}: {v}" for k, v in error_tags(run).items()) or None
    if col.kind == "experiment":
        return exp_names.get(info.get("experiment_id"), info.get("experiment_id"))
    if col.kind == "duration":
        start, end = info.get("start_time"), info.get("end_time")
        return int(end) - int(start) if start and end else None
    if col.key == "run_name":
        return c.run_name(run)
    return sort_value(run, "attr", col.key)


def show_cell(value: Any, col: Column) -> str:
    if value is None:
        return ""
    if col.kind == "metrics":
        return c.fmt_num(value)
    if col.kind == "duration":
        return c.fmt_duration(value)
    if col.kind == "error":
        return c.truncate(value, 80)
    if col.kind == "attr" and col.key in ("start_time", "end_time"):
        return c.fmt_time(value)
    if col.kind == "attr" and col.key == "run_name":
        return c.truncate(value, 40)
    if col.kind == "attr":
        return str(value)
    return c.fmt_value(value, 30)


def raw_cell(value: Any, col: Column) -> Any:
    if col.kind == "attr" and col.key in ("start_time", "end_time"):
        return c.iso_time(value)
    if isinstance(value, float):
        return c.json_safe(value)
    return value


def table_columns(query: Query, runs: list[dict], extra: list[Column], with_experiment: bool) -> list[Column]:
    cols = [Column("attr", "run_name"), Column("attr", "run_id"), Column("attr", "status"), Column("attr", "start_time")]
    if with_experiment:
        cols.append(Column("experiment", "experiment"))
    named = [Column(kind, key) for kind, key in query.refs if kind in ("metrics", "params", "tags")]
    named += [Column(o.kind, o.key) for o in query.order if o.kind in ("metrics", "params", "tags")]
    named += [Column("attr", key) for kind, key in query.refs if kind == "attr" and key in ATTRIBUTES]
    if not named and not extra:  # nothing asked for: the metrics most runs on the page have
        counts = Counter(m["key"] for r in runs for m in r.get("data", {}).get("metrics", []) or [])
        named = [Column("metrics", k) for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:4]]
    for col in [*named, *extra]:
        if col not in cols:
            cols.append(col)
    return cols


def run_record(run: dict, exp_names: dict[str, str], all_tags: bool = False) -> dict:
    """A run as compact JSON: ids, name, status, times, metrics, params, (non-system) tags."""
    info = run.get("info", {})
    tags = c.run_tags(run)
    return {
        "run_id": info.get("run_id"),
        "run_name": c.run_name(run),
        "experiment_id": info.get("experiment_id"),
        "experiment": exp_names.get(info.get("experiment_id")),
        "status": info.get("status"),
        "lifecycle_stage": info.get("lifecycle_stage"),
        "start_time": c.iso_time(info.get("start_time")),
        "end_time": c.iso_time(info.get("end_time")),
        "metrics": c.json_safe(c.run_metrics(run)),
        "params": c.run_params(run),
        "tags": tags if all_tags else user_tags(tags),
    }


def user_tags(tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if not k.startswith("mlflow.")}


def exp_name_map(query: Query) -> dict[str, str]:
    return {e["experiment_id"]: e["name"] for e in query.experiments}


def scope_line(query: Query) -> str:
    exps = query.experiments
    if not exps:
        return "no experiments to search"
    if len(exps) <= 3:
        scope = ", ".join(f"**{e['name']}** (id {e['experiment_id']})" for e in exps)
    else:
        scope = f"{len(exps)} experiments"
    view = {"ACTIVE_ONLY": "", "DELETED_ONLY": ", deleted runs", "ALL": ", active and deleted runs"}[query.view]
    return f"in {scope}{view}"


def render_table(cols: list[Column], runs: list[dict], exp_names: dict[str, str]) -> str:
    return c.md_table([col.label for col in cols], [[show_cell(cell(r, col, exp_names), col) for col in cols] for r in runs])


def emit_runs(ctx: c.Context, query: Query, page: Page, title: str, extra_cols: list[Column], lines_after: list[str] | None = None) -> None:
    """Render a page of runs in the requested format (shared by runs, best and failed)."""
    names = exp_name_map(query)
    cols = table_columns(query, page.runs, extra_cols, len(query.experiments) > 1)
    next_cmd = ctx.next_page(page.next_token) if page.next_token else None
    if ctx.fmt == "json":
        ctx.emit(
            c.to_json({
                "experiments": [{"id": e["experiment_id"], "name": e["name"]} for e in query.experiments],
                "server_filters": [g.server_filter for g in query.groups],
                "client_side": [cmp.text for g in query.groups for cmp in g.client],
                "order_by": [o.raw for o in query.order],
                "total": page.total,
                "runs": [run_record(r, names) for r in page.runs],
                "next_page_token": page.next_token,
                "next_page_command": next_cmd,
            })
        )
        return
    if ctx.fmt == "csv":
        ctx.emit(c.to_csv([col.label for col in cols], [[raw_cell(cell(r, col, names), col) for col in cols] for r in page.runs]))
        if next_cmd:
            c.diag(f"more runs: {next_cmd}")
        return
    out = [f"{title} {scope_line(query)}" + (f", order {', '.join(o.raw for o in query.order)}" if query.order else "")]
    filters = [g.server_filter for g in query.groups if g.server_filter]
    if len(query.groups) == 1 and filters:
        out.append(f"server filter: `{filters[0]}`")
    out += query.notes()
    out.append("")
    if page.runs:
        last = page.first + len(page.runs) - 1
        of = f" of {page.total}" if page.total is not None else ""
        out.append(f"runs {page.first}–{last}{of}:")
        out.append(render_table(cols, page.runs, names))
    else:
        out.append("no runs match" + (" on this page" if page.first > 1 else ""))
    out += lines_after or []
    if next_cmd:
        out += ["", f"more runs exist; next page: `{next_cmd}`"]
    ctx.emit("\n".join(out))


# =============================================================================================
# Commands
# =============================================================================================
def cmd_experiments(ctx: c.Context) -> int:
    args = ctx.args
    clauses = [args.filter] if args.filter else []
    if args.max_results < 1 or (args.count_runs and args.count_limit < 1):
        raise c.UsageError("--max-results and --count-limit must be at least 1")
    if args.name_like and len(args.name_like) > 500:
        raise c.UsageError("--name-like is longer than any experiment name (at most 500 characters)")
    if args.name_like:
        if "'" in args.name_like:
            raise c.UsageError("--name-like cannot contain a single quote: use --filter \"name LIKE '...'\"")
        clauses.append(f"name ILIKE '%{args.name_like}%'")
    body: dict[str, Any] = {"view_type": VIEWS[args.view], "max_results": args.max_results}
    if clauses:
        body["filter"] = " AND ".join(clauses)
    if args.order_by:
        body["order_by"] = args.order_by
    if args.page_token:
        body["page_token"] = args.page_token
    answer = ctx.store.post(f"{c.API}/experiments/search", body)
    experiments = answer.get("experiments", [])
    token = answer.get("next_page_token") or None
    counts = {e["experiment_id"]: count_runs(ctx.store, e["experiment_id"], args.count_limit) for e in experiments} if args.count_runs else {}
    rows = [experiment_record(e, counts) for e in experiments]
    next_cmd = ctx.next_page(token) if token else None
    if ctx.fmt == "json":
        ctx.emit(c.to_json({"experiments": rows, "next_page_token": token, "next_page_command": next_cmd}))
        return 0
    headers = ["name", "id", "lifecycle", "last update", *(["runs"] if args.count_runs else []), "description", "tags"]
    table = [
        [
            c.truncate(r["name"], 50), r["id"], r["lifecycle"], c.fmt_time(r["last_update_ms"]),
            *([r["runs"]] if args.count_runs else []),
            c.truncate(r["description"] or "", 40),
            c.truncate(", ".join(f"{k}={v}" for k, v in r["tags"].items()), 60),
        ]
        for r in rows
    ]  # fmt: skip
    if ctx.fmt == "csv":
        ctx.emit(c.to_csv(headers, [[*row[:3], c.iso_time(r["last_update_ms"]), *row[4:]] for row, r in zip(table, rows)]))
        return 0
    view = {"active": "active", "deleted": "deleted", "all": "all"}[args.view]
    out = [f"{len(rows)} {view} experiment{'s' if len(rows) != 1 else ''}" + (f" matching `{body['filter']}`" if clauses else "")]
    if rows:
        out += ["", c.md_table(headers, table)]
    if args.count_runs:
        out.append(f"\nruns: active runs, counted up to {args.count_limit} ({args.count_limit}+ means at least that many)")
    elif rows:
        out.append("\nrun counts: add --count-runs (one search per experiment)")
    if next_cmd:
        out.append(f"\nmore experiments exist; next page: `{next_cmd}`")
    ctx.emit("\n".join(out))
    return 0


def count_runs(store: c.Store, experiment_id: str, cap: int) -> str:
    body = {"experiment_ids": [experiment_id], "run_view_type": "ACTIVE_ONLY"}
    n = sum(1 for _ in c.paged(store, SEARCH_RUNS, body, "runs", limit=cap, page_size=min(cap, 1000)))
    return f"{n}+" if n >= cap else str(n)


def experiment_record(exp: dict, counts: dict[str, str]) -> dict:
    tags = c.kv(exp.get("tags"))
    return {
        "id": exp["experiment_id"],
        "name": exp["name"],
        "lifecycle": exp.get("lifecycle_stage"),
        "last_update_ms": exp.get("last_update_time"),
        "last_update": c.iso_time(exp.get("last_update_time")),
        "description": tags.get(c.DESCRIPTION_TAG),
        "tags": user_tags(tags),
        "artifact_location": exp.get("artifact_location"),
        **({"runs": counts[exp["experiment_id"]]} if counts else {}),
    }


def cmd_runs(ctx: c.Context) -> int:
    args = ctx.args
    query = build_query(ctx, args.filter, args.order_by)
    page = fetch_page(ctx.store, query, args.max_results, args.page_token)
    emit_runs(ctx, query, page, "Runs", parse_columns(args.columns))
    return 0


def cmd_run(ctx: c.Context) -> int:
    if ctx.fmt == "csv":
        raise c.UsageError("`run` describes one run: use --format markdown or json")
    run = c.get_run(ctx.store, ctx.args.run_id)
    info = run["info"]
    experiment = ctx.store.get(f"{c.API}/experiments/get", {"experiment_id": info["experiment_id"]})["experiment"]
    tags = c.run_tags(run)
    parent_id = tags.get("mlflow.parentRunId")
    parent = _maybe_run(ctx.store, parent_id) if parent_id else None
    children = ctx.store.post(
        SEARCH_RUNS,
        {
            "experiment_ids": [info["experiment_id"]],
            "filter": f"tags.mlflow.parentRunId = '{info['run_id']}'",
            "max_results": 25,
            "run_view_type": "ALL",
        },
    )
    artifacts = ctx.store.get(f"{c.API}/artifacts/list", {"run_id": info["run_id"]}).get("files", [])
    result = shape_run(run, experiment, parent, parent_id, children, artifacts, ctx.args.all_tags)
    ctx.emit(c.to_json(result) if ctx.fmt == "json" else render_run(result))
    return 0


def _maybe_run(store: c.Store, run_id: str) -> dict | None:
    try:
        return store.get(f"{c.API}/runs/get", {"run_id": run_id})["run"]
    except c.NotFoundError:
        return None


def shape_run(run, experiment, parent, parent_id, children, artifacts, all_tags) -> dict:
    info = run["info"]
    tags = c.run_tags(run)
    shown_tags = tags if all_tags else user_tags(tags)
    metrics = run.get("data", {}).get("metrics", []) or []
    datasets = []
    for entry in (run.get("inputs") or {}).get("dataset_inputs", []) or []:
        ds = entry.get("dataset", {})
        datasets.append({
            "name": ds.get("name"), "digest": ds.get("digest"), "source_type": ds.get("source_type"),
            "context": c.kv(entry.get("tags")).get("mlflow.data.context"),
        })  # fmt: skip
    start, end = info.get("start_time"), info.get("end_time")
    return {
        "run_id": info["run_id"],
        "run_name": c.run_name(run),
        "status": info.get("status"),
        "lifecycle_stage": info.get("lifecycle_stage"),
        "experiment": {"id": experiment["experiment_id"], "name": experiment["name"]},
        "user": info.get("user_id"),
        "start_time": c.iso_time(start),
        "end_time": c.iso_time(end),
        "duration_ms": int(end) - int(start) if start and end else None,
        "params": c.run_params(run),
        "metrics": {m["key"]: {"value": c.json_safe(c.to_float(m.get("value"))), "step": int(m.get("step", 0) or 0)} for m in metrics},
        "tags": shown_tags,
        "system_tags_hidden": 0 if all_tags else len(tags) - len(shown_tags),
        "datasets": datasets,
        "parent": {"run_id": parent_id, "run_name": c.run_name(parent) if parent else None} if parent_id else None,
        "children": [{"run_id": ch["info"]["run_id"], "run_name": c.run_name(ch)} for ch in children.get("runs", [])],
        "more_children": bool(children.get("next_page_token")),
        "artifacts": [{"path": a["path"], "is_dir": bool(a.get("is_dir")), "size": a.get("file_size")} for a in artifacts],
        "artifact_uri": info.get("artifact_uri"),
    }


def render_run(r: dict) -> str:
    """Dense on purpose: every param, metric and non-system tag, in a fraction of `mlflow runs describe`."""
    deleted = " (deleted)" if r["lifecycle_stage"] == "deleted" else ""
    took = f" · {c.fmt_duration(r['duration_ms'])}" if r["duration_ms"] is not None else ""
    user = f" · user {r['user']}" if r["user"] and r["user"] != "unknown" else ""
    lines = [
        f"**{r['run_name'] or '(no name)'}** · {r['run_id']} · {r['status']}{deleted}{took}",
        f"experiment {r['experiment']['name']} ({r['experiment']['id']}) · "
        f"{(r['start_time'] or '?')[:19].replace('T', ' ')}{user}",
    ]
    if r["parent"]:
        lines.append(f"parent: {r['parent']['run_name'] or '(not found)'} ({r['parent']['run_id']})")
    if r["children"]:
        more = " and more" if r["more_children"] else ""
        lines.append(f"children ({len(r['children'])}{more}): " + ", ".join(f"{ch['run_name']} ({ch['run_id']})" for ch in r["children"]))
    lines.append(inline("params", [f"{k}={c.fmt_value(v, 80)}" for k, v in sorted(r["params"].items())]))
    steps = {m["step"] for m in r["metrics"].values()}
    one_step = len(steps) == 1
    label = f"metrics (step {next(iter(steps))})" if one_step and steps != {0} else "metrics"
    lines.append(inline(label, [
        f"{k}={c.fmt_num(m['value']) if m['value'] is not None else 'NaN'}" + ("" if one_step or not m["step"] else f"@{m['step']}")
        for k, m in sorted(r["metrics"].items())
    ]))  # fmt: skip
    hidden = f" (+{r['system_tags_hidden']} mlflow.*: --all-tags)" if r["system_tags_hidden"] else ""
    lines.append(inline("tags", [f"{k}={c.truncate(v, 80)}" for k, v in sorted(r["tags"].items())]) + hidden)
    if r["datasets"]:
        lines.append(inline("datasets", [
            f"{d['name']} ({', '.join(x for x in (d['context'], d['source_type'], d['digest'] and 'digest ' + d['digest']) if x)})"
            for d in r["datasets"]
        ]))  # fmt: skip
    arts = [f"{a['path']}/" if a["is_dir"] else f"{a['path']} ({c.fmt_bytes(a['size'])})" for a in r["artifacts"]]
    lines.append(inline("artifacts", arts[:30] + ([f"… {len(arts) - 30} more"] if len(arts) > 30 else [])))
    return "\n".join(lines)


def inline(label: str, items: list[str]) -> str:
    return f"{label}: " + ("; ".join(items) if items else "none")


def cmd_compare(ctx: c.Context) -> int:
    ids = list(dict.fromkeys(ctx.args.run_ids))
    if len(ids) < 2:
        raise c.UsageError("compare needs at least two different run ids")
    runs = [c.get_run(ctx.store, rid) for rid in ids]
    exp_names = {}
    for run in runs:
        eid = run["info"]["experiment_id"]
        if eid not in exp_names:
            exp_names[eid] = ctx.store.get(f"{c.API}/experiments/get", {"experiment_id": eid})["experiment"]["name"]
    rows = compare_rows(runs, exp_names, ctx.args.all_tags)
    differing = [row for row in rows if not row["same"]]
    shown = rows if ctx.args.all else differing
    headers = compare_headers(runs)
    if ctx.fmt == "json":
        ctx.emit(c.to_json({
            "runs": [{"run_id": r["info"]["run_id"], "run_name": c.run_name(r)} for r in runs],
            "rows": [{"field": row["field"], "values": c.json_safe(row["raw"]), "same": row["same"]} for row in shown],
            "identical": len(rows) - len(differing),
        }))  # fmt: skip
        return 0
    table = [[row["field"], *row["shown"]] for row in shown]
    if ctx.fmt == "csv":
        ctx.emit(c.to_csv(["field", *headers], [[row["field"], *row["raw"]] for row in shown]))
        return 0
    same = [row["field"] for row in rows if row["same"]]
    out = [f"Comparing {len(runs)} runs: {len(differing)} fields differ, {len(same)} identical", ""]
    out.append(c.md_table(["field", *headers], table) if table else "no differences")
    if same and not ctx.args.all:
        out.append(f"\nidentical ({len(same)}, --all shows them): " + c.truncate(", ".join(same), 300))
    ctx.emit("\n".join(out))
    return 0


def compare_headers(runs: list[dict]) -> list[str]:
    names = [c.run_name(r) or "(no name)" for r in runs]
    dupes = {n for n in names if names.count(n) > 1}
    return [f"{n} ({r['info']['run_id'][:8]})" if n in dupes else n for n, r in zip(names, runs)]


def compare_rows(runs: list[dict], exp_names: dict[str, str], all_tags: bool) -> list[dict]:
    fields: list[tuple[str, Column]] = [
        ("run id", Column("attr", "run_id")), ("status", Column("attr", "status")),
        ("experiment", Column("experiment", "experiment")), ("start", Column("attr", "start_time")),
        ("duration", Column("duration", "duration")),
    ]  # fmt: skip
    for kind, getter in (("params", c.run_params), ("metrics", c.run_metrics), ("tags", c.run_tags)):
        keys = sorted({k for r in runs for k in getter(r)})
        if kind == "tags" and not all_tags:
            keys = [k for k in keys if not k.startswith("mlflow.")]
        fields += [(f"{kind}.{k}", Column(kind, k)) for k in keys]
    rows = []
    for label, col in fields:
        raw = [cell(r, col, exp_names) for r in runs]
        shown = [show_cell(v, col) for v in raw]
        same_raw = [("NaN" if isinstance(v, float) and math.isnan(v) else v) for v in raw]
        same = label not in ("run id", "start", "duration") and all(v == same_raw[0] for v in same_raw)
        if label in ("start", "duration"):
            same = all(s == shown[0] for s in shown)
        rows.append({"field": label, "raw": [raw_cell(v, col) for v in raw], "shown": shown, "same": same})
    return rows


def metric_direction(metric: str, args: argparse.Namespace) -> tuple[bool, str]:
    """(higher is better, why) from --max/--min or the metric's name."""
    if getattr(args, "max", False):
        return True, "--max"
    if getattr(args, "min", False):
        return False, "--min"
    words = re.split(r"[^a-z]+", metric.lower())
    lower = any(w in LOWER_IS_BETTER_WORDS for w in words) or metric.lower().endswith(("loss", "error"))
    return (not lower), f"guessed from the name {metric!r}; pass --max or --min to say"


def cmd_best(ctx: c.Context) -> int:
    args = ctx.args
    if args.top < 1:
        raise c.UsageError("--top must be at least 1")
    higher, why = metric_direction(args.metric, args)
    order = f"metrics.{quote_key(args.metric)} {'DESC' if higher else 'ASC'}"
    query = build_query(ctx, args.filter, [order])
    query.refs = [("metrics", args.metric), *query.refs]
    runs = [r for r in fetch_all(ctx.store, query, limit=args.top) if not _nan(c.run_metrics(r).get(args.metric))]
    after = []
    if not runs:
        after.append(f"\nno run has the metric {args.metric!r}: list the metric names with `{PROG} runs`")
    else:
        best = runs[0]
        after.append(
            f"\nbest: **{c.run_name(best)}** ({best['info']['run_id']}) {args.metric} = "
            f"{c.fmt_num(c.run_metrics(best)[args.metric])}"
        )
    label = f"Top {args.top} by {args.metric} ({'max' if higher else 'min'}, {why})"
    emit_runs(ctx, query, Page(runs, None), label, parse_columns(args.columns), after)
    return 0


def _nan(value: float | None) -> bool:
    return value is None or math.isnan(value)


def cmd_overfit(ctx: c.Context) -> int:
    args = ctx.args
    higher, why = metric_direction(args.train, args)
    query = build_query(ctx, args.filter)
    considered, missing, flagged = 0, 0, []
    for run in iter_runs(ctx.store, query):
        metrics = c.run_metrics(run)
        train, test = metrics.get(args.train), metrics.get(args.test)
        if _nan(train) or _nan(test):
            missing += 1
            continue
        considered += 1
        gap = (train - test) if higher else (test - train)
        relative = gap / abs(train) if train else (math.inf if gap > 0 else 0.0)
        measure = relative if args.relative else gap
        if measure > args.threshold:
            flagged.append((gap, relative, run, train, test))
    flagged.sort(key=lambda f: (f[1] if args.relative else f[0]), reverse=True)
    names = exp_name_map(query)
    rule = (
        f"gap = {'train − test' if higher else 'test − train'} ({'higher' if higher else 'lower'} is better, {why}); "
        f"flagged when {'gap/|train|' if args.relative else 'gap'} > {c.fmt_num(args.threshold)}"
    )
    if ctx.fmt == "json":
        ctx.emit(c.to_json({
            "rule": rule, "considered": considered, "missing_metric": missing, "flagged_total": len(flagged),
            "runs": [
                {**run_record(run, names), "train": train, "test": test, "gap": gap, "relative_gap": c.json_safe(rel)}
                for gap, rel, run, train, test in flagged[: args.max_results]
            ],
            "client_side": query.notes(),
        }))  # fmt: skip
        return 0
    headers = ["run", "id", args.train, args.test, "gap", "gap/|train|"]
    rows = [
        [c.truncate(c.run_name(run), 40), run["info"]["run_id"], c.fmt_num(train), c.fmt_num(test), c.fmt_num(gap), c.fmt_num(rel)]
        for gap, rel, run, train, test in flagged[: args.max_results]
    ]
    if ctx.fmt == "csv":
        ctx.emit(c.to_csv(headers, rows))
        return 0
    out = [f"Overfitting {scope_line(query)}: {len(flagged)} of {considered} runs flagged", rule, *query.notes()]
    if missing:
        out.append(f"{missing} runs lack {args.train} or {args.test} and were skipped")
    out += ["", c.md_table(headers, rows) if rows else "no run exceeds the threshold"]
    if len(flagged) > args.max_results:
        out.append(f"\n{len(flagged) - args.max_results} more flagged runs: raise --max-results")
    ctx.emit("\n".join(out))
    return 0


FAILED_CLAUSES = ["attributes.status != 'FINISHED'", "attributes.status != 'RUNNING'", "attributes.status != 'SCHEDULED'"]


def cmd_failed(ctx: c.Context) -> int:
    args = ctx.args
    # The server rejects status IN (...): excluding the three other statuses keeps one paged search.
    query = build_query(ctx, args.filter, args.order_by, extra=FAILED_CLAUSES)
    page = fetch_page(ctx.store, query, args.max_results, args.page_token)
    if ctx.fmt == "json":
        names = exp_name_map(query)
        ctx.emit(c.to_json({
            "runs": [{**run_record(r, names), "error_tags": error_tags(r)} for r in page.runs],
            "next_page_token": page.next_token,
            "next_page_command": ctx.next_page(page.next_token) if page.next_token else None,
        }))  # fmt: skip
        return 0
    with_errors = sum(1 for r in page.runs if error_tags(r))
    extra = [Column("attr", "end_time"), Column("error", "error"), *parse_columns(args.columns)]
    after = [f"\n{with_errors} of {len(page.runs)} shown have error tags (tag keys containing error/exception/traceback/failure)"]
    emit_runs(ctx, query, page, "Failed or killed runs", extra, after)
    return 0


def error_tags(run: dict) -> dict[str, str]:
    return {k: v for k, v in c.run_tags(run).items() if any(w in k.lower() for w in ERROR_WORDS)}


def cmd_aggregate(ctx: c.Context) -> int:
    args = ctx.args
    group_cols = parse_columns(",".join(args.group_by))
    if not all(col.kind in ("params", "tags", "attr") for col in group_cols):
        raise c.UsageError("--group-by takes params.KEY, tags.KEY or an attribute such as status")
    metrics = [m.strip() for m in ",".join(args.metric).split(",") if m.strip()]
    if not metrics:
        raise c.UsageError("--metric is empty: pass metric names like --metric sharpe")
    query = build_query(ctx, args.filter)
    groups: dict[tuple, dict[str, list[float]]] = {}
    sizes: Counter = Counter()
    names = exp_name_map(query)
    for run in iter_runs(ctx.store, query):
        key = tuple(cell(run, col, names) for col in group_cols)
        sizes[key] += 1
        values = c.run_metrics(run)
        bucket = groups.setdefault(key, {m: [] for m in metrics})
        for m in metrics:
            if not _nan(values.get(m)):
                bucket[m].append(values[m])
    summary = [summarise(key, sizes[key], groups[key], metrics) for key in groups]
    first = metrics[0]
    summary.sort(key=lambda s: (s["stats"][first]["mean"] is None, -(s["stats"][first]["mean"] or 0), str(s["group"])))
    labels = [col.label for col in group_cols]
    if ctx.fmt == "json":
        ctx.emit(c.to_json({"group_by": labels, "metrics": metrics, "runs": sum(sizes.values()), "groups": [
            {"group": dict(zip(labels, s["group"])), "runs": s["runs"], "stats": s["stats"]} for s in summary
        ], "client_side": query.notes()}))  # fmt: skip
        return 0
    headers = [*labels, "runs"]
    for m in metrics:
        headers += [f"{m} n", f"{m} mean", f"{m} min", f"{m} max"]
    rows = []
    for s in summary:
        row = [("(none)" if v is None else c.truncate(v, 30)) for v in s["group"]] + [s["runs"]]
        for m in metrics:
            st = s["stats"][m]
            row += [st["n"], c.fmt_num(st["mean"]), c.fmt_num(st["min"]), c.fmt_num(st["max"])]
        rows.append(row)
    if ctx.fmt == "csv":
        raw_rows = [[*s["group"], s["runs"], *[s["stats"][m][k] for m in metrics for k in ("n", "mean", "min", "max")]] for s in summary]
        ctx.emit(c.to_csv(headers, raw_rows))
        return 0
    shown = rows[: args.max_results]
    out = [
        f"{len(summary)} groups of {sum(sizes.values())} runs {scope_line(query)}, by {', '.join(labels)}; "
        f"sorted by mean {first} (highest first)",
        *query.notes(), "", c.md_table(headers, shown),
    ]  # fmt: skip
    if len(rows) > len(shown):
        out.append(f"\n{len(rows) - len(shown)} more groups: raise --max-results")
    ctx.emit("\n".join(out))
    return 0


def summarise(key: tuple, runs: int, values: dict[str, list[float]], metrics: list[str]) -> dict:
    stats = {}
    for m in metrics:
        vals = values[m]
        stats[m] = {
            "n": len(vals),
            "mean": sum(vals) / len(vals) if vals else None,
            "min": min(vals) if vals else None,
            "max": max(vals) if vals else None,
        }
    return {"group": key, "runs": runs, "stats": stats}


EXPORT_FIXED = ["run_id", "run_name", "experiment_id", "experiment", "status", "start_time", "end_time"]


def cmd_export(ctx: c.Context) -> int:
    args = ctx.args
    target = Path(args.output)
    kind = export_kind(target, ctx.fmt)
    if target.exists() and not args.force:  # fail before fetching thousands of runs
        raise c.UsageError(f"{target} exists: pass --force to overwrite it, or choose another --output")
    if args.limit is not None and args.limit < 1:
        raise c.UsageError("--limit must be at least 1 (leave it out for every run)")
    if not 1 <= args.page_size <= 50_000:
        raise c.UsageError("--page-size must be between 1 and 50000 (the server's maximum)")
    query = build_query(ctx, args.filter, args.order_by)
    names = exp_name_map(query)
    rows, index = collect_rows(iter_runs(ctx.store, query, args.limit, args.page_size), names, args.all_tags)
    data = render_csv(rows, index) if kind == "csv" else render_json_rows(rows, index)
    count = len(rows)
    del rows
    c.write_atomic(target, data, force=args.force)
    columns = len(index)
    summary = {"path": str(target), "format": kind, "runs": count, "columns": columns, "bytes": target.stat().st_size,
               "client_side": query.notes()}  # fmt: skip
    if ctx.fmt == "json":
        ctx.emit(c.to_json(summary))
        return 0
    out = [f"Exported {count} runs {scope_line(query)} to {target} ({kind.upper()}, {columns} columns, {c.fmt_bytes(summary['bytes'])})"]
    out += query.notes()
    ctx.emit("\n".join(out))
    return 0


def export_kind(target: Path, fmt: str) -> str:
    suffix = target.suffix.lower()
    if suffix in (".csv", ".json"):
        return suffix[1:]
    if fmt in ("csv", "json"):
        return fmt
    raise c.UsageError(f"cannot tell the file format of {target}: name it .csv or .json, or pass --format csv|json")


def collect_rows(runs: Iterable[dict], names: dict[str, str], all_tags: bool) -> tuple[list[list], dict[str, int]]:
    """Runs -> compact rows: a list per run, values placed by a column index that grows as new
    metric/param/tag keys appear. No raw JSON is kept, so memory stays near one page."""
    columns: dict[str, int] = {name: i for i, name in enumerate(EXPORT_FIXED)}
    rows = []
    for run in runs:
        info = run["info"]
        data = run.get("data", {})
        row: list[Any] = [
            info["run_id"], info.get("run_name") or "", info.get("experiment_id"), names.get(info.get("experiment_id"), ""),
            info.get("status"), c.iso_time(info.get("start_time")), c.iso_time(info.get("end_time")),
        ]  # fmt: skip
        for kind, items in (("metrics", data.get("metrics")), ("params", data.get("params")), ("tags", data.get("tags"))):
            for item in items or ():
                key = item["key"]
                if kind == "tags" and not all_tags and key.startswith("mlflow."):
                    continue
                idx = columns.setdefault(f"{kind}.{key}", len(columns))
                if idx >= len(row):
                    row.extend([None] * (idx + 1 - len(row)))
                row[idx] = item.get("value", "")
        rows.append(row)
    return rows, columns


def ordered_columns(columns: dict[str, int]) -> list[tuple[str, int]]:
    """Fixed columns first, then metrics.*, params.*, tags.*, each sorted by key."""
    rank = {"metrics": 0, "params": 1, "tags": 2}
    fixed = [(name, columns[name]) for name in EXPORT_FIXED]
    rest = sorted((name, i) for name, i in columns.items() if name not in EXPORT_FIXED)
    rest.sort(key=lambda item: (rank[item[0].split(".", 1)[0]], item[0]))
    return fixed + rest


def render_csv(rows: list[list], columns: dict[str, int]) -> str:
    order = ordered_columns(columns)
    idxs = [i for _, i in order]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([name for name, _ in order])
    for row in rows:
        n = len(row)
        writer.writerow([("" if (i >= n or row[i] is None) else row[i]) for i in idxs])
    return buf.getvalue()


def render_json_rows(rows: list[list], columns: dict[str, int]) -> str:
    records = []
    for row in rows:
        record: dict[str, Any] = {name: row[i] for name, i in columns.items() if name in EXPORT_FIXED}
        record.update(metrics={}, params={}, tags={})
        for name, i in columns.items():
            if name in EXPORT_FIXED or i >= len(row) or row[i] is None:
                continue
            kind, key = name.split(".", 1)
            record[kind][key] = _json_number(row[i]) if kind == "metrics" else row[i]
        records.append(record)
    return json.dumps(records, ensure_ascii=False, allow_nan=False)


def _json_number(value: Any) -> float | None:
    number = c.to_float(value)
    return None if math.isnan(number) or math.isinf(number) else number


def cmd_artifacts(ctx: c.Context) -> int:
    args = ctx.args
    params = {"run_id": args.run_id.strip()}
    if args.path:
        params["path"] = args.path.strip("/")
    try:
        answer = ctx.store.get(f"{c.API}/artifacts/list", params)
    except c.NotFoundError:
        c.get_run(ctx.store, args.run_id)  # an unknown run gets the standard message
        raise c.NotFoundError(f"no artifact path {args.path!r} in run {args.run_id}: list the top level without --path") from None
    files = answer.get("files", []) or []
    entries = [{"path": f["path"], "is_dir": bool(f.get("is_dir")), "size": None if f.get("is_dir") else int(f.get("file_size", 0) or 0)} for f in files]
    entries.sort(key=lambda e: (not e["is_dir"], e["path"]))
    if ctx.fmt == "json":
        ctx.emit(c.to_json({"run_id": args.run_id, "path": args.path or "", "root_uri": answer.get("root_uri"), "artifacts": entries}))
        return 0
    headers = ["path", "size", "is_dir"]
    if ctx.fmt == "csv":
        ctx.emit(c.to_csv(headers, [[e["path"], e["size"], e["is_dir"]] for e in entries]))
        return 0
    where = f"under {args.path}/ " if args.path else ""
    shown = entries[: args.max_results]
    out = [f"{len(entries)} artifacts {where}of run {args.run_id} (root {answer.get('root_uri', '?')})"]
    if shown:
        rows = [[e["path"] + ("/" if e["is_dir"] else ""), c.fmt_bytes(e["size"]) if not e["is_dir"] else "", "yes" if e["is_dir"] else ""] for e in shown]
        out += ["", c.md_table(headers, rows)]
        dirs = [e["path"] for e in shown if e["is_dir"]]
        if dirs:
            out.append(f"\nlook inside a folder: `{PROG} artifacts {args.run_id} --path {shlex.quote(dirs[0])}`")
    else:
        out.append("\nno artifacts here")
    if len(entries) > len(shown):
        out.append(f"\n{len(entries) - len(shown)} more: raise --max-results")
    ctx.emit("\n".join(out))
    return 0


# =============================================================================================
# Command line
# =============================================================================================
EXAMPLES = {
    "experiments": """List experiments: name, id, lifecycle, last update, description, tags; paged.
Run counts are off by default (MLflow has no count endpoint: each count is a run search);
--count-runs counts active runs up to --count-limit per listed experiment.

Examples:
  uv run scripts/query_experiments.py experiments
  uv run scripts/query_experiments.py experiments --name-like momentum --view all
  uv run scripts/query_experiments.py experiments --filter "tags.team = 'quant'" --count-runs
  uv run scripts/query_experiments.py experiments --max-results 10 --format json""",
    "runs": """Search runs of one or more experiments (name or id; default: every active experiment).
The table shows run name, id, status, start, and every metric/param/tag named in --filter
and --order-by; --columns adds others. OR and numeric param comparisons run client-side
(see the main --help); their paging fetches all matches and pages by offset.

Examples:
  uv run scripts/query_experiments.py runs --experiment btc-momentum
  uv run scripts/query_experiments.py runs --experiment btc-momentum --experiment 3 \\
      --filter "metrics.sharpe > 1 AND params.fast = '10'" --order-by "metrics.sharpe DESC"
  uv run scripts/query_experiments.py runs --filter "params.lr > 0.001 AND metrics.acc >= 0.9"
  uv run scripts/query_experiments.py runs --filter "tags.team = 'a' OR tags.team = 'b'"
  uv run scripts/query_experiments.py runs --filter "params.\\"learning rate\\" = '0.1'" \\
      --columns "metrics.acc,params.batch-size,tags.team,duration"
  uv run scripts/query_experiments.py runs --view deleted --format csv""",
    "run": """Describe one run compactly: info, every param, latest metric values (with their step when
it is not 0), non-system tags
(--all-tags adds mlflow.*), datasets, parent and child runs, top-level artifacts.

Examples:
  uv run scripts/query_experiments.py run 0a1b2c3d4e5f60718293a4b5c6d7e8f9
  uv run scripts/query_experiments.py run 0a1b2c3d4e5f60718293a4b5c6d7e8f9 --all-tags --format json""",
    "compare": """Several runs side by side: by default only the fields that differ (params, metrics,
tags, status, times) plus a count of identical ones; --all shows everything.

Examples:
  uv run scripts/query_experiments.py compare RUN_ID_A RUN_ID_B
  uv run scripts/query_experiments.py compare RUN_ID_A RUN_ID_B RUN_ID_C --all""",
    "best": """Top N runs by a metric. Direction: --max or --min; without either it is guessed from the
name (loss, error, mse, mae, rmse, drawdown, ... are minimised) and the output says so.

Examples:
  uv run scripts/query_experiments.py best --experiment btc-momentum --metric sharpe --top 5
  uv run scripts/query_experiments.py best --metric val_loss --min --filter "params.model = 'cnn'\"""",
    "overfit": """Runs whose train/test gap exceeds a threshold. Direction aware: for a loss (lower is
better) gap = test - train; for accuracy-like metrics gap = train - test; a positive gap
is bad. --threshold is absolute by default; --relative divides the gap by |train|.

Examples:
  uv run scripts/query_experiments.py overfit --experiment mnist --train train_loss --test val_loss --threshold 0.1
  uv run scripts/query_experiments.py overfit --train train_acc --test test_acc --threshold 0.05 --relative""",
    "failed": """FAILED or KILLED runs, newest first, with their error tags (tag keys containing error,
exception, traceback or failure, e.g. backtest.error).

Examples:
  uv run scripts/query_experiments.py failed
  uv run scripts/query_experiments.py failed --experiment btc-momentum --format json""",
    "aggregate": """Group runs by params/tags (or status) and summarise metrics per group: runs, n (runs with
the metric), mean, min, max. Reads every matching run (all pages).

Examples:
  uv run scripts/query_experiments.py aggregate --experiment btc-momentum --group-by params.fast --metric sharpe
  uv run scripts/query_experiments.py aggregate --group-by params.model,tags.team --metric acc --metric loss""",
    "export": """Every matching run (all pages; --page-size runs per request, default 2000, max 50000) to a
CSV or JSON file, written atomically. The file format comes from the extension (.csv/.json),
else from --format csv|json. Columns: run_id, run_name, experiment_id, experiment, status,
start_time, end_time, metrics.*, params.*, tags.* (non-system; --all-tags for mlflow.*).
An existing file is never replaced without --force. Rows come in server order (per OR group).

Examples:
  uv run scripts/query_experiments.py export --experiment btc-momentum --output runs.csv
  uv run scripts/query_experiments.py export --filter "metrics.sharpe > 1" --output best.json --force""",
    "artifacts": """A run's artifacts: path, size, is_dir; --path lists inside a folder.

Examples:
  uv run scripts/query_experiments.py artifacts 0a1b2c3d4e5f60718293a4b5c6d7e8f9
  uv run scripts/query_experiments.py artifacts 0a1b2c3d4e5f60718293a4b5c6d7e8f9 --path model""",
}


def _add_search_args(p: argparse.ArgumentParser, order: bool = True, view: bool = True) -> None:
    p.add_argument("--experiment", "-e", action="append", metavar="NAME_OR_ID", help="experiment name or id; repeatable (default: all active)")
    p.add_argument("--filter", "-f", help="MLflow filter, plus OR and numeric params comparisons")
    if order:
        p.add_argument("--order-by", action="append", metavar="KEY [ASC|DESC]", help='e.g. "metrics.sharpe DESC"; repeatable')
    if view:
        p.add_argument("--view", choices=VIEWS, default="active", help="active (default), deleted or all runs")


def _add_paging(p: argparse.ArgumentParser, default: int = 25) -> None:
    p.add_argument("--max-results", "-n", type=int, default=default, help=f"rows per page (default {default})")
    p.add_argument("--page-token", help="continue from a previous page (the output prints the exact command)")


def build_parser() -> argparse.ArgumentParser:
    parser = c.make_parser(__doc__, prog=PROG, formats=FORMATS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, handler: Callable[[c.Context], int], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=EXAMPLES[name], formatter_class=c.HelpFormatter, epilog=c.EXIT_CODES_HELP)
        c.add_common_args(p, FORMATS)
        for action in p._actions:  # given before or after COMMAND; the main parser holds the defaults
            if action.dest in ("tracking_uri", "timeout", "format", "debug"):
                action.default = argparse.SUPPRESS
        p.set_defaults(handler=handler)
        return p

    p = add("experiments", cmd_experiments, "list experiments")
    p.add_argument("--view", choices=VIEWS, default="active", help="active (default), deleted or all")
    p.add_argument("--name-like", metavar="TEXT", help="names containing TEXT (case-insensitive)")
    p.add_argument("--filter", "-f", help="MLflow experiment filter, e.g. \"tags.team = 'quant'\"")
    p.add_argument("--order-by", action="append", help='e.g. "last_update_time DESC"; repeatable')
    p.add_argument("--count-runs", action="store_true", help="count active runs (one search per experiment)")
    p.add_argument("--count-limit", type=int, default=1000, help="stop counting at this many (default 1000)")
    _add_paging(p)

    p = add("runs", cmd_runs, "search runs")
    _add_search_args(p)
    p.add_argument("--columns", "-c", help="extra columns, comma separated: metrics.K,params.K,tags.K,start_time,duration,...")
    _add_paging(p)

    p = add("run", cmd_run, "describe one run")
    p.add_argument("run_id")
    p.add_argument("--all-tags", action="store_true", help="include mlflow.* system tags")

    p = add("compare", cmd_compare, "compare runs side by side")
    p.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    p.add_argument("--all", action="store_true", help="show identical fields too")
    p.add_argument("--all-tags", action="store_true", help="include mlflow.* system tags")

    p = add("best", cmd_best, "top N runs by a metric")
    _add_search_args(p, order=False)
    p.add_argument("--metric", "-m", required=True, help="metric key")
    direction = p.add_mutually_exclusive_group()
    direction.add_argument("--max", action="store_true", help="higher is better")
    direction.add_argument("--min", action="store_true", help="lower is better")
    p.add_argument("--top", type=int, default=5, help="how many (default 5)")
    p.add_argument("--columns", "-c", help="extra columns, comma separated")

    p = add("overfit", cmd_overfit, "train/test gap above a threshold")
    _add_search_args(p, order=False)
    p.add_argument("--train", required=True, help="train metric key, e.g. train_loss")
    p.add_argument("--test", required=True, help="test/validation metric key, e.g. val_loss")
    p.add_argument("--threshold", type=float, default=0.0, help="flag gaps above this (default 0)")
    p.add_argument("--relative", action="store_true", help="threshold applies to gap/|train| instead of the gap")
    direction = p.add_mutually_exclusive_group()
    direction.add_argument("--max", action="store_true", help="higher is better (accuracy-like)")
    direction.add_argument("--min", action="store_true", help="lower is better (loss-like)")
    p.add_argument("--max-results", "-n", type=int, default=25, help="rows shown (default 25)")

    p = add("failed", cmd_failed, "failed or killed runs with error tags")
    _add_search_args(p)
    p.add_argument("--columns", "-c", help="extra columns, comma separated")
    _add_paging(p)

    p = add("aggregate", cmd_aggregate, "group runs and summarise metrics")
    _add_search_args(p, order=False)
    p.add_argument("--group-by", "-g", action="append", required=True, help="params.K,tags.K,...; repeatable")
    p.add_argument("--metric", "-m", action="append", required=True, help="metric key(s); repeatable or comma separated")
    p.add_argument("--max-results", "-n", type=int, default=25, help="groups shown (default 25)")

    p = add("export", cmd_export, "all matching runs to CSV or JSON")
    _add_search_args(p)
    p.add_argument("--output", "-o", required=True, help="file to write (.csv or .json)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.add_argument("--all-tags", action="store_true", help="include mlflow.* system tags")
    p.add_argument("--page-size", type=int, default=SCAN_PAGE, help=f"runs per request (default {SCAN_PAGE}, max 50000)")
    p.add_argument("--limit", type=int, help="stop after this many runs (default: all)")

    p = add("artifacts", cmd_artifacts, "list a run's artifacts")
    p.add_argument("run_id")
    p.add_argument("--path", "-p", help="folder inside the run's artifacts")
    p.add_argument("--max-results", "-n", type=int, default=100, help="entries shown (default 100)")
    return parser


def command(ctx: c.Context) -> int:
    return ctx.args.handler(ctx)


def main(argv: list[str] | None = None) -> int:
    return c.run_main(build_parser(), command, argv, SCRIPT)


if __name__ == "__main__":
    sys.exit(main())
