"""A deadline for the part of an answer that `requests` reads itself: the status line and the
headers. Its read timeout restarts with every byte, so a server (or a proxy) sending one header
byte a second would hold a call for ever; store/reader.py bounds the body. At the deadline the
watchdog shuts the socket of the request in flight, which ends the blocked read at once. The clock
starts when the request has been sent (a slow upload is not an answer that never ends).

The socket is found through urllib3's connection classes (their `getresponse` registers it with
the watchdog of the calling thread), installed by `install` on a `requests.Session`'s pools and on
the pools of the HTTP(S) proxies it goes through (HTTPS_PROXY); SOCKS proxies keep their own
connection classes and the per-read timeout only.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
from typing import Any

_local = threading.local()  # the HeaderDeadline of the request this thread is making, if any


class HeaderDeadline:
    """`with HeaderDeadline(seconds) as watch:` around `session.request(..., stream=True)`: the
    status line and headers must have come `seconds` after the request was sent; `watch.fired` is
    true when they had not and the socket was shut."""

    def __init__(self, seconds: float):
        self.seconds = max(0.0, seconds)
        self.fired = False
        self._sock: Any = None
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def __enter__(self) -> HeaderDeadline:
        _local.watch = self
        return self

    def __exit__(self, *exc_info) -> None:
        _local.watch = None
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            self._sock = None

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            _shut(self._sock)

    def watch(self, sock: Any) -> None:
        """Called by the connection about to read the answer (again after a redirect, on the same
        clock): the first call starts the clock; shuts the socket at once if already late."""
        with self._lock:
            self._sock = sock
            if self.fired:
                _shut(sock)
            elif self._timer is None:
                self._timer = threading.Timer(self.seconds, self._fire)
                self._timer.daemon = True
                self._timer.start()


def _shut(sock: Any) -> None:
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def install(session: Any) -> None:
    """Give the session's http and https pools, and its proxies' pools, connections that report to
    the watchdog."""
    classes = _pool_classes()
    for prefix in ("http://", "https://"):
        adapter = session.get_adapter(prefix)
        manager = getattr(adapter, "poolmanager", None)
        if manager is None or not hasattr(manager, "pool_classes_by_scheme"):
            continue
        manager.pool_classes_by_scheme = classes
        if not getattr(adapter, "_watched_proxies", False):
            adapter.proxy_manager_for = _watched_proxies(adapter.proxy_manager_for, classes)
            adapter._watched_proxies = True


def _watched_proxies(make: Any, classes: dict[str, type]) -> Any:
    """requests' `HTTPAdapter.proxy_manager_for`, whose proxy managers get the watched pools."""

    def proxy_manager_for(proxy: str, **kwargs: Any) -> Any:
        manager = make(proxy, **kwargs)
        if not proxy.lower().startswith("socks") and hasattr(manager, "pool_classes_by_scheme"):
            manager.pool_classes_by_scheme = classes
        return manager

    return proxy_manager_for


@functools.cache
def _pool_classes() -> dict[str, type]:
    from urllib3 import connection, connectionpool

    class Watched:
        def getresponse(self, *args, **kwargs):
            watch = getattr(_local, "watch", None)
            if watch is not None:
                watch.watch(getattr(self, "sock", None))
            return super().getresponse(*args, **kwargs)

    class HTTPConnection(Watched, connection.HTTPConnection):
        pass

    class HTTPSConnection(Watched, connection.HTTPSConnection):
        pass

    class HTTPConnectionPool(connectionpool.HTTPConnectionPool):
        ConnectionCls = HTTPConnection

    class HTTPSConnectionPool(connectionpool.HTTPSConnectionPool):
        ConnectionCls = HTTPSConnection

    return {"http": HTTPConnectionPool, "https": HTTPSConnectionPool}
