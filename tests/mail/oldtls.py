"""A server that only speaks TLS 1.0/1.1, as long-unmaintained mail servers still do.

Our clients require TLS 1.2, so the handshake fails with a protocol-version alert: the
"encryption could not be set up" case that is neither a port mismatch nor a certificate
problem. The shared fixtures have no such server, hence this local helper.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import warnings
from types import TracebackType

from tests.servers import CertSet


class OldTLSServer:
    def __init__(self, certs: CertSet) -> None:
        cert = certs.cert("valid")
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with warnings.catch_warnings():
            # Deliberately obsolete: that is the point of this server.
            warnings.simplefilter("ignore", DeprecationWarning)
            self.context.minimum_version = ssl.TLSVersion.TLSv1
            self.context.maximum_version = ssl.TLSVersion.TLSv1_1
        self.context.set_ciphers("DEFAULT:@SECLEVEL=0")
        self.context.load_cert_chain(str(cert.cert_file), str(cert.key_file))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # listener closed by stop()
            # Give up quickly on clients that never send a ClientHello (plaintext probes).
            conn.settimeout(0.5)
            with contextlib.suppress(OSError), self.context.wrap_socket(conn, server_side=True):
                pass
            conn.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> OldTLSServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
