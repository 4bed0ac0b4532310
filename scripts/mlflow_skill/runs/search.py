"""The run filter language and query engine of query_experiments.py.

MLflow's run search takes AND-only filters and compares params as text. This module accepts
MLflow's grammar plus what users keep asking for, and says which part runs where:
  - OR between AND-groups: each group is one server search; results are merged by run id and
    re-sorted on the client (`sort_runs` reproduces the server's ordering);
  - `IN (...)` / `NOT IN (...)` on params and tags, rewritten into OR-groups / AND-clauses of
    `=` / `!=` that the server answers;
  - parentheses around OR inside an AND, distributed into AND-groups;
  - numeric comparisons on params (params.lr > 0.001), evaluated on the fetched runs.
Everything here is pure except `iter_runs`, `fetch_all` and `fetch_page`, which page the store.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mlflow_skill.core.errors import UsageError
from mlflow_skill.core.formatting import truncate
from mlflow_skill.store import lookups
from mlflow_skill.store.transport import Store

SEARCH_RUNS = f"{lookups.API}/runs/search"
VIEWS = {"active": "ACTIVE_ONLY", "deleted": "DELETED_ONLY", "all": "ALL"}
SCAN_PAGE = 2_000  # runs per request when every match is needed: measured as fast as 10,000 at half the memory
MAX_OR_GROUPS = 100  # each OR group is one server search (or a full scan): bound what one filter costs
OFFSET_PREFIX = "offset-"  # page tokens of client-side queries: an offset into the merged result
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
ALIASES = dict.fromkeys(("created", "Created"), "start_time")  # MLflow's other attribute names, spelt as it does
ALIASES |= dict.fromkeys(("run name", "Run name", "Run Name"), "run_name")
PREFIXES = {
    "metric": "metrics",
    "metrics": "metrics",
    "param": "params",
    "params": "params",
    "parameter": "params",
    "parameters": "params",
    "tag": "tags",
    "tags": "tags",
    "attribute": "attr",
    "attributes": "attr",
    "attr": "attr",
    "run": "attr",
    "dataset": "datasets",
    "datasets": "datasets",
}


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
            if text[i] in '"`':
                if text[i - 1] != ".":
                    break
                i = _quoted_end(text, i)  # params."learning rate": the quoted key belongs to the word
                continue
            i += 1
        if i == start:  # a lone '!' or similar
            raise UsageError(f"cannot read the filter at {text[start : start + 20]!r}: check its syntax")
        word = text[start:i]
        kind = word.lower() if word.lower() in ("and", "or") else "word"
        tokens.append(Token(kind, word, start, i))
    return tokens


def _quoted_end(text: str, i: int) -> int:
    quote = text[i]
    j = text.find(quote, i + 1)
    if j < 0:
        raise UsageError(f"unclosed {quote} in the filter near {text[i : i + 30]!r}: close the quote")
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
        return ("attr", word) if word in ATTRIBUTES or word in ALIASES else None
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
        raw = lookups.run_params(run).get(self.key)
        if raw is None:
            return False
        try:
            number = float(raw)
        except ValueError:
            raise UsageError(
                f"run {lookups.run_name(run) or '?'} ({run['info']['run_id']}) has params.{quote_key(self.key)} = "
                f"{raw!r}, "
                f"not a number, so `{self.text}` cannot compare it: use a text comparison "
                f"(params.{quote_key(self.key)} = '{raw}') or narrow --experiment/--filter"
            ) from None
        return {
            ">": number > self.value,
            ">=": number >= self.value,
            "<": number < self.value,
            "<=": number <= self.value,
            "=": number == self.value,
            "!=": number != self.value,
            "<>": number != self.value,
        }[self.op]


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
    """The comparison value, when it makes the clause a numeric comparison on a param. A value in
    single or double quotes is a string to MLflow alike ('0.005' and "0.005")."""
    text = tok.text
    if tok.kind == "str" or (tok.kind == "quoted" and text.startswith('"')):
        if op in ("=", "!=", "<>"):
            return None  # a quoted value compared for (in)equality is MLflow's text comparison
        text = text[1:-1]
    elif tok.kind != "word":
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    if not math.isfinite(number):  # MLflow rejects `params.lr = nan` / `< inf`: so does this parser, saying how
        raise UsageError(
            f"cannot compare a param with {tok.text}: numeric param comparisons take a finite number "
            f"(params.lr < 0.01); to match the text, write params.KEY = '{text}'"
        )
    return number


@dataclass
class Membership:
    """`KEY IN (...)` / `KEY NOT IN (...)` on a param, tag or attribute, evaluated on the client
    (MLflow's server answers IN only for run ids and datasets)."""

    kind: str
    key: str
    values: frozenset[str]
    negate: bool
    text: str

    def matches(self, run: dict) -> bool:
        value = sort_value(run, self.kind, self.key)
        if value is None:
            return False  # like SQL: a run without the key matches neither IN nor NOT IN
        return (str(value) in self.values) != self.negate


IN_EXPAND_MAX = 10  # IN lists up to this long become OR-groups the server answers; longer ones run here
SERVER_IN = {("attr", "run_id"), ("attr", "run id")}  # the forms MLflow's server accepts as they are

Atom = tuple[str, list[Token]]  # a clause's text and its tokens


def parse_filter(text: str | None) -> tuple[list[Group], list[tuple[str, str]]]:
    """-> (AND-groups, keys referenced as (kind, key)). One group when there is no OR.

    The filter is brought into disjunctive normal form: OR at the top, parentheses distributed,
    short IN lists on params/tags/attributes expanded into OR branches of `=` (NOT IN into AND of
    `!=`); every AND-group then is one server search, plus clauses evaluated here."""
    text = (text or "").strip()
    if not text:
        return [Group()], []
    groups: list[Group] = []
    refs: list[tuple[str, str]] = []
    try:
        dnf = to_dnf(tokenize(text), text)
    except RecursionError:  # ~1,000 nested parentheses: Python's parser stack, not a bug
        raise UsageError(
            f"--filter nests parentheses too deeply ({text.count('(')} open): flatten it; MLflow's filters need "
            "no nesting beyond a few levels"
        ) from None
    for atoms in dnf:
        group = Group()
        for clause_text, clause in atoms:
            ident = split_key(clause[0].text) if clause[0].kind == "word" else None
            if ident and (ident[0] != "attr" or ident[1] in ATTRIBUTES):
                refs.append(ident)
            client = client_clause(ident, clause, clause_text)
            if client is not None:
                group.client.append(client)
            else:
                group.server.append(clause_text)
        groups.append(group)
    return groups, list(dict.fromkeys(refs))


def client_clause(ident: tuple[str, str] | None, clause: list[Token], clause_text: str):
    """The clause as a client-side test, or None when the server answers it as it is."""
    if ident and ident[0] == "params" and len(clause) == 3 and clause[1].kind == "op":
        number = _as_number(clause[2], clause[1].text)
        if number is not None:
            return ParamComparison(ident[1], clause[1].text, number, clause_text)
    membership = in_clause(clause)
    if membership and ident and ident[0] in ("params", "tags", "attr") and ident not in SERVER_IN:
        negate, values = membership
        return Membership(ident[0], ident[1], frozenset(values), negate, clause_text)
    return None


def in_clause(clause: list[Token]) -> tuple[bool, list[str]] | None:
    """(negated, values) for `KEY [NOT] IN ('a', 'b')`, else None."""
    words = [t.text.lower() for t in clause[1:3]]
    negate = words[:2] == ["not", "in"]
    if not (negate or words[:1] == ["in"]):
        return None
    rest = clause[3:] if negate else clause[2:]
    if len(rest) < 3 or rest[0].text != "(" or rest[-1].text != ")":
        raise UsageError(f"cannot read {' '.join(t.text for t in clause)!r}: write KEY IN ('a', 'b')")
    values = [t for t in rest[1:-1] if not (t.kind == "punct" and t.text == ",")]
    if not values or any(t.kind != "str" for t in values):
        raise UsageError(
            f"IN takes quoted values, e.g. params.optimizer IN ('adam', 'sgd'); got "
            f"{' '.join(t.text for t in clause)!r}"
        )
    return negate, [t.text[1:-1] for t in values]


def to_dnf(tokens: list[Token], text: str) -> list[list[Atom]]:
    """OR of AND-groups: parentheses distributed, short IN lists expanded into OR branches."""
    branches: list[list[Atom]] = []
    for or_part in split_tokens(tokens, "or"):
        if not or_part:
            raise UsageError(f"empty OR branch in --filter {text!r}: write `A OR B`, each side a condition")
        groups: list[list[Atom]] = [[]]
        for clause in split_tokens(or_part, "and"):
            if not clause:  # MLflow ignores a dangling AND; a clear error is kept (references/filter-syntax.md)
                raise UsageError(
                    f"empty AND clause in --filter {text!r} (a leading, trailing or doubled AND): write `A AND B`"
                )
            options = clause_options(clause, text)
            groups = [g + o for g in groups for o in options]
            _check_groups(len(groups), text)
        branches += groups
        _check_groups(len(branches), text)
    return branches


def clause_options(clause: list[Token], text: str) -> list[list[Atom]]:
    """One clause as alternatives (each a list of atoms): a parenthesised filter's own DNF, an
    expanded IN, or the clause itself."""
    if clause[0].text == "(" and _closing(clause) == len(clause) - 1:
        return to_dnf(clause[1:-1], text)
    if any(t.kind == "punct" and t.text == "(" for t in clause[1:]) and in_clause(clause) is None:
        raise UsageError(f"cannot read {text[clause[0].start : clause[-1].end]!r}: check its parentheses")
    ident = split_key(clause[0].text) if clause[0].kind == "word" else None
    membership = in_clause(clause)
    if membership and ident and ident[0] in ("params", "tags", "attr") and ident not in SERVER_IN:
        negate, values = membership
        if len(values) <= IN_EXPAND_MAX:
            key = clause[0].text
            if negate:  # NOT IN: every value excluded, in one group
                return [[_atom(f"{key} != {_literal(v)}") for v in values]]
            return [[_atom(f"{key} = {_literal(v)}")] for v in values]
    return [[(text[clause[0].start : clause[-1].end], clause)]]


def _atom(clause_text: str) -> Atom:
    return clause_text, tokenize(clause_text)


def _literal(value: str) -> str:
    return f"'{value}'" if "'" not in value else f'"{value}"'


def _closing(tokens: list[Token]) -> int:
    depth = 0
    for i, tok in enumerate(tokens):
        if tok.kind == "punct" and tok.text in "()":
            depth += 1 if tok.text == "(" else -1
            if depth == 0:
                return i
    raise UsageError("unbalanced parentheses in --filter: close every (")


def _check_groups(count: int, text: str) -> None:
    if count > MAX_OR_GROUPS:
        raise UsageError(
            f"--filter {truncate(text, 80)!r} expands to {count} OR branches, at most {MAX_OR_GROUPS} (each is one "
            "server search): narrow it, or split it into several queries"
        )


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
        raise UsageError(f'--order-by {raw!r} is not KEY [ASC|DESC], e.g. "metrics.sharpe DESC"')
    ident = split_key(words[0]) or ("attr", words[0])
    if ident[0] == "datasets":
        raise UsageError(f"--order-by {raw!r}: datasets cannot be ordered by")
    return OrderKey(ident[0], ident[1], len(words) == 2 and words[1].lower() == "desc", raw)


def sort_value(run: dict, kind: str, key: str) -> Any:
    if kind == "metrics":
        value = lookups.run_metrics(run).get(key)
        return None if value is None or math.isnan(value) else value
    if kind == "params":
        return lookups.run_params(run).get(key)
    if kind == "tags":
        return lookups.run_tags(run).get(key)
    info = run.get("info", {})
    field_name = ALIASES.get(key, ATTRIBUTES.get(key, key))
    value = info.get(field_name)
    if field_name in ("start_time", "end_time") and value not in (None, ""):
        return int(value)
    return value


def sort_runs(runs: list[dict], order: list[OrderKey]) -> list[dict]:
    """Sort like the server (MLflow's SQL store): each key in turn, values in the asked direction,
    then NaN, then missing values, in both directions; then start_time DESC, run_id."""
    keys = [*order, OrderKey("attr", "start_time", True, ""), OrderKey("attr", "run_id", False, "")]
    if not order:
        keys = keys[-2:]
    result = sorted(runs, key=lambda r: r["info"]["run_id"])
    for key in reversed(keys):
        present, nan, missing = [], [], []
        for run in result:
            if sort_value(run, key.kind, key.key) is not None:
                present.append(run)
            elif key.kind == "metrics" and key.key in lookups.run_metrics(run):
                nan.append(run)  # logged, as NaN
            else:
                missing.append(run)
        present.sort(key=lambda r: sort_value(r, key.kind, key.key), reverse=key.desc)
        result = present + nan + missing
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
                f"`{g.server_filter or '(all runs)'}`"
                + (f" + client `{' AND '.join(x.text for x in g.client)}`" if g.client else "")
                for g in self.groups
            )
            notes.append(
                f"OR: {len(self.groups)} AND-groups sent to the server one by one ({shown}); merged by run id "
                "without duplicates and re-sorted on the client"
            )
        numeric = list(
            dict.fromkeys(cmp.text for g in self.groups for cmp in g.client if isinstance(cmp, ParamComparison))
        )
        if numeric:
            notes.append(
                "evaluated client-side (params are text on the server; compared here as numbers): "
                + ", ".join(f"`{t}`" for t in numeric)
            )
        member = list(dict.fromkeys(cmp.text for g in self.groups for cmp in g.client if isinstance(cmp, Membership)))
        if member:
            notes.append(
                f"evaluated client-side (more than {IN_EXPAND_MAX} values; the server takes IN only on run ids): "
                + ", ".join(f"`{truncate(t, 80)}`" for t in member)
            )
        return notes


def build_query(
    store: Store,
    experiment_refs: list[str] | None,
    filter_text: str | None,
    order_by: list[str] | None = None,
    extra: list[str] | None = None,
    view: str = "active",
) -> Query:
    """Parse the filter and ordering (usage errors before any request), then resolve experiments."""
    groups, refs = parse_filter(filter_text)
    for group in groups:
        group.server.extend(extra or [])
    order = [parse_order(o) for o in order_by or []]
    deleted_ok = view in ("deleted", "all")  # a deleted experiment is named as such, unless asked for
    return Query(resolve_experiments(store, experiment_refs, deleted_ok), groups, refs, order, VIEWS[view or "active"])


def resolve_experiments(store: Store, refs: list[str] | None, deleted_ok: bool = False) -> list[dict]:
    """The named experiments (by name or id, without repeats), or every active one."""
    if refs:
        found = [lookups.get_experiment(store, ref, deleted_ok) for ref in refs]
        return list({e["experiment_id"]: e for e in found}.values())
    return lookups.all_experiments(store, "ACTIVE_ONLY")


def iter_group(
    store: Store, query: Query, group: Group, limit: int | None, page_size: int = SCAN_PAGE
) -> Iterator[dict]:
    """The runs of one AND-group, server pages followed, client-side clauses applied."""
    if not query.exp_ids:
        return
    server_limit = None if group.client else limit
    kept = 0
    for run in lookups.paged(store, SEARCH_RUNS, query.body(group), "runs", server_limit, page_size):
        if group.accepts(run):
            yield run
            kept += 1
            if limit is not None and kept >= limit:
                return


def iter_runs(store: Store, query: Query, limit: int | None = None, page_size: int = SCAN_PAGE) -> Iterator[dict]:
    """Every matching run once, in server order per group (no re-sort: export streams this)."""
    seen: set[str] = set()
    for group in query.groups:
        for run in iter_group(store, query, group, limit, page_size):
            run_id = run["info"]["run_id"]
            if run_id not in seen:
                seen.add(run_id)
                yield run


def fetch_all(store: Store, query: Query, limit: int | None = None) -> list[dict]:
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


def fetch_page(store: Store, query: Query, max_results: int, token: str | None) -> Page:
    """One page: straight from the server when it can answer alone, else fetch-sort-slice."""
    if max_results < 1:
        raise UsageError("--max-results must be at least 1")
    if not query.client_side:
        if token and token.startswith(OFFSET_PREFIX):
            raise UsageError("that --page-token came from an OR/numeric-param query: rerun with the same --filter")
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
            raise UsageError("that --page-token came from a plain server query, not this OR/numeric-param one")
        offset = int(token[len(OFFSET_PREFIX) :])
    runs = fetch_all(store, query)
    chunk = runs[offset : offset + max_results]
    more = offset + max_results < len(runs)
    return Page(chunk, f"{OFFSET_PREFIX}{offset + max_results}" if more else None, offset + 1, len(runs))
