"""Plain-socket helpers: free ports, a server that never speaks, a port that refuses.

These give the "cannot connect" family of diagnostics something real to fail against:

* :class:`SilentServer` accepts TCP connections and never sends a byte, so a client waiting
  for a greeting (or a TLS handshake) runs into its own timeout.
* :class:`ClosedPort` holds a port bound but *not listening*: the kernel answers every SYN
  with RST, so connecting fails at once with ``ECONNREFUSED``. Holding the bound socket
  (instead of closing it) keeps anybody else from taking the port while a test uses it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterable
from types import TracebackType

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that is free on ``host`` right now."""
    return free_ports(1, hosts=(host,))[0]


def free_ports(count: int, hosts: Iterable[str] = (LOOPBACK,)) -> list[int]:
    """Return ``count`` distinct TCP ports that are free on every address in ``hosts``.

    All probe sockets stay bound until every port has been found, so the same port is never
    returned twice. There is still a window between this call and the caller's own bind in
    which another process may take a port; callers that start a server retry on
    "address in use" (see :class:`tests.servers.dovecot.Dovecot`).
    """
    host_list = list(hosts)
    ports: list[int] = []
    held: list[socket.socket] = []
    try:
        while len(ports) < count:
            first = _bind(host_list[0], 0)
            held.append(first)
            port = first.getsockname()[1]
            # The same number must also be free on the other addresses (Dovecot listens on
            # 127.0.0.1 and 127.0.0.2 with one port per service). A number that is taken
            # elsewhere stays held, so the next probe gets a different one.
            try:
                for other in host_list[1:]:
                    held.append(_bind(other, port))
            except OSError:
                continue
            ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class SilentServer:
    """Accepts TCP connections on loopback and never says anything.

    Connections are accepted by a thread (not left in the listen backlog), so any number of
    clients get a completed TCP handshake and then wait for a greeting that never comes.
    They are held open until :meth:`stop`.
    """

    def __init__(self, host: str = LOOPBACK) -> None:
        self.host = host
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind((host, 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self._accepted: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._accept_loop, name=f"silent-server-{self.port}", daemon=True
        )
        self._thread.start()

    @property
    def connections_accepted(self) -> int:
        with self._lock:
            return len(self._accepted)

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                # The listener was closed by stop().
                return
            with self._lock:
                self._accepted.append(conn)

    def stop(self) -> None:
        self._stopping.set()
        # shutdown() wakes the thread blocked in accept(); close() alone does not on Linux.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=5)
        with self._lock:
            for conn in self._accepted:
                conn.close()
            self._accepted.clear()

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ClosedPort:
    """A loopback port where nothing listens: connecting is refused at once.

    The port is kept bound (without ``listen()``) for the lifetime of this object, which makes
    Linux reply RST to connection attempts while reserving the number for us.
    """

    def __init__(self, host: str = LOOPBACK) -> None:
        self.host = host
        self._sock = _bind(host, 0)
        self.port: int = self._sock.getsockname()[1]

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> ClosedPort:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
