"""Sockets shared by the protocol helpers, and the OS-error translation.

The stdlib clients (imaplib, poplib, smtplib) each open their own socket
with ``socket.create_connection``; our subclasses route that through
:func:`open_socket` so every connection gets the same treatment: timeout on
connect and on every read, TCP_NODELAY, optional source address.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from postroom.mail.errors import (
    ConnectError,
    ConnectionLost,
    ConnectionRefused,
    ConnectTimeout,
    DNSFailure,
    MailError,
    Phase,
)
from postroom.mail.tls import translate_ssl_error
from postroom.mail.types import Endpoint


def open_socket(endpoint: Endpoint) -> socket.socket:
    """TCP connection to the endpoint, bounded by its timeout at every step.

    Like ``socket.create_connection`` (each address in turn, ``timeout`` per
    attempt, the socket keeps the timeout for every later read, write and TLS
    handshake), except that the name lookup is bounded too and, with a
    source address, only addresses of its family are tried.
    """
    family = socket.AF_UNSPEC
    if endpoint.source_address:
        family = socket.AF_INET6 if ":" in endpoint.source_address else socket.AF_INET
    last_error: OSError | None = None
    for af, kind, proto, _name, address in resolve(
        endpoint.host, endpoint.port, family, endpoint.timeout
    ):
        sock = socket.socket(af, kind, proto)
        try:
            sock.settimeout(endpoint.timeout)
            if endpoint.source_address:
                sock.bind((endpoint.source_address, 0))
            sock.connect(address)
            # Small commands meet delayed ACKs: ~45 ms per round trip without it.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        return sock
    assert last_error is not None  # resolve() never returns an empty list
    raise last_error


def resolve(
    host: str, port: int, family: socket.AddressFamily, timeout: float
) -> list[tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]]:
    """getaddrinfo with a deadline.

    getaddrinfo() has no timeout of its own and a broken resolver can block
    it for tens of seconds; it runs in a daemon thread that is abandoned (and
    finishes on its own) if it overruns.
    """
    outcome: list[Any] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            outcome.append(socket.getaddrinfo(host, port, family, socket.SOCK_STREAM))
        except UnicodeError:
            # The IDNA codec refuses the name (empty label, too long, ...).
            outcome.append(socket.gaierror(socket.EAI_NONAME, f"invalid host name {host!r}"))
        except Exception as exc:  # handed to the caller, raised there
            outcome.append(exc)
        finally:
            done.set()

    threading.Thread(target=lookup, name=f"resolve-{host}", daemon=True).start()
    if not done.wait(timeout):
        raise socket.gaierror(socket.EAI_AGAIN, f"lookup of {host} took longer than {timeout:g} s")
    result = outcome[0]
    if isinstance(result, Exception):
        raise result
    if not result:
        raise socket.gaierror(socket.EAI_NONAME, f"no address for {host}")
    addresses: list[tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]]
    addresses = result
    return addresses


def wrap_tls(sock: socket.socket, context: ssl.SSLContext, host: str) -> ssl.SSLSocket:
    try:
        return context.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise


def translate_os_error(exc: OSError, endpoint: Endpoint, phase: Phase) -> MailError:
    """Map a socket or TLS exception to the mail error tree."""
    where = f"{endpoint.host}:{endpoint.port}"
    if isinstance(exc, socket.gaierror):
        return DNSFailure(
            f"cannot resolve {endpoint.host}: {exc.strerror}",
            temporary=exc.errno == socket.EAI_AGAIN,
        )
    if isinstance(exc, ssl.SSLError):
        return translate_ssl_error(exc, endpoint.security)
    if isinstance(exc, TimeoutError):
        return ConnectTimeout(
            f"no answer from {where} within {endpoint.timeout:g} s ({phase})", phase=phase
        )
    if isinstance(exc, ConnectionRefusedError):
        return ConnectionRefused(f"connection to {where} refused")
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return ConnectionLost(f"{where} closed the connection ({phase})", phase=phase)
    return ConnectError(f"cannot connect to {where}: {exc.strerror or exc}")


@contextmanager
def translated(endpoint: Endpoint, phase: Phase) -> Iterator[None]:
    """Re-raise socket/TLS errors from the block as mail errors."""
    try:
        yield
    except MailError:
        raise
    except OSError as exc:
        raise translate_os_error(exc, endpoint, phase) from exc


def ehlo_name(sock: socket.socket) -> str:
    """An address literal for EHLO/HELO.

    socket.getfqdn() (smtplib's default) does a reverse lookup that can hang
    for seconds on machines with broken DNS; RFC 5321 allows a literal.
    """
    address = sock.getsockname()[0]
    if sock.family == socket.AF_INET6:
        return f"[IPv6:{address}]"
    return f"[{address}]"
