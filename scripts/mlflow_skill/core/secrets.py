"""Secrets: masking for diagnostics (registered values, Authorization headers, userinfo, query
strings of URLs) and URIs shown without credentials and with every query value masked (a query
parameter's name does not say reliably whether it is a secret; on the wire every value is kept).
Masking works on structure; data is never rewritten.
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, urlencode

from mlflow_skill.core.formatting import safe_block

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


# the query string of a URL in a diagnostic (`http://h/x?a=1&b=2`, urllib3's `url: /api/...?a=1`)
_URL_QUERY_RE = re.compile(r"(?i)((?:\b[a-z][a-z0-9+.-]*://|\burl: /)[^\s?#'\"<>]*\?)([^\s#'\"<>)]+)")
_QUERY_VALUE_RE = re.compile(r"=[^&;]*")


def scrub(text: str) -> str:
    """Mask secrets in a diagnostic: Authorization header values, userinfo in URIs, every value
    in a URL's query string, and every registered secret where it stands as a token of its own
    (longest first)."""
    text = _AUTH_HEADER_RE.sub(lambda m: m.group(1) + MASK, text)
    text = _USERINFO_RE.sub(lambda m: m.group(1) + MASK + "@", text)
    text = _URL_QUERY_RE.sub(lambda m: m.group(1) + _QUERY_VALUE_RE.sub("=" + MASK, m.group(2)), text)
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
        self._inner.write(safe_block(scrub(text)))
        return len(text)

    def flush(self):
        return self._inner.flush()

    def isatty(self):
        return self._inner.isatty()

    @property
    def encoding(self):  # type: ignore[override]
        return getattr(self._inner, "encoding", "utf-8")


# Query-string parameters that carry credentials: registered as secrets (masked wherever they
# appear) and left out of the commands the scripts print. Every query value is masked where a URI
# is shown, whatever its name.
SECRET_QUERY_KEYS = (
    "token",
    "access_token",
    "accesstoken",
    "api_key",
    "api-key",
    "apikey",
    "key",
    "secret",
    "password",
    "passwd",
    "pwd",
    "sig",
    "signature",
    "auth",
    "authorization",
    "code",
    "client_secret",
    "sas",
    "jwt",
    "pat",
    "session",
    "sessionid",
    "sid",
    "ticket",
    "credential",
    "credentials",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
)
_SECRET_KEY_ENDINGS = ("token", "secret", "password", "_key", "-key", "apikey", "jwt", "session", "signature")


@dataclass(frozen=True)
class UriParts:
    scheme: str
    username: str | None
    password: str | None
    host: str  # host[:port]
    path: str
    query: tuple[tuple[str, str], ...]

    @property
    def base(self) -> str:
        """scheme://host/path: no credentials, no query (requests append /api/... to it)."""
        return f"{self.scheme}://{self.host}{self.path}".rstrip("/")

    def display(self) -> str:
        """For people: no userinfo at all, every query value masked."""
        return self.base + masked_query(self.query)


def masked_query(pairs) -> str:
    """`?name=***&other=***`, or "" without parameters: names shown, values never."""
    return f"?{urlencode([(k, MASK) for k, _ in pairs], safe='*')}" if pairs else ""


def is_secret_query_key(key: str) -> bool:
    key = key.lower()
    return key in SECRET_QUERY_KEYS or key.endswith(_SECRET_KEY_ENDINGS)


def split_uri(uri: str) -> UriParts | None:
    """Parse scheme://[user[:password]@]host[:port][/path][?query] without trusting URL parsing of
    the userinfo: the password is everything between the first ':' after the scheme and the last
    '@' before the host, so unencoded '#', '/', '?' or '@' in it cannot cut it short."""
    if "://" not in uri:
        return None
    scheme, rest = uri.split("://", 1)
    scheme = scheme.lower()
    username = password = None
    at = _userinfo_end(rest)
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, sep, pw = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if sep else None
    hostpart, query = rest, ""
    cut = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=-1)
    if cut >= 0:
        hostpart, rest = rest[:cut], rest[cut:]
        path, _, tail = rest.partition("?")
        query = tail.partition("#")[0]
        path = path.partition("#")[0]
    else:
        path = ""
    pairs = tuple(parse_qsl(query, keep_blank_values=True)) if query else ()
    return UriParts(scheme, username, password, hostpart, path.rstrip("/"), pairs)


def _userinfo_end(rest: str) -> int:
    """Index of the '@' that ends the userinfo, or -1. The host never holds '@', so it is the
    last '@' before the path; a path is only recognised after that '@' when there is one."""
    at = rest.rfind("@")
    if at < 0:
        return -1
    head = rest[:at]
    # host:5000/path?email=a@b: a port then a path, so that '@' is in the query, not userinfo.
    if re.match(r"^[^/?#@:]*:\d+([/?#]|$)", head):
        return -1
    user = head.partition(":")[0]
    if any(ch in user for ch in "/?#"):  # host/path@x: no userinfo before a path
        return -1
    return at


def redact_uri(uri: str) -> str:
    """A URI as people may see it: no userinfo, secret query values masked."""
    parts = split_uri(uri)
    return parts.display() if parts else uri


def redact_store_uri(uri: str) -> str:
    """A database URI as people may see it: `user:***@` instead of the password, every query
    value masked; other URIs (sqlite paths) exactly as written."""
    parts = split_uri(uri)
    if parts is None or not (parts.password or parts.query):
        return uri
    user = (
        f"{quote(parts.username or '', safe='')}:{MASK}@"
        if parts.password
        else (f"{quote(parts.username, safe='')}@" if parts.username else "")
    )
    return f"{parts.scheme}://{user}{parts.host}{parts.path}" + masked_query(parts.query)


def uri_without_secrets(uri: str) -> str:
    parts = split_uri(uri)
    if parts is None:
        return uri
    kept = [(k, v) for k, v in parts.query if not is_secret_query_key(k)]
    from urllib.parse import quote, urlencode

    base = parts.base
    if parts.scheme not in ("http", "https") and parts.username:  # a database keeps its user (PGPASSWORD...)
        base = f"{parts.scheme}://{quote(parts.username, safe='')}@{parts.host}{parts.path}"
    return base + (f"?{urlencode(kept)}" if kept else "")
