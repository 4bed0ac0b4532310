"""get_trace.py --session: a session's traces, oldest first, as a conversation. Each turn is the
user's input and the response (read from chat messages), with status, latency, tokens, feedback,
cost and, for a failed turn, its root-cause error; then the session's totals."""

from __future__ import annotations

import json
from typing import Any

from mlflow_skill.cli.frame import Context
from mlflow_skill.cli.view import View
from mlflow_skill.core.errors import NotFoundError, SkillError
from mlflow_skill.core.formatting import fmt_duration, fmt_num, fmt_time, json_safe, md_escape, truncate
from mlflow_skill.traces import api as tr
from mlflow_skill.traces.assessments import assessment_value_text, fmt_assessment_summary, summarize_assessments
from mlflow_skill.traces.cost import cost_text, fmt_usd, trace_cost
from mlflow_skill.traces.filters import backtick_key, filter_eq
from mlflow_skill.traces.spans import SpanNode, cause_text, root_cause, span_nodes

TURN_TEXT = 110  # characters of each side of a turn


def message_text(value: Any, role: str) -> str | None:
    """The text a person reads from a request (role 'user') or response (role 'assistant'):
    the last chat message of that role, a completion's message, or the first string field."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in '{["':
            try:
                return message_text(json.loads(stripped), role) or value
            except ValueError:
                return value
        return value
    if isinstance(value, list):
        msgs = [m for m in value if isinstance(m, dict) and m.get("role") == role and m.get("content")]
        if msgs:
            return content_text(msgs[-1]["content"])
        return next((t for t in (message_text(v, role) for v in value) if t), None)
    if isinstance(value, dict):
        return dict_message_text(value, role)
    return None if value is None else str(value)


def dict_message_text(value: dict, role: str) -> str | None:
    for key in ("messages", "input", "inputs", "choices", "output", "outputs"):
        if key in value:
            text = message_text(value[key], role)
            if text:
                return text
    if isinstance(value.get("message"), dict):
        return content_text(value["message"].get("content"))
    for key in ("content", "question", "query", "prompt", "text", "answer", "response", "result"):
        if isinstance(value.get(key), str):
            return value[key]
    return next((v for v in value.values() if isinstance(v, str)), None)


def content_text(content: Any) -> str:
    if isinstance(content, list):  # [{"type": "text", "text": ...}]
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict)) or json.dumps(content)
    return str(content)


def fetch_session(ctx: Context) -> tuple[list[dict], list[dict], bool]:
    """The experiments searched, the session's trace infos (oldest first) and whether --limit cut them."""
    args = ctx.args
    experiments = tr.resolve_experiments(ctx.store, ctx.settings, args.experiment)
    flt = filter_eq(backtick_key("metadata", tr.TRACE_SESSION_KEY), args.session)
    infos, truncated = tr.search_all_trace_infos(
        ctx.store, [e["experiment_id"] for e in experiments], flt, args.limit, ["timestamp_ms ASC"]
    )
    if not infos:
        import shlex

        names = ", ".join(e["name"] for e in experiments)
        raise NotFoundError(
            f"no traces in session {args.session!r} in {names} (list sessions: uv run scripts/search_traces.py "
            f"--experiment {shlex.quote(experiments[0]['name'])} --group-by session)"
        )
    return experiments, infos, truncated


def fetch_nodes(ctx: Context, infos: list[dict], prices: dict | None) -> dict[str, list[SpanNode] | None]:
    """Spans only where a root cause (failed turns) or a cost (--prices) needs them."""
    need = [i for i in infos if prices or (i.get("state") or i.get("status")) == "ERROR"]
    nodes: dict[str, list[SpanNode] | None] = {}
    for info in need:
        try:
            nodes[info["trace_id"]] = span_nodes(tr.get_trace_spans(ctx.store, info["trace_id"]))
        except SkillError:
            nodes[info["trace_id"]] = None
    return nodes


def turn_of(number: int, info: dict, nodes: list[SpanNode] | None, prices: dict | None) -> dict:
    s = tr.trace_summary(info)
    cause = root_cause(nodes) if nodes else None
    return {
        "turn": number,
        "trace_id": s["trace_id"],
        "timestamp_ms": s["timestamp_ms"],
        "status": s["status"],
        "duration_ms": s["duration_ms"],
        "user": s["user"],
        "tokens": s["tokens"],
        "input": message_text(s["request_preview"], "user") or "",
        "response": message_text(s["response_preview"], "assistant") or "",
        "error": cause_text(cause) if cause else ("ERROR" if s["status"] == "ERROR" else None),
        "assessments": s["assessments"],
        "cost": trace_cost(nodes, prices) if prices and nodes is not None else None,
    }


def session_view(ctx: Context, prices: dict | None) -> View:
    args = ctx.args
    experiments, infos, truncated = fetch_session(ctx)
    nodes = fetch_nodes(ctx, infos, prices)
    turns = [turn_of(n + 1, info, nodes.get(info["trace_id"]), prices) for n, info in enumerate(infos)]
    result = {
        "session": args.session,
        "experiments": [{"experiment_id": e["experiment_id"], "name": e["name"]} for e in experiments],
        "truncated_at_limit": truncated,
        "totals": session_totals(turns, prices),
        "turns": turns,
    }
    return View(data=json_safe(result), lines=session_lines(result, args))


def session_totals(turns: list[dict], prices: dict | None) -> dict:
    tokens = [t["tokens"] for t in turns if t["tokens"]]
    costs = [t["cost"] for t in turns if t["cost"]]
    last = turns[-1]
    return {
        "turns": len(turns),
        "errors": sum(1 for t in turns if t["status"] == "ERROR"),
        "users": sorted({t["user"] for t in turns if t["user"]}),
        "first_ms": turns[0]["timestamp_ms"],
        "last_end_ms": (last["timestamp_ms"] or 0) + int(last["duration_ms"] or 0),
        "duration_ms": sum(t["duration_ms"] or 0 for t in turns),
        "input_tokens": sum(t.get("input_tokens") or 0 for t in tokens) if tokens else None,
        "output_tokens": sum(t.get("output_tokens") or 0 for t in tokens) if tokens else None,
        "total_tokens": sum(t.get("total_tokens") or 0 for t in tokens) if tokens else None,
        "cost_usd": sum(x["cost_usd"] or 0 for x in costs) if prices else None,
        "unpriced_tokens": sum(x["unpriced_tokens"] for x in costs) if prices else None,
        "unpriced_models": sorted({m for x in costs for m in x["unpriced_models"]}) if prices else None,
        "assessments": summarize_assessments(turns),
    }


def session_lines(result: dict, args) -> list[str]:
    t = result["totals"]
    where = ", ".join(f"{e['name']} ({e['experiment_id']})" for e in result["experiments"])
    errs = f" ({t['errors']} failed)" if t["errors"] else ""
    lines = [f"## Session {result['session']}: {t['turns']} turns{errs} in {where}", ""]
    lines.append("- " + " · ".join(totals_head(t)))
    if t["assessments"]:
        lines.append(
            "- feedback: " + " · ".join(f"{n} {fmt_assessment_summary(s)}" for n, s in t["assessments"].items())
        )
    if result["truncated_at_limit"]:
        lines.append(f"- stopped at --limit {args.limit} traces: the session has more (raise --limit)")
    shown = result["turns"][: args.max_turns]
    for turn in shown:
        lines += ["", *turn_lines(turn)]
    hidden = result["turns"][args.max_turns :]
    if hidden:
        lines += ["", f"turns {len(shown) + 1}–{t['turns']} not shown: --max-turns {t['turns']} (or --format json)"]
        failed = [h for h in hidden if h["status"] == "ERROR"][:5]
        if failed:
            lines.append("failed among them: " + ", ".join(f"#{h['turn']} {h['trace_id']}" for h in failed))
    lines += ["", "a turn in full: uv run scripts/get_trace.py --trace-id TRACE_ID"]
    return lines


def totals_head(t: dict) -> list[str]:
    """The session's time span, time in traces, users, tokens and cost."""
    head = [
        f"{fmt_time(t['first_ms'])} → {fmt_time(t['last_end_ms'])[11:]} UTC",
        f"{fmt_duration(t['duration_ms'])} in traces",
    ]
    if t["users"]:
        head.append("user " + ", ".join(t["users"][:3]) + (" …" if len(t["users"]) > 3 else ""))
    if t["total_tokens"] is not None:
        head.append(
            f"tokens {fmt_num(t['total_tokens'])} ({fmt_num(t['input_tokens'])} in / {fmt_num(t['output_tokens'])} out)"
        )
    if t["cost_usd"] is not None:
        head.append("cost " + cost_text(t["cost_usd"], t["unpriced_tokens"], t["unpriced_models"]))
    return head


def turn_lines(turn: dict) -> list[str]:
    bits = [
        f"**{turn['turn']}**",
        fmt_time(turn["timestamp_ms"])[11:],
        turn["status"],
        fmt_duration(turn["duration_ms"]),
    ]
    if turn["tokens"]:
        bits.append(f"{fmt_num(turn['tokens'].get('total_tokens'))} tok")
    if turn["cost"] and turn["cost"]["cost_usd"] is not None:
        bits.append(fmt_usd(turn["cost"]["cost_usd"]))
    bits.append(turn["trace_id"])
    out = [" · ".join(b for b in bits if b)]
    out.append(f"> user: {md_escape(truncate(turn['input'], TURN_TEXT)) or '—'}")
    if turn["error"]:
        out.append(f"> **error**: {md_escape(truncate(turn['error'], TURN_TEXT))}")
    else:
        out.append(f"> response: {md_escape(truncate(turn['response'], TURN_TEXT)) or '—'}")
    fb = [a for a in turn["assessments"] if a["kind"] == "feedback" and a.get("valid") is not False]
    if fb:
        text = ", ".join(f"{a['name']}={assessment_value_text(a, 16)} ({a['source'].split(':')[0]})" for a in fb)
        out.append(f"> feedback: {md_escape(truncate(text, 140))}")
    return out
