"""Hostile tracking servers on 127.0.0.1 for tests/test_hostile*.py: answers no real MLflow
server gives (endless paging, a gzip bomb, a trickle, JSON of the wrong shape), written by the
test itself. Not a test module.

`Hostile(routes)` serves each path (query string dropped) with its route: a dict or list (sent
as JSON, 200), a `(status, headers, body_bytes)` tuple, or a callable `(request) -> None` that
writes the answer itself through `request.wfile` (for trickles and bombs). Unknown paths get
MLflow's own 404 shape. `requests_seen` records (method, path, query) in order.
"""

from __future__ import annotations

import contextlib
import json
import struct
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tls import Certificate, loopback_uri

API = "/api/2.0/mlflow"
NOW_MS = 1_760_000_000_000

EXPERIMENT = {"experiment_id": "1", "name": "hostile", "lifecycle_stage": "active", "artifact_location": "/tmp/a"}


def run_record(run_id: str = "a" * 32, name: str = "r", status: str = "FINISHED", sharpe: float = 1.0) -> dict:
    return {
        "info": {
            "run_id": run_id,
            "run_uuid": run_id,
            "experiment_id": "1",
            "run_name": name,
            "status": status,
            "start_time": NOW_MS - 60_000,
            "end_time": NOW_MS,
            "lifecycle_stage": "active",
            "artifact_uri": "/tmp/a/" + run_id,
            "user_id": "u",
        },
        "data": {
            "metrics": [{"key": "sharpe", "value": sharpe, "step": 0, "timestamp": NOW_MS}],
            "params": [{"key": "lookback", "value": "20"}],
            "tags": [{"key": "mlflow.runName", "value": name}],
        },
    }


def mlflow_basics(experiment: dict | None = None) -> dict[str, Any]:
    """Routes that let a command find its experiment; a test adds the hostile one."""
    experiment = experiment or EXPERIMENT
    return {
        f"{API}/experiments/get-by-name": {"experiment": experiment},
        f"{API}/experiments/get": {"experiment": experiment},
        f"{API}/experiments/search": {"experiments": [experiment]},
    }


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a client that hung up: expected here
        pass


class Hostile:
    def __init__(self, routes: dict[str, Any], tls: Certificate | None = None):
        self.routes = routes
        self.requests_seen: list[tuple[str, str, dict]] = []
        hostile = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                if raw:
                    try:
                        query.update(json.loads(raw))
                    except ValueError:
                        pass
                hostile.requests_seen.append((self.command, parts.path, query))
                self.query = query
                route = hostile.routes.get(parts.path)
                if route is None:
                    send(self, 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"no {parts.path} here"})
                elif callable(route):
                    try:
                        route(self)
                    except (BrokenPipeError, ConnectionResetError):
                        self.close_connection = True
                elif isinstance(route, tuple):
                    status, headers, body = route
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    send(self, 200, route)

            do_GET = do_POST = do_PUT = _answer

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.uri = loopback_uri(self._server, tls)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def paths(self) -> list[str]:
        return [path for _, path, _ in self.requests_seen]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def send(handler: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def trickle(total: int = 100_000, every: float = 1.0) -> Callable:
    """Headers promising `total` bytes, then one byte every `every` seconds."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(total))
        handler.end_headers()
        handler.wfile.flush()
        for _ in range(total):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(every)

    return route


def trickle_headers(every: float = 0.5, most: int = 10_000) -> Callable:
    """A status line, then headers that never end: one byte every `every` seconds (a stalled proxy;
    `requests`' read timeout restarts with each byte). Stops when the client hangs up."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
        handler.wfile.flush()
        pad = b"".join(b"X-Pad-%d: y\r\n" % i for i in range(most // 12))
        with contextlib.suppress(OSError):
            for byte in pad[:most]:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                time.sleep(every)
        handler.close_connection = True

    return route


_BOMBS: dict[int, bytes] = {}


def gzip_bomb(inflated_mib: int = 1024) -> bytes:
    """A valid gzip member of `inflated_mib` MiB of spaces in about 1 KiB per MiB: one deflate
    block of 1 MiB, flushed so it stands alone, repeated (built in about a second)."""
    if inflated_mib not in _BOMBS:
        chunk = b" " * (1 << 20)
        packer = zlib.compressobj(9, zlib.DEFLATED, -15)
        block = packer.compress(chunk) + packer.flush(zlib.Z_FULL_FLUSH)
        tail = packer.flush(zlib.Z_FINISH)
        crc = 0
        for _ in range(inflated_mib):
            crc = zlib.crc32(chunk, crc)
        header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
        trailer = struct.pack("<II", crc, (inflated_mib << 20) & 0xFFFFFFFF)
        _BOMBS[inflated_mib] = header + block * inflated_mib + tail + trailer
    return _BOMBS[inflated_mib]


def bomb_route(inflated_mib: int = 1024) -> tuple[int, dict, bytes]:
    return 200, {"Content-Type": "application/json", "Content-Encoding": "gzip"}, gzip_bomb(inflated_mib)


def endless_runs(run: dict | None = None, token: str | Callable[[int], str] = "again") -> Callable:
    """runs/search that always offers another page: the same run and token on every page (or a
    token made from the page number)."""
    pages = [0]

    def route(handler) -> None:
        pages[0] += 1
        next_token = token(pages[0]) if callable(token) else token
        send(handler, 200, {"runs": [run or run_record()], "next_page_token": next_token})

    return route
