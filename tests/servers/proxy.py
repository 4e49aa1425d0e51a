"""A TCP proxy on loopback that breaks connections on purpose.

For "the network failed in the middle of a FETCH" tests: clients connect to
:attr:`TcpProxy.port`, every connection is relayed byte for byte to the
upstream server (TLS passes through untouched, so certificates still name the
real server: connect to ``localhost`` for Dovecot's), and the test decides
when it breaks:

* :meth:`TcpProxy.cut` closes every open connection now (FIN, or RST with
  ``reset=True``); the client sees end of stream or "connection reset".
* :meth:`TcpProxy.cut_after` lets N more bytes through from the server (over
  all connections) and then cuts, e.g. N bytes into a message literal.
* :meth:`TcpProxy.stall` stops forwarding without closing anything, as a dead
  NAT or a pulled cable does: only the client's own timeout can notice.

``latency`` delays every chunk by that many seconds in each direction, so a
benchmark can see what round trips cost over a real network without touching
the machine's loopback (which other tests share).

It runs in threads of the test process (two per connection). Run as
``python -m tests.servers.proxy UPSTREAM_HOST UPSTREAM_PORT [LATENCY]`` it is a
process of its own: it prints its port, cuts on SIGUSR1 and exits on SIGTERM.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType

from .sockets import LOOPBACK

_CHUNK = 65536


class _Pair:
    """One client connection and its upstream connection."""

    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client = client
        self.server = server
        self.closed = False
        self.lock = threading.Lock()

    def close(self, *, reset: bool = False) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        if reset:
            # Linger 0: close() sends RST instead of FIN.
            with contextlib.suppress(OSError):
                self.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        for sock in (self.client, self.server):
            # shutdown() wakes the pump thread blocked in recv() on this socket.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class TcpProxy:
    """Relay ``host:port`` (a free port, see :attr:`port`) to ``upstream``.

    Args:
        upstream_host, upstream_port: the real server.
        cut_after_server_bytes: arm :meth:`cut_after` from the start.
        latency: one-way delay in seconds added to every chunk (bandwidth stays unlimited).
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        host: str = LOOPBACK,
        cut_after_server_bytes: int | None = None,
        latency: float = 0.0,
    ) -> None:
        self.latency = latency
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: list[_Pair] = []
        self._threads: list[threading.Thread] = []
        self._budget = cut_after_server_bytes
        self._flowing = threading.Event()
        self._flowing.set()
        self._stopping = threading.Event()
        self.cut_done = threading.Event()
        self.connections = 0  # accepted so far
        self.server_bytes = 0  # forwarded from the server to clients so far

    # ------------------------------------------------------------ control

    def start(self) -> TcpProxy:
        self._spawn(self._accept_loop, "proxy-accept")
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._flowing.set()
        self.cut()
        self._listener.close()
        for thread in list(self._threads):
            thread.join(timeout=5)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def cut(self, *, reset: bool = False) -> None:
        """Close every open connection (both sides) now. New ones still work."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            pair.close(reset=reset)
        self.cut_done.set()

    def cut_after(self, server_bytes: int) -> None:
        """Forward ``server_bytes`` more bytes from the server, then :meth:`cut`."""
        with self._lock:
            self._budget = server_bytes
            self.cut_done.clear()

    def stall(self) -> None:
        """Stop forwarding in both directions; connections stay open."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    # ------------------------------------------------------------ relaying

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = _Pair(client, server)
            with self._lock:
                self._pairs.append(pair)
                self.connections += 1
            self._spawn(self._pump, "proxy-up", pair, client, server, False)
            self._spawn(self._pump, "proxy-down", pair, server, client, True)

    def _pump(
        self, pair: _Pair, source: socket.socket, target: socket.socket, from_server: bool
    ) -> None:
        delayed: queue.Queue[tuple[float, bytes, bool] | None] | None = None
        if self.latency:
            delayed = queue.Queue()
            self._spawn(self._send_later, "proxy-delay", pair, target, delayed)
        try:
            while True:
                data = source.recv(_CHUNK)
                if not data:
                    if delayed is not None:
                        delayed.put(None)
                        return
                    with contextlib.suppress(OSError):
                        target.shutdown(socket.SHUT_WR)
                    return
                while not self._flowing.wait(0.05):
                    if pair.closed:
                        return
                cut_now = False
                if from_server:
                    with self._lock:
                        if self._budget is not None:
                            if len(data) >= self._budget:
                                data, cut_now = data[: self._budget], True
                                self._budget = None
                            else:
                                self._budget -= len(data)
                        self.server_bytes += len(data)
                if delayed is not None:
                    delayed.put((time.monotonic() + self.latency, data, cut_now))
                    if cut_now:
                        return
                    continue
                if data:
                    target.sendall(data)
                if cut_now:
                    self.cut()
                    return
        except OSError:
            pair.close()
            if delayed is not None:
                delayed.put(None)

    def _send_later(
        self,
        pair: _Pair,
        target: socket.socket,
        delayed: queue.Queue[tuple[float, bytes, bool] | None],
    ) -> None:
        try:
            while (item := delayed.get()) is not None:
                due, data, cut_now = item
                time.sleep(max(0.0, due - time.monotonic()))
                if data:
                    target.sendall(data)
                if cut_now:
                    self.cut()
                    return
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_WR)
        except OSError:
            pair.close()


def main() -> None:
    """``python -m tests.servers.proxy HOST PORT [LATENCY_S]``: print the port; SIGUSR1 cuts."""
    latency = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    proxy = TcpProxy(sys.argv[1], int(sys.argv[2]), latency=latency).start()
    signal.signal(signal.SIGUSR1, lambda *_: proxy.cut())
    signal.signal(signal.SIGTERM, lambda *_: proxy._stopping.set())
    print(proxy.port, flush=True)
    while not proxy._stopping.wait(0.5):
        pass
    proxy.stop()


if __name__ == "__main__":
    main()
