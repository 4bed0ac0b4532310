"""A loopback HTTP proxy in front of a real tracking server that injects faults on demand.

Modes (set `proxy.mode` between or during commands):
- "pass": forward everything;
- "status": answer `proxy.status` (e.g. 503) to the next `proxy.fault_count` requests, then forward;
- "slow": sleep `proxy.delay` seconds before forwarding;
- "path_status": answer `proxy.status` to the next `proxy.fault_count` requests whose path
  contains `proxy.fault_path` (after letting `proxy.fault_skip` of them through), forward the rest;
- "path_slow": sleep `proxy.delay` seconds before forwarding requests whose path contains
  `proxy.fault_path` (a slow runs/create), forward the rest at once;
- "after_upstream": forward the next request whose path contains `proxy.fault_path` to the server,
  then answer `proxy.status` instead of its answer (`proxy.status` 0: cut the connection): the
  server applied it, the client never learns (a gateway's 502/504 after the work was done);
- "refuse_after": forward `proxy.fault_count` requests, then cut every connection without answer
  (a server that dies in the middle of a command);
- "echo": answer `proxy.status` to every request with a body that echoes the request line and its
  Authorization header (a misconfigured gateway's error page); `proxy.echo_format` is "json"
  (MLflow's error shape) or "text".
`proxy.requests` records (method, path, answered status) for every request seen.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from tls import Certificate, loopback_uri


class FaultProxy:
    def __init__(self, upstream: str, tls: Certificate | None = None):
        self.upstream = upstream.rstrip("/")
        self.mode = "pass"
        self.status = 503
        self.fault_count = 0
        self.delay = 0.0
        self.fault_path = ""
        self.fault_skip = 0
        self.echo_format = "json"
        self.requests: list[tuple[str, str, int]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                action = proxy._next_action(self.path)
                if action == "refuse":
                    proxy._record(self.command, self.path, 0)
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if action == "status":
                    payload = b'{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "injected fault"}'
                    proxy._record(self.command, self.path, proxy.status)  # before the client can see it
                    self.send_response(proxy.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if action == "echo":
                    echoed = f"{self.command} {self.path} Authorization: {self.headers.get('Authorization', '')}"
                    if proxy.echo_format == "json":
                        payload = json.dumps(
                            {"error_code": "INTERNAL_ERROR", "message": f"bad gateway: {echoed}"}
                        ).encode()
                    else:
                        payload = f"upstream failed for {echoed}\n".encode()
                    proxy._record(self.command, self.path, proxy.status)
                    self.send_response(proxy.status)
                    self.send_header(
                        "Content-Type", "application/json" if proxy.echo_format == "json" else "text/plain"
                    )
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if action == "slow":
                    time.sleep(proxy.delay)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                try:
                    resp = requests.request(
                        self.command, proxy.upstream + self.path, data=body, headers=headers, timeout=60
                    )
                except requests.RequestException:
                    self.close_connection = True
                    return
                content = resp.content
                if action == "after_upstream":  # the server did the work; the client gets a fault
                    proxy._record(self.command, self.path, proxy.status)
                    if not proxy.status:
                        self.close_connection = True
                        with contextlib.suppress(OSError):
                            self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    payload = b"<html><body>502 Bad Gateway</body></html>"
                    self.send_response(proxy.status)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                proxy._record(self.command, self.path, resp.status_code)  # before the client can see it
                try:
                    self.send_response(resp.status_code)
                    for key, value in resp.headers.items():
                        if key.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                            self.send_header(key, value)
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)
                except (BrokenPipeError, ConnectionResetError):
                    return

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.uri = loopback_uri(self._server, tls)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _next_action(self, path: str = "") -> str:
        with self._lock:
            if self.mode == "status" and self.fault_count > 0:
                self.fault_count -= 1
                return "status"
            if self.mode == "path_status" and self.fault_count > 0 and self.fault_path in path:
                if self.fault_skip > 0:
                    self.fault_skip -= 1
                    return "pass"
                self.fault_count -= 1
                return "status"
            if self.mode == "path_slow" and self.fault_path in path:
                return "slow"
            if self.mode == "after_upstream" and self.fault_count > 0 and self.fault_path in path:
                self.fault_count -= 1
                return "after_upstream"
            if self.mode in ("slow", "echo"):
                return self.mode
            if self.mode == "refuse_after":
                if self.fault_count > 0:
                    self.fault_count -= 1
                    return "pass"
                return "refuse"
            return "pass"

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.requests.append((method, path, status))

    def reset(self, mode: str = "pass", **settings) -> None:
        with self._lock:
            self.mode = mode
            self.requests.clear()
            self.fault_skip = 0
            for key, value in settings.items():
                setattr(self, key, value)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
