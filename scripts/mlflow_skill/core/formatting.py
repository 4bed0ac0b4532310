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


# Bidirectional controls (U+202A-U+202E, U+2066-U+2069, the marks U+200E/U+200F/U+061C) reorder
# what a terminal shows; U+2028/U+2029 break lines for many readers. None is ever ours.
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_FIELD_RE = re.compile(f"[\\x00-\\x08\\x0a-\\x1f\\x7f-\\x9f\\u2028\\u2029{_BIDI}]")  # all but tab
_BLOCK_RE = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f\\u2028\\u2029{_BIDI}]")  # also keeps newlines
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # what str.splitlines() breaks at


def _escaped(match: re.Match) -> str:
    code = ord(match.group())
    return "\\n" if code == 10 else f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(text: Any) -> str:
    """One store-supplied field for a terminal: control characters (ANSI escapes, carriage
    returns, newlines) and bidi controls shown as \\x1b-, \\n- and \\u202e-style escapes, so a
    hostile name can neither rewrite the screen nor start a line of its own."""
    return _FIELD_RE.sub(_escaped, str(text))


def safe_block(text: Any) -> str:
    """Whole output (lines of our own): as safe_text, but its newlines stay line breaks."""
    return _BLOCK_RE.sub(_escaped, str(text))


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
    """Binary steps with binary names: 123,456 B -> '120.6 KiB' (1 KiB = 1,024 B), never 'KB'."""
    if size in (None, ""):
        return ""
    size = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def fmt_percent(fraction: Any, decimals: int = 1) -> str:
    """A fraction as a percent that keeps its meaning: 0.625 -> '62.5%' (not '62%'), 2/3 -> '66.7%',
    0.5 -> '50%'; a value that would round to 0 or 100 without being it reads '<0.1%' / '>99.9%'."""
    if fraction is None or fraction == "":
        return ""
    value = float(fraction)
    if math.isnan(value):
        return "NaN"
    pct = value * 100
    step = 10**-decimals
    if 0 < pct < step:
        return f"<{step:.{decimals}f}%"
    if 100 - step < pct < 100:
        return f">{100 - step:.{decimals}f}%"
    text = f"{pct:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text}%"


def preview(value: Any, width: int = 60) -> str:
    """A JSON-ish value cut to width (strings without their JSON quotes)."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return truncate(text, width)
