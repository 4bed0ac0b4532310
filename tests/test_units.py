"""Unit tests of the pure parts: no server, no store, milliseconds each.

The filter language (tokens, OR/AND grouping, parentheses, IN), the client-side ordering that
reproduces the server's, time parsing, URI handling, next-page commands and the one renderer.
"""

from __future__ import annotations

import json

import pytest

from mlflow_skill.cli.frame import next_page_command
from mlflow_skill.cli.view import Table, View, render_csv, render_json, render_markdown
from mlflow_skill.core.errors import UsageError
from mlflow_skill.core.formatting import md_escape
from mlflow_skill.core.secrets import clear_secrets, redact_uri, register_basic_auth, register_secret, scrub, split_uri
from mlflow_skill.core.values import parse_duration_ms, parse_since
from mlflow_skill.runs import search as rs
from mlflow_skill.traces import api as tr


def groups_of(text: str) -> list[tuple[str, list[str]]]:
    groups, _ = rs.parse_filter(text)
    return [(g.server_filter, [x.text for x in g.client]) for g in groups]


# ---------------------------------------------------------------------------------------------
# Filter language
# ---------------------------------------------------------------------------------------------
def test_tokenizer_keeps_quoted_keys_and_values_whole():
    tokens = rs.tokenize("params.\"learning rate\" = 'a OR b' AND tags.`x-y` != 'z'")
    assert [t.kind for t in tokens] == ["word", "op", "str", "and", "word", "op", "str"]
    assert tokens[0].text == 'params."learning rate"' and tokens[2].text == "'a OR b'"
    assert rs.split_key(tokens[0].text) == ("params", "learning rate")
    assert rs.split_key(tokens[4].text) == ("tags", "x-y")


def test_or_inside_a_value_is_text_and_and_binds_tighter():
    assert groups_of("tags.note = 'this OR that'") == [("tags.note = 'this OR that'", [])]
    assert groups_of("metrics.a > 1 AND metrics.b < 2 OR tags.t = 'x'") == [
        ("metrics.a > 1 AND metrics.b < 2", []),
        ("tags.t = 'x'", []),
    ]


def test_parentheses_are_distributed_into_and_groups():
    assert groups_of("(metrics.a > 1 OR params.b = 'x') AND tags.t = 'y'") == [
        ("metrics.a > 1 AND tags.t = 'y'", []),
        ("params.b = 'x' AND tags.t = 'y'", []),
    ]
    nested = groups_of("((metrics.a > 1 OR metrics.a < 0) AND (params.p = '1' OR params.p = '2')) OR tags.z = 'q'")
    assert len(nested) == 5 and nested[-1] == ("tags.z = 'q'", [])
    assert ("metrics.a < 0 AND params.p = '2'", []) in nested


def test_in_lists_expand_and_long_ones_run_on_the_client():
    assert groups_of("params.o IN ('adam', 'sgd')") == [("params.o = 'adam'", []), ("params.o = 'sgd'", [])]
    assert groups_of("tags.s NOT IN ('a', 'b') AND metrics.x > 0") == [
        ("tags.s != 'a' AND tags.s != 'b' AND metrics.x > 0", [])
    ]
    assert groups_of("attributes.run_id IN ('a', 'b')") == [("attributes.run_id IN ('a', 'b')", [])]
    many = "params.o IN (" + ", ".join(f"'{i}'" for i in range(rs.IN_EXPAND_MAX + 1)) + ")"
    assert groups_of(many) == [("", [many])]


def test_membership_matches_like_sql():
    (group,), _ = rs.parse_filter("params.o IN (" + ", ".join(f"'v{i}'" for i in range(12)) + ")")
    (member,) = group.client

    def run(params):
        return {"info": {"run_id": "r"}, "data": {"params": [{"key": k, "value": v} for k, v in params.items()]}}

    assert member.matches(run({"o": "v3"})) and not member.matches(run({"o": "w"})) and not member.matches(run({}))


def test_numeric_param_comparison_is_client_side_and_quoted_equality_is_text():
    assert groups_of("params.lr > 0.001 AND metrics.acc >= 0.9") == [("metrics.acc >= 0.9", ["params.lr > 0.001"])]
    assert groups_of("params.lr = '0.01'") == [("params.lr = '0.01'", [])]


@pytest.mark.parametrize(
    "text,needle",
    [
        ("metrics.a > 1 OR", "empty OR branch"),
        ("(metrics.a > 1", "unbalanced"),
        ("params.o IN (1, 2)", "quoted values"),
        (" OR ".join(f"metrics.a > {i}" for i in range(rs.MAX_OR_GROUPS + 1)), "at most"),
        (
            "(metrics.a>1 OR metrics.a<0) AND (metrics.b>1 OR metrics.b<0) AND "
            + " AND ".join(f"params.p{i} IN ('1','2','3')" for i in range(4)),
            "expands to",
        ),
        ("params.x = 'unclosed", "unclosed"),
    ],
)
def test_bad_filters_name_the_fix(text, needle):
    with pytest.raises(UsageError) as err:
        rs.parse_filter(text)
    assert needle in str(err.value)


# ---------------------------------------------------------------------------------------------
# Ordering on the client (merged OR results) matches the server's rules
# ---------------------------------------------------------------------------------------------
def _run(run_id: str, start: int, **metrics) -> dict:
    return {
        "info": {"run_id": run_id, "start_time": start},
        "data": {"metrics": [{"key": k, "value": v} for k, v in metrics.items()]},
    }


def test_sort_runs_nan_then_missing_last_then_start_time_desc_then_id():
    runs = [_run("b", 1, m=1.0), _run("a", 1, m=1.0), _run("c", 5), _run("d", 2, m=2.0), _run("e", 0, m="NaN")]
    asc = [r["info"]["run_id"] for r in rs.sort_runs(runs, [rs.parse_order("metrics.m ASC")])]
    desc = [r["info"]["run_id"] for r in rs.sort_runs(runs, [rs.parse_order("metrics.m DESC")])]
    assert asc == ["a", "b", "d", "e", "c"]  # NaN (older) before missing (newer), as MLflow's SQL store
    assert desc == ["d", "a", "b", "e", "c"]  # in both directions
    assert [r["info"]["run_id"] for r in rs.sort_runs(runs, [])] == ["c", "d", "a", "b", "e"]
    created = [r["info"]["run_id"] for r in rs.sort_runs(runs, [rs.parse_order("attributes.Created ASC")])]
    assert created == ["e", "a", "b", "d", "c"]


def test_param_numbers_in_double_quotes_and_non_finite_ones():
    groups, _ = rs.parse_filter('params.lr > "0.005" AND params.color = "red"')
    assert [c.value for c in groups[0].client] == [0.005] and groups[0].server == ['params.color = "red"']
    for text in ("params.lr = nan", "params.lr < inf", "params.lr >= '-Infinity'"):
        with pytest.raises(UsageError, match="finite number"):
            rs.parse_filter(text)
    with pytest.raises(UsageError, match="leading, trailing or doubled AND"):
        rs.parse_filter("metrics.a > 1 AND")


def test_order_by_is_validated():
    with pytest.raises(UsageError):
        rs.parse_order("metrics.m SIDEWAYS")
    assert rs.parse_order("`metrics.a b` DESC").desc


# ---------------------------------------------------------------------------------------------
# Times, URIs, next-page commands
# ---------------------------------------------------------------------------------------------
def test_parse_since_durations_and_dates():
    now = 1_800_000_000_000
    assert parse_since("90s", now) == now - 90_000
    assert parse_since("2d", now) == now - 2 * 86_400_000
    assert parse_since("2026-11-01") == 1_793_491_200_000
    assert parse_since("2026-11-01T01:00+01:00") == 1_793_491_200_000
    with pytest.raises(UsageError):
        parse_since("yesterday")
    assert parse_duration_ms("1h", "--stale") == 3_600_000
    with pytest.raises(UsageError):
        parse_duration_ms("-1h", "--stale")


def test_protobuf_timestamps_and_durations():
    assert tr.pb_timestamp_ms("2026-11-23T15:11:30.574123456Z") == 1_795_446_690_574
    assert tr.pb_timestamp_ms(1_795_446_690_574) == 1_795_446_690_574
    assert tr.pb_duration_ms("0.415s") == pytest.approx(415.0)
    assert tr.pb_timestamp_ms("not a time") is None


@pytest.mark.parametrize(
    "uri,user,password,base",
    [
        ("http://admin:S3cr#t!@host:5000", "admin", "S3cr#t!", "http://host:5000"),
        ("http://admin:p/a?ss@host:5000/prefix", "admin", "p/a?ss", "http://host:5000/prefix"),
        ("https://al%40ice:p%3Aw@host", "al@ice", "p:w", "https://host"),
        ("http://host:5000/path?email=a@b.com", None, None, "http://host:5000/path"),
        ("http://host/p@x", None, None, "http://host/p@x"),
    ],
)
def test_split_uri_takes_the_whole_password(uri, user, password, base):
    parts = split_uri(uri)
    assert (parts.username, parts.password, parts.base) == (user, password, base)
    shown = redact_uri(uri)
    assert (password or "\0") not in shown and "@host" not in shown


def test_secret_query_parameters_are_masked_and_dropped_from_commands():
    uri = "https://h/?access_token=abc123&region=eu"
    assert redact_uri(uri) == "https://h?access_token=***&region=***"  # every value masked when shown
    cmd = next_page_command(["runs", "--tracking-uri", "http://al:pw@h:1/x?token=t0k&a=1"], "tok", "q.py")
    assert "pw" not in cmd and "t0k" not in cmd and "al@" not in cmd and "http://h:1/x?a=1" in cmd
    assert cmd.endswith("--page-token tok")


def test_scrub_masks_tokens_not_data():
    clear_secrets()
    register_secret("0")
    register_secret("mlflow")
    register_basic_auth("admin", "mlflow")
    try:
        assert scrub("password 0 rejected") == "password *** rejected"
        assert scrub("run 0a1b2c") == "run 0a1b2c"
        assert scrub("Authorization: Basic YWRtaW46bWxmbG93") == "Authorization: Basic ***"
        assert scrub("see http://bob:hunter2@h/x") == "see http://***@h/x"
    finally:
        clear_secrets()


def test_table_cells_escape_control_characters():
    cell = md_escape("evil\x1b[2Jname|x\nnext")
    assert "\x1b" not in cell and "\\x1b" in cell and "\n" not in cell and "\\|" in cell


# ---------------------------------------------------------------------------------------------
# The one renderer
# ---------------------------------------------------------------------------------------------
def test_view_renders_three_formats_from_one_shape():
    view = View(
        data={"rows": [1, 2]},
        lines=["Title", ""],
        table=Table(["a", "b"], [["1.5 %", "x"]], [[0.015, "x"]]),
        after=["", "note"],
        next_command="uv run scripts/q.py runs --page-token T",
        next_token="T",
        more_label="more runs exist",
    )
    md = render_markdown(view)
    assert (
        md.splitlines()[0] == "Title"
        and "| 1.5 % | x |" in md
        and md.rstrip().endswith("`uv run scripts/q.py runs --page-token T`")
    )
    assert json.loads(render_json(view)) == {
        "rows": [1, 2],
        "next_page_token": "T",
        "next_page_command": view.next_command,
    }
    assert render_csv(view) == "a,b\n0.015,x\n"
    empty = View(data={}, lines=["T"], table=Table(["a"], []), empty="nothing here")
    assert render_markdown(empty) == "T\nnothing here"
    with pytest.raises(UsageError):
        render_csv(View(data={}))


MINIMAL_ARGS = {  # the least each subcommand parses
    "run": ["r1"],
    "compare": ["r1", "r2"],
    "best": ["--metric", "m"],
    "overfit": ["--train", "a", "--test", "b"],
    "aggregate": ["-g", "params.a", "-m", "m"],
    "export": ["--output", "o.csv"],
    "returns": ["r1"],
    "artifacts": ["r1"],
    "model": ["name"],
}


def test_query_experiments_builds_only_the_command_a_call_names():
    """main() builds just the subcommand named first; COMMANDS names every one the full parser has,
    and each parses alone."""
    from conftest import load_script

    q = load_script("query_experiments")

    def choices(parser):
        return list(next(a for a in parser._actions if a.dest == "command").choices)

    assert choices(q.build_parser()) == list(q.COMMANDS)
    for name in q.COMMANDS:
        only = q.build_parser(name)
        assert choices(only) == [name]
        assert only.parse_args([name, *MINIMAL_ARGS.get(name, [])]).command == name
