"""Small shared pieces with no I/O of their own: errors and exit codes, secret masking for
diagnostics, formatters and renderers, atomic file writes.

Every other helper imports this one; it imports none of them. Kept free of heavy imports:
a script pays its start-up on every call.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import math
import os
import re
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote

# ---------------------------------------------------------------------------------------------
# Exit codes (documented in references/troubleshooting.md and every script's --help epilog)
# ---------------------------------------------------------------------------------------------
EXIT_OK = 0
EXIT_ERROR = 1  # unexpected failure (a bug): run again with --debug
EXIT_USAGE = 2  # bad arguments, bad filter, bad input data
EXIT_NOT_FOUND = 3  # unknown experiment, run, metric, trace
EXIT_CONNECTION = 4  # server unreachable or too slow
EXIT_AUTH = 5  # 401 wrong/missing credentials, 403 missing permission
EXIT_SERVER = 6  # the server failed (5xx) or answered something unexpected

EXIT_CODES_HELP = (
    "exit codes: 0 ok, 2 usage or bad input, 3 not found, 4 cannot reach the server, "
    "5 authentication or permission, 6 server error, 1 unexpected (rerun with --debug)"
)


class SkillError(Exception):
    """An error with a one-line message that names the fix, and its exit code."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(SkillError):
    exit_code = EXIT_USAGE


class NotFoundError(SkillError):
    exit_code = EXIT_NOT_FOUND


class ConnectionFailure(SkillError):
    exit_code = EXIT_CONNECTION


class AuthError(SkillError):
    exit_code = EXIT_AUTH


class ServerError(SkillError):
    exit_code = EXIT_SERVER


# ---------------------------------------------------------------------------------------------
# Secrets. Masking is for diagnostics (stderr, error messages, tracebacks) and works on
# structure: the known secret values as whole tokens, Authorization headers in any encoding.
# Data (stdout, --output files) is never rewritten: URIs are shown without credentials instead.
# ---------------------------------------------------------------------------------------------
MASK = "***"
_SECRETS: set[str] = set()
_AUTH_SCHEMES = r"(?:basic|bearer|token|digest|negotiate)"
# `Authorization: Basic <value>` / `"authorization": "Bearer <value>"`: the value after the scheme
# word; the scheme word itself is never taken for the value, so masking twice changes nothing.
_AUTH_HEADER_RE = re.compile(
    rf"(?i)(authorization['\"]?\s*[:=]\s*['\"]?(?:{_AUTH_SCHEMES}\s+)?)(?!{_AUTH_SCHEMES}\s)([A-Za-z0-9._~+/=:-]+)"
)
# userinfo in any URI; `user:***@` (a password already masked, as in a database store line) is kept
_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)(?![^\s/@:]*:\*\*\*@)[^\s/@]*(?::[^\s@]*)?@")


def register_secret(value: str | None) -> None:
    """Mask this value (and its percent-encoded form) in every diagnostic from now on."""
    if value:
        _SECRETS.add(value)
        encoded = quote(value, safe="")
        if encoded != value:
            _SECRETS.add(encoded)


def register_basic_auth(username: str | None, password: str | None) -> None:
    """The base64 forms an echoed `Authorization: Basic ...` header would carry."""
    if password:
        token = f"{username or ''}:{password}".encode()
        for form in (base64.b64encode(token), base64.urlsafe_b64encode(token)):
            register_secret(form.decode().rstrip("="))


def clear_secrets() -> None:
    _SECRETS.clear()


def scrub(text: str) -> str:
    """Mask secrets in a diagnostic: Authorization header values, userinfo in URIs, and every
    registered secret where it stands as a token of its own (longest first)."""
    text = _AUTH_HEADER_RE.sub(lambda m: m.group(1) + MASK, text)
    text = _USERINFO_RE.sub(lambda m: m.group(1) + MASK + "@", text)
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = _replace_token(text, secret)
    return text


def _replace_token(text: str, secret: str) -> str:
    """Replace `secret` where it is not glued to letters or digits on either side, so a short
    password such as `0` masks `password 0` but not the run id `0a3f...`."""
    pattern = re.compile(r"(?<![A-Za-z0-9])" + re.escape(secret) + r"(?![A-Za-z0-9])")
    return pattern.sub(MASK, text)


class ScrubbingStream(io.TextIOBase):
    """Wraps stderr so no registered secret reaches a diagnostic, whatever the code path, and
    control characters from the store (ANSI escapes in a name echoed by an error) stay visible."""

    def __init__(self, inner):
        self._inner = inner

    def write(self, text):  # type: ignore[override]
        self._inner.write(safe_text(scrub(text)))
        return len(text)

    def flush(self):
        return self._inner.flush()

    def isatty(self):
        return self._inner.isatty()

    @property
    def encoding(self):  # type: ignore[override]
        return getattr(self._inner, "encoding", "utf-8")


# ---------------------------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------------------------
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
        return datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError, OverflowError, OSError):
        return str(ms)


def iso_time(ms: Any) -> str | None:
    if ms in (None, "", 0, "0"):
        return None
    return datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc).isoformat().replace("+00:00", "Z")


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


def write_atomic(path: str | Path, data: str | bytes, force: bool = False) -> Path:
    """Write a file in one step (temp file + rename); refuse to replace one without force."""
    target = Path(path)
    if target.exists() and not force:
        raise UsageError(f"{target} exists: pass --force to overwrite it, or choose another --output")
    if not target.parent.exists():
        raise UsageError(f"folder {target.parent} does not exist: create it or choose another --output")
    if isinstance(data, str):
        data = data.encode("utf-8")  # data is written as it is: never masked
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target


def fmt_bytes(size: Any) -> str:
    if size in (None, ""):
        return ""
    size = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"




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
        dt = dt.replace(tzinfo=timezone.utc)
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


def preview(value: Any, width: int = 60) -> str:
    """A JSON-ish value cut to width (strings without their JSON quotes)."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return truncate(text, width)
