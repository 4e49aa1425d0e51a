"""A real HTTP receiver on a loopback port, and helpers to make subscriptions and events.

The receiver records every request (headers and raw body) and answers what
``answer`` says (200 unless told). ``stop()`` closes its port (connections are
then refused) and ``start()`` opens the same port again: a receiver that is
down and comes back.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.contrib.auth.models import User

from postroom.accounts.models import EmailAccount
from postroom.webhooks.actions import do_create_subscription
from postroom.webhooks.models import WebhookSubscription


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[Received] = []
        self.answer: Callable[[Received], int] = lambda _request: 200
        self.port = 0
        self.tls = tls
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Received(self.path, dict(self.headers.items()), self.rfile.read(length))
                with receiver._lock:
                    receiver.requests.append(request)
                status = receiver.answer(request)
                body = b"thanks" if status < 300 else b"not now"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.json for r in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def superuser(db: None) -> User:
    return User.objects.create_superuser("root")


def subscribe(
    receiver: Receiver,
    actor: User,
    *,
    events: list[str] | None = None,
    account: EmailAccount | None = None,
    name: str = "hook",
) -> tuple[WebhookSubscription, str]:
    return do_create_subscription(
        actor=actor,
        name=name,
        url=receiver.url,
        event_types=events or ["record.created", "record.updated"],
        account=account,
    )
