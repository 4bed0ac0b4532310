"""Small shared pieces with no I/O of their own: errors and exit codes, secret masking for
diagnostics, formatters and renderers, atomic file writes.

Every other helper imports this one; it imports none of them. Kept free of heavy imports:
a script pays its start-up on every call.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def fmt_num(value: Any, digits: int = 4) -> str:
    """Numbers to `digits` significant digits; other values as text."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value) if abs(value) < 10**digits * 1000 else f"{value:.{digits}g}"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value == int(value) and abs(value) < 1e6:
            return str(int(value))
        return f"{value:.{digits}g}"
    return str(value)


def fmt_value(value: Any, width: int = 40) -> str:
    """A param/tag value: numeric strings as numbers, long text cut with a marker."""
    if isinstance(value, str):
        try:
            as_float = float(value)
        except ValueError:
            return truncate(value, width)
        if value.strip().lower() in ("nan", "inf", "-inf", "infinity"):
            return value
        return value if len(value) <= 12 else fmt_num(as_float)
    return fmt_num(value)


def truncate(text: Any, width: int = 40) -> str:
    text = safe_text(" ".join(str(text).split()))
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def fmt_time(ms: Any) -> str:
    """Epoch milliseconds -> 'YYYY-MM-DD HH:MM:SS' UTC."""
    if ms in (None, "", 0, "0"):
        return ""
    try:
        return datetime.fromtimestamp(int(ms) / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError, OverflowError, OSError):
        return str(ms)


def iso_time(ms: Any) -> str | None:
    if ms in (None, "", 0, "0"):
        return None
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def fmt_duration(ms: Any) -> str:
    if ms in (None, ""):
        return ""
    ms = float(ms)
    if ms < 1000:
        return f"{ms:.0f}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d{hours % 24:02d}h"


_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe_text(text: Any) -> str:
    """Store-supplied text for a terminal: control characters (ANSI escapes, carriage returns)
    shown as \\x1b-style escapes, so a hostile name cannot rewrite the screen."""
    return _CONTROL_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def md_escape(text: Any) -> str:
    """A table cell: one line, pipes escaped, control characters made visible."""
    return safe_text(str(text).replace("|", "\\|").replace("\r\n", " ").replace("\n", " ").replace("\t", " "))


def md_table(headers: list[str], rows: Iterable[Iterable[Any]]) -> str:
    lines = ["| " + " | ".join(md_escape(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(md_escape(c) for c in row) + " |")
    return "\n".join(lines)


def to_csv(headers: list[str], rows: Iterable[Iterable[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return buf.getvalue()


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=_json_default, allow_nan=False, ensure_ascii=False)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, datetime):
        return obj.isoformat()
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    return str(obj)


def json_safe(value: Any) -> Any:
    """NaN/inf are not JSON: map them to None recursively."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def fmt_bytes(size: Any) -> str:
    if size in (None, ""):
        return ""
    size = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def preview(value: Any, width: int = 60) -> str:
    """A JSON-ish value cut to width (strings without their JSON quotes)."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return truncate(text, width)
