"""The one reader of an HTTP answer's body, for every HTTP transport: the content encoding is
decoded here in bounded steps with a cap on the decoded size (a gzip bomb is stopped while it
inflates, not after), and one deadline covers the whole answer (a server trickling a byte a
second cannot stretch --timeout into minutes).

The body is read from the raw stream (`requests` with stream=True), never through `resp.content`,
whose decoding has no cap and whose read timeout restarts with every byte.
"""

from __future__ import annotations

import contextlib
import json
import time
import zlib
from typing import Any

CHUNK = 64 * 1024  # bytes asked of the socket at a time
INFLATE_STEP = 1024 * 1024  # decoded bytes produced at most per step
ACCEPT_ENCODING = "gzip, deflate"  # what we decode ourselves; anything else was not asked for


class AnswerTooLarge(Exception):
    """The decoded body passed the cap (`size` bytes so far; `compressed` read off the wire)."""

    def __init__(self, size: int, compressed: int, encoding: str):
        super().__init__(f"more than {size} bytes")
        self.size, self.compressed, self.encoding = size, compressed, encoding


class AnswerLate(Exception):
    """The deadline passed before the whole body arrived (`received` bytes had come)."""

    def __init__(self, received: int):
        super().__init__(f"{received} bytes before the deadline")
        self.received = received


class AnswerCut(Exception):
    """The connection broke in the middle of the body."""


class UnknownEncoding(Exception):
    """A Content-Encoding we did not ask for and cannot decode."""


class _Inflater:
    """gzip (several members too) or deflate (zlib-wrapped or raw), decoded at most
    INFLATE_STEP bytes at a time so the caller can stop a bomb before it is inflated."""

    def __init__(self, encoding: str):
        self.gzip = encoding in ("gzip", "x-gzip")
        self._raw_tried = False
        self._d = self._new()

    def _new(self):
        return zlib.decompressobj(16 + zlib.MAX_WBITS if self.gzip else zlib.MAX_WBITS)

    def feed(self, data: bytes):
        while data:
            try:
                out = self._d.decompress(data, INFLATE_STEP)
            except zlib.error:
                if self.gzip or self._raw_tried:
                    raise
                self._raw_tried = True  # "deflate" sent without its zlib header (old IIS, some proxies)
                self._d = zlib.decompressobj(-zlib.MAX_WBITS)
                out = self._d.decompress(data, INFLATE_STEP)
            yield out
            if self._d.unconsumed_tail:
                data = self._d.unconsumed_tail
            elif self._d.eof and self._d.unused_data and self.gzip:
                data = self._d.unused_data  # the next gzip member
                self._d = self._new()
            else:
                data = b""

    def flush(self) -> bytes:
        return self._d.flush()


def _decoder(encoding: str) -> _Inflater | None:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip", "deflate"):
        return _Inflater(encoding)
    raise UnknownEncoding(encoding)


def _limit_wait(raw: Any, deadline: float) -> None:
    """Let the next socket read wait no longer than the deadline (urllib3 keeps the connection;
    best effort: other layouts fall back to the per-read timeout, still checked per chunk)."""
    sock = getattr(getattr(raw, "_connection", None), "sock", None)
    if sock is not None:
        with contextlib.suppress(Exception):
            sock.settimeout(max(0.01, deadline - time.monotonic()))


def read_body(resp: Any, deadline: float, cap: int) -> bytes | bytearray:
    """The decoded body of a `requests` response opened with stream=True. Raises AnswerTooLarge,
    AnswerLate, AnswerCut or UnknownEncoding; closes the connection on any of them."""
    try:
        body = _read(resp, deadline, cap)
    except BaseException:
        with contextlib.suppress(Exception):
            resp.close()
        raise
    with contextlib.suppress(Exception):
        resp.raw.release_conn()  # read to the end: the connection can serve the next request
    return body


def _read(resp: Any, deadline: float, cap: int) -> bytes | bytearray:
    encoding = resp.headers.get("Content-Encoding", "") or ""
    decoder = _decoder(encoding)
    if getattr(resp, "_content_consumed", False):  # a helper (MLflow's) read it already
        content = resp.content or b""
        if len(content) > cap:
            raise AnswerTooLarge(len(content), len(content), encoding)
        return content
    declared = resp.headers.get("Content-Length", "")
    if decoder is None and declared.isdigit() and int(declared) > cap:
        raise AnswerTooLarge(int(declared), 0, encoding)
    raw = resp.raw
    read = getattr(raw, "read1", None) or raw.read  # read1: whatever has come, not a full chunk
    body = bytearray()
    wire = 0
    while True:
        if time.monotonic() >= deadline:
            raise AnswerLate(wire)
        _limit_wait(raw, deadline)
        try:
            chunk = read(CHUNK, decode_content=False)
        except Exception as exc:
            if time.monotonic() >= deadline - 0.05 or "timed out" in str(exc).lower():
                raise AnswerLate(wire) from exc
            raise AnswerCut(str(exc)) from exc
        if not chunk:
            break
        wire += len(chunk)
        pieces = decoder.feed(chunk) if decoder is not None else (chunk,)
        try:
            for piece in pieces:
                body += piece
                if len(body) > cap:
                    raise AnswerTooLarge(len(body), wire, encoding)
        except zlib.error as exc:
            raise AnswerCut(f"the {encoding} body is corrupt: {exc}") from exc
    if decoder is not None:
        with contextlib.suppress(zlib.error):
            body += decoder.flush()
        if len(body) > cap:
            raise AnswerTooLarge(len(body), wire, encoding)
    return body  # json.loads reads a bytearray without a copy


def parse_body(body: bytes | bytearray, charset: str | None) -> Any:
    """JSON when it parses, else the text (an HTML page, a proxy's message)."""
    if not body:
        return ""
    try:
        return json.loads(body)
    except ValueError:  # includes UnicodeDecodeError
        return bytes(body).decode(charset or "utf-8", "replace")
