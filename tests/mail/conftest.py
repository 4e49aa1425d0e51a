"""Helpers for the protocol tests; the servers come from tests/servers/fixtures.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from postroom.mail.types import Endpoint, Protocol, Security, TLSPolicy
from tests.servers import CertSet

# Short enough to keep the suite fast, long enough for a loaded CI machine's TLS handshake.
TIMEOUT = 2.0
# For tests that wait for a timeout on purpose (silent sockets, TLS ports spoken to in clear).
SHORT_TIMEOUT = 1.0

EndpointFactory = Callable[..., Endpoint]


@pytest.fixture
def endpoint(certs: CertSet) -> EndpointFactory:
    """``endpoint(protocol, port, security, host="127.0.0.1", **fields)``, trusting the test CA."""

    def make(
        protocol: Protocol,
        port: int,
        security: Security,
        host: str = "127.0.0.1",
        **fields: Any,
    ) -> Endpoint:
        fields.setdefault("tls", TLSPolicy(ca_pem=certs.ca_pem))
        fields.setdefault("timeout", TIMEOUT)
        return Endpoint(protocol, host, port, security, **fields)

    return make
