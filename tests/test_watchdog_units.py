"""store/watchdog.py on its own: the clock starts when the request has been sent (the first
`watch`), a late answer's socket is shut so a blocked read returns at once, and leaving the
block in time disarms it."""

from __future__ import annotations

import socket
import threading
import time

from mlflow_skill.store.watchdog import HeaderDeadline


def test_the_clock_starts_when_the_request_has_been_sent():
    with HeaderDeadline(0.2) as watch:
        time.sleep(0.4)  # a slow upload: not yet counted
        assert not watch.fired
        ours, theirs = socket.socketpair()
        watch.watch(ours)
        time.sleep(0.1)
        assert not watch.fired
    ours.close()
    theirs.close()


def test_a_blocked_read_returns_at_the_deadline():
    ours, theirs = socket.socketpair()
    ours.settimeout(10)  # what requests' per-read timeout would allow
    got: list[bytes] = []
    with HeaderDeadline(0.3) as watch:
        watch.watch(ours)
        start = time.monotonic()
        reader = threading.Thread(target=lambda: got.append(ours.recv(100)))
        reader.start()
        reader.join(5)
        elapsed = time.monotonic() - start
    assert watch.fired and got == [b""], got  # shut: the read ends with nothing, not after 10 s
    assert 0.25 < elapsed < 2, elapsed
    ours.close()
    theirs.close()


def test_a_second_watch_after_the_deadline_shuts_at_once():
    with HeaderDeadline(0.1) as watch:
        first, other = socket.socketpair()
        watch.watch(first)
        time.sleep(0.3)
        assert watch.fired
        second, peer = socket.socketpair()
        second.settimeout(5)
        watch.watch(second)  # a redirect's request, on the same clock
        assert second.recv(10) == b""
    for sock in (first, other, second, peer):
        sock.close()


def test_leaving_in_time_disarms_it():
    ours, theirs = socket.socketpair()
    with HeaderDeadline(0.2) as watch:
        watch.watch(ours)
    time.sleep(0.4)
    assert not watch.fired
    theirs.sendall(b"ok")
    assert ours.recv(10) == b"ok"  # the socket was left open for the body
    ours.close()
    theirs.close()
