"""What a trace cost: --prices FILE (USD per million tokens per model), the model each span with
token usage names, the trace's cost in USD, and how a cost reads."""

from __future__ import annotations

import json

from mlflow_skill.core.errors import UsageError
from mlflow_skill.core.formatting import fmt_num
from mlflow_skill.traces.spans import SpanNode, span_attr

MODEL_ATTRS = ("mlflow.llm.model", "gen_ai.response.model", "gen_ai.request.model")


def load_prices(path: str | None) -> dict[str, dict] | None:
    """--prices FILE: {"MODEL": {"input_per_1m": USD, "output_per_1m": USD}, ...} (or the same
    under a "models" key). Model names match exactly, then case-insensitively, then by prefix."""
    if not path:
        return None
    from pathlib import Path

    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise UsageError(f"--prices {path}: cannot read it ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise UsageError(f"--prices {path}: not valid JSON ({exc})") from None
    models = data.get("models", data) if isinstance(data, dict) else None
    if not isinstance(models, dict) or not models:
        raise UsageError(f'--prices {path}: expected {{"MODEL": {{"input_per_1m": 0.15, "output_per_1m": 0.6}}}}')
    prices = {}
    for model, p in models.items():
        try:
            prices[str(model)] = {"input": float(p["input_per_1m"]) / 1e6, "output": float(p["output_per_1m"]) / 1e6}
        except (TypeError, KeyError, ValueError):
            raise UsageError(
                f"--prices {path}: model {model!r} needs numeric input_per_1m and output_per_1m (USD per million "
                f"tokens)"
            ) from None
    return prices


def price_for(prices: dict, model: str) -> dict | None:
    if model in prices:
        return prices[model]
    lower = {k.lower(): v for k, v in prices.items()}
    if model.lower() in lower:
        return lower[model.lower()]
    prefixes = [k for k in lower if model.lower().startswith(k)]
    return lower[max(prefixes, key=len)] if prefixes else None


def span_model(node: SpanNode) -> str | None:
    for key in MODEL_ATTRS:
        value = span_attr(node.span, key)
        if value:
            return str(value)
    inputs = node.inputs
    if isinstance(inputs, dict) and isinstance(inputs.get("model"), str):
        return inputs["model"]
    return None


def trace_cost(nodes: list[SpanNode], prices: dict) -> dict:
    """USD from the spans that carry token usage (a span whose descendants also carry usage is
    skipped, so nothing is counted twice) priced by their model; the rest reported as unpriced."""
    has_usage = {n.key for n in nodes if n.tokens}
    cost, priced_tokens, unpriced_tokens, unpriced = 0.0, 0, 0, set()

    def below(node: SpanNode) -> bool:
        return any(ch.key in has_usage or below(ch) for ch in node.children)

    for n in nodes:
        if not n.tokens or below(n):
            continue
        model = span_model(n)
        price = price_for(prices, model) if model else None
        total = n.tokens.get("total_tokens") or 0
        if price is None:
            unpriced_tokens += total
            unpriced.add(model or "(no model name)")
            continue
        cost += (n.tokens.get("input_tokens") or 0) * price["input"] + (n.tokens.get("output_tokens") or 0) * price[
            "output"
        ]
        priced_tokens += total
    return {
        "cost_usd": cost if priced_tokens else None,
        "priced_tokens": priced_tokens,
        "unpriced_tokens": unpriced_tokens,
        "unpriced_models": sorted(unpriced),
    }


def fmt_usd(value: float | None) -> str:
    """Dollars with enough decimals to show small per-trace costs (two significant digits)."""
    import math

    if value is None:
        return ""
    if value == 0 or value >= 1:
        return f"${value:,.2f}"
    decimals = min(10, max(2, 1 - math.floor(math.log10(value))))
    return f"${value:.{decimals}f}"


def cost_brief(cost_usd: float | None, unpriced_tokens: int | None) -> str:
    """A cost in a table cell: dollars, and the tokens nobody priced."""
    text = fmt_usd(cost_usd)
    if unpriced_tokens:
        text += f" (+{fmt_num(unpriced_tokens)} tok unpriced)"
    return text


def cost_text(cost_usd: float | None, unpriced_tokens: int | None, unpriced_models: list[str]) -> str:
    """A cost in a header line: dollars, and which models had no price."""
    text = fmt_usd(cost_usd) or "$0 priced"
    if unpriced_tokens:
        text += f" (+{fmt_num(unpriced_tokens)} tokens unpriced: {', '.join(unpriced_models[:3])})"
    return text
