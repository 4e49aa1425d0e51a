"""SmtpSender on one reused connection vs a bare smtplib loop (not a test; prints figures).

    PYTHONPATH=. .venv/bin/python tests/sending/bench_sender.py [-n 2000] [--rounds 3]
        [--server aiosmtpd|aiosmtpd-pipelining|smtp-sink|smtp-sink-nopipelining] [--rcpts 1]

N messages of 10 KB each, sent one transaction per message over a single connection opened
before the clock starts. Servers:

* ``aiosmtpd``: the test fixture (tests/servers/smtp.py, plain mode) in its own process, so it
  does not share the GIL with the client; it offers no PIPELINING.
* ``aiosmtpd-pipelining``: the same, advertising PIPELINING and with TCP_NODELAY on its
  sockets (see tests/sending/conftest.py for why).
* ``smtp-sink`` / ``smtp-sink-nopipelining``: Postfix's sink (Debian package postfix), with
  and without PIPELINING. Runs as ``nobody`` when started as root.

The server's CPU time is printed too: when it is near the wall time, the server is the
bottleneck and the client figures say little.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import shutil
import smtplib
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

SENDER = "alice@example.test"
LINE = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n"


def make_messages(count: int) -> list[bytes]:
    out = []
    for i in range(count):
        head = (
            f"From: {SENDER}\r\nTo: bob@remote.test\r\nSubject: bench {i}\r\n"
            f"Message-ID: <bench-{i}@example.test>\r\n\r\n"
        ).encode()
        out.append(head + LINE * ((10240 - len(head)) // len(LINE)))
    return out


def serve_aiosmtpd(conn: Connection, pipelining: bool) -> None:
    import tests.servers.smtp as smtp_fixture

    if pipelining:
        original = smtp_fixture._Handler.handle_EHLO
        connection_made = smtp_fixture._SMTP.connection_made

        async def handle_EHLO(
            self: Any, server: Any, session: Any, envelope: Any, hostname: str, responses: Any
        ) -> list[str]:
            out: list[str] = await original(self, server, session, envelope, hostname, responses)
            return [*out[:-1], "250-PIPELINING", out[-1]]

        def nodelay(self: Any, transport: Any) -> None:
            transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection_made(self, transport)

        smtp_fixture._Handler.handle_EHLO = handle_EHLO  # type: ignore[method-assign]
        smtp_fixture._SMTP.connection_made = nodelay  # type: ignore[method-assign]
    # Count nothing, keep nothing: a benchmark must not grow the server's memory.
    smtp_fixture.SmtpServer._record = lambda self, message: None  # type: ignore[method-assign]
    server = smtp_fixture.SmtpServer(None, mode="plain").start()
    conn.send(server.port)
    conn.recv()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    conn.send(usage.ru_utime + usage.ru_stime)
    server.stop()


class Server:
    """A server in another process; ``cpu()`` is the CPU time it has used so far."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.proc: subprocess.Popen[bytes] | None = None
        self.child: Any = None
        if kind.startswith("aiosmtpd"):
            self.conn, child_conn = mp.Pipe()
            self.child = mp.Process(
                target=serve_aiosmtpd, args=(child_conn, kind == "aiosmtpd-pipelining")
            )
            self.child.start()
            self.port = int(self.conn.recv())
        else:
            from tests.servers import free_port

            sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
            self.port = free_port()
            argv = [sink]
            if os.geteuid() == 0:
                argv += ["-u", "nobody"]
            if kind == "smtp-sink-nopipelining":
                argv.append("-p")
            argv += [f"127.0.0.1:{self.port}", "128"]
            self.proc = subprocess.Popen(argv)
            deadline = time.monotonic() + 5
            while True:
                try:
                    socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    def cpu(self) -> float:
        if self.proc is not None:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return 0.0

    def stop(self) -> float:
        if self.proc is not None:
            used = self.cpu()
            self.proc.terminate()
            self.proc.wait()
            return used
        self.conn.send("stop")
        used = float(self.conn.recv())
        self.child.join()
        return used


def run_smtplib(port: int, messages: list[bytes], rcpts: list[str]) -> float:
    smtp = smtplib.SMTP("127.0.0.1", port, local_hostname="localhost")
    assert smtp.sock is not None
    smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    smtp.ehlo()
    start = time.perf_counter()
    for raw in messages:
        smtp.sendmail(SENDER, rcpts, raw)
    elapsed = time.perf_counter() - start
    smtp.quit()
    return elapsed


def run_sender(port: int, messages: list[bytes], rcpts: list[str]) -> float:
    from postroom.mail.smtp_send import SmtpSender
    from postroom.mail.types import Endpoint, Protocol, Security

    endpoint = Endpoint(Protocol.SMTP, "127.0.0.1", port, Security.NONE)
    with SmtpSender(endpoint, None, local_hostname="localhost") as sender:
        sender.send(SENDER, rcpts, messages[0])  # connect before the clock, like smtplib
        start = time.perf_counter()
        for raw in messages:
            result = sender.send(SENDER, rcpts, raw)
        elapsed = time.perf_counter() - start
        assert result.all_accepted and sender.connections == 1
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rcpts", type=int, default=1)
    parser.add_argument(
        "--server",
        default="aiosmtpd",
        choices=["aiosmtpd", "aiosmtpd-pipelining", "smtp-sink", "smtp-sink-nopipelining"],
    )
    args = parser.parse_args()
    mp.set_start_method("fork")
    messages = make_messages(args.n)
    rcpts = [f"rcpt{i}@remote.test" for i in range(args.rcpts)]
    clients: dict[str, Callable[[int, list[bytes], list[str]], float]] = {
        "smtplib loop": run_smtplib,
        "SmtpSender": run_sender,
    }
    rates: dict[str, list[float]] = {name: [] for name in clients}
    print(
        f"{args.n} x 10 KB, {args.rcpts} recipient(s), server {args.server}, load {os.getloadavg()[0]:.2f}"
    )
    for round_no in range(args.rounds):
        for name, client in clients.items():
            server = Server(args.server)
            cpu_before = time.process_time()
            elapsed = client(server.port, messages, rcpts)
            client_cpu = time.process_time() - cpu_before
            server_cpu = server.stop()
            rates[name].append(args.n / elapsed)
            print(
                f"  round {round_no}: {name:13s} {args.n / elapsed:7.0f} msg/s   wall {elapsed:5.2f} s"
                f"   client CPU {client_cpu:5.2f} s   server CPU {server_cpu:5.2f} s",
                flush=True,
            )
    medians = {name: statistics.median(values) for name, values in rates.items()}
    for name, median in medians.items():
        print(f"{name:13s} median {median:7.0f} msg/s")
    print(f"SmtpSender / smtplib loop: {medians['SmtpSender'] / medians['smtplib loop']:.2f}x")
    print(f"load at the end {os.getloadavg()[0]:.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
