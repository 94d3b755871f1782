"""Whole-request deadlines: one watchdog thread keeps a heap of deadlines and shuts a request's socket down
when its deadline passes, whatever the server drips (headers, 100 Continue, a stream, a body).
"""

from __future__ import annotations

import contextlib
import heapq
import http.client
import itertools
import socket
import threading
import time


class _Watchdog:
    """One daemon thread that shuts down the sockets of requests past their deadline (a heap of deadlines, so
    a thousand requests in flight cost one thread, not a timer each)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, http.client.HTTPConnection]] = []
        self._live: set[int] = set()
        self._expired: set[int] = set()
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, conn: http.client.HTTPConnection, deadline: float) -> int:
        with self._cond:
            key = next(self._ids)
            heapq.heappush(self._heap, (deadline, key, conn))
            self._live.add(key)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="fleetwise-deadline", daemon=True)
                self._thread.start()
            self._cond.notify()
            return key

    def release(self, key: int) -> bool:
        """Stop watching; True if the deadline had already struck this request."""
        with self._cond:
            self._live.discard(key)
            if len(self._heap) > 64 and len(self._heap) > 4 * len(self._live):  # drop released connections
                self._heap = [e for e in self._heap if e[1] in self._live]
                heapq.heapify(self._heap)
            if key in self._expired:
                self._expired.discard(key)
                return True
            return False

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][1] not in self._live:
                    heapq.heappop(self._heap)  # released before its deadline
                if not self._heap:
                    self._cond.wait(30.0)
                    if not self._heap:
                        self._thread = None
                        return
                    continue
                deadline, key, conn = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                self._live.discard(key)
                self._expired.add(key)
                _shut(conn)


def _shut(conn: http.client.HTTPConnection) -> None:
    """Wake a thread blocked in a read on this connection: the read returns end-of-file or an error."""
    sock = conn.sock
    if sock is None:
        return
    with contextlib.suppress(OSError):  # already closed by its owner
        sock.shutdown(socket.SHUT_RDWR)


_WATCHDOG = _Watchdog()


class _Deadline:
    """A whole-request deadline on one connection: `with _Deadline(conn, seconds) as d:`; `d.struck` after."""

    def __init__(self, conn: http.client.HTTPConnection, seconds: float) -> None:
        self.conn = conn
        self.seconds = seconds
        self.struck = False
        self._key = -1

    def __enter__(self) -> _Deadline:
        deadline = time.monotonic() + self.seconds
        self.conn.connect()  # bounded by the connection's own timeout, which is at most `seconds`
        self._key = _WATCHDOG.watch(self.conn, deadline)
        return self

    def __exit__(self, *exc: object) -> None:
        self.struck = _WATCHDOG.release(self._key)
