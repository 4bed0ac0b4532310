"""Reading values given on the command line or by the store: floats, KEY=VALUE, durations, times."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from mlflow_skill.core.errors import UsageError


def to_float(value: Any) -> float:
    """MLflow's JSON encodes NaN/Infinity as strings; turn every metric value into a float."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def parse_key_values(pairs: Iterable[str] | None, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise UsageError(f"{flag} takes KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        if not key.strip():
            raise UsageError(f"{flag} {pair!r} has an empty key")
        out[key.strip()] = value
    return out


DURATION_UNITS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_duration_ms(text: str, flag: str) -> int:
    """'90s', '30m', '1h', '2d', '1w' -> milliseconds."""
    text = str(text).strip()
    if len(text) >= 2 and text[-1].lower() in DURATION_UNITS:
        with contextlib.suppress(ValueError):
            value = float(text[:-1])
            if value > 0 and math.isfinite(value):
                return int(value * DURATION_UNITS[text[-1].lower()])
    raise UsageError(f"{flag} {text!r} is not a duration: use e.g. 90s, 30m, 1h, 2d or 1w")


def parse_since(text: str, now_ms: int | None = None) -> int:
    """'90s', '30m', '1h', '2d', '1w' (ago) or an ISO date/time (UTC unless it says) -> epoch ms."""
    text = str(text).strip()
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if len(text) >= 2 and text[-1].lower() in DURATION_UNITS:
        try:
            return now_ms - int(float(text[:-1]) * DURATION_UNITS[text[-1].lower()])
        except ValueError:
            pass
    if text.isdigit() and len(text) >= 12:  # epoch milliseconds
        return int(text)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"cannot read time {text!r}: use a duration ago like 30m, 1h, 2d, 1w, or an ISO date like "
            "2026-11-01 or 2026-11-01T14:00"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100) of the values, None when empty."""
    data = sorted(v for v in values if v is not None)
    if not data:
        return None
    pos = (len(data) - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)
