"""Fetch throughput of ImapSyncSession over IMAPS (a script, not a test).

    .venv/bin/python -m tests.sync_protocol.bench_fetch [--messages 2000] [--size 13000]

Starts a private Dovecot, appends generated messages, then fetches them all
with each batch size and pipeline depth, with a consumer that does nothing
and one that writes every batch to disk with one fsync (what storing costs),
and with the batches handed over through a prefetching thread. Runs every
configuration once per round in shuffled order (the machine may be shared) and
prints the medians: messages/s and the client's CPU time per message.
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from postroom.mail import imap_sync
from postroom.mail.imap_sync import FetchedMessage, ImapSyncSession
from postroom.mail.types import Credentials, Endpoint, Protocol, Security, TLSPolicy
from tests.servers.certs import make_cert_set
from tests.servers.dovecot import Dovecot
from tests.sync_protocol.messages import make_message

Batches = Iterator[list[FetchedMessage]]


def threaded(batches: Batches, depth: int = 2) -> Batches:
    """Run the fetch loop in a thread, handing batches over through a bounded queue."""
    handover: queue.Queue[object] = queue.Queue(maxsize=depth)
    done = object()

    def produce() -> None:
        try:
            for batch in batches:
                handover.put(batch)
            handover.put(done)
        except BaseException as exc:
            handover.put(exc)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    while (item := handover.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item  # type: ignore[misc]
    thread.join()


def nothing(batch: list[FetchedMessage], directory: Path) -> None:
    pass


def store(batch: list[FetchedMessage], directory: Path) -> None:
    # Content-addressed files, one fsync per batch: the cheapest durable store.
    with open(directory / "batch", "wb") as out:
        for message in batch:
            out.write(message.raw)
        out.flush()
        os.fsync(out.fileno())


def run(
    endpoint: Endpoint,
    credentials: Credentials,
    batch_size: int,
    depth: int,
    consume: Callable[[list[FetchedMessage], Path], None],
    use_thread: bool,
    directory: Path,
) -> tuple[float, float]:
    """One full fetch; (messages/s, client CPU µs per message)."""
    imap_sync.PIPELINE_DEPTH = depth
    with ImapSyncSession(endpoint, credentials) as session:
        session.select("Bench")
        uids = session.uids_after(0)
        started, cpu = time.perf_counter(), time.process_time()
        batches = session.fetch(uids, batch_size)
        count = 0
        for batch in threaded(batches) if use_thread else batches:
            consume(batch, directory)
            count += len(batch)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert count == len(uids), (count, len(uids))
    return count / elapsed, cpu / count * 1e6


def run_imapclient(
    endpoint: Endpoint, credentials: Credentials, batch_size: int
) -> tuple[float, float]:
    """Reference: IMAPClient.fetch(BODY.PEEK[]) on the same kind of connection."""
    with ImapSyncSession(endpoint, credentials) as session:
        session.select("Bench")
        uids = session.uids_after(0)
        client = session._client
        client._imap.debug = 5  # as IMAPClient leaves it
        started, cpu = time.perf_counter(), time.process_time()
        count = 0
        for start in range(0, len(uids), batch_size):
            count += len(client.fetch(uids[start : start + batch_size], ["BODY.PEEK[]"]))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        client._imap.debug = 0
    return count / elapsed, cpu / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=13_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", default="100,200,500")
    parser.add_argument("--depths", default="0,1,2")
    parser.add_argument("--threads", default="no,yes")
    parser.add_argument("--latency-ms", type=float, default=0, help="one-way, via TcpProxy")
    parser.add_argument("--no-reference", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, Dovecot(make_cert_set(Path(tmp))) as dovecot:
        user = dovecot.add_user("bench@example.test", "secret-bench")
        dovecot.create_folder(user.name, "Bench")
        with dovecot.imap(user.name) as client:
            for start in range(0, args.messages, 100):
                count = min(100, args.messages - start)
                client.multiappend(
                    "Bench", [make_message(start + i, args.size) for i in range(count)]
                )
        port = dovecot.imaps_port
        proxy = None
        if args.latency_ms:
            latency = str(args.latency_ms / 1000)
            # A process of its own: its threads must not compete with ours for the GIL.
            proxy = subprocess.Popen(
                [sys.executable, "-m", "tests.servers.proxy", "127.0.0.1", str(port), latency],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert proxy.stdout is not None
            port = int(proxy.stdout.readline())
        endpoint = Endpoint(
            Protocol.IMAP, "localhost", port, Security.SSL, TLSPolicy(ca_pem=dovecot.ca_pem)
        )
        credentials = Credentials(user.name, user.password)
        configs: list[tuple[object, ...]] = [
            (batch, depth, consume, thread == "yes")
            for batch in map(int, args.batches.split(","))
            for depth in map(int, args.depths.split(","))
            for consume in (nothing, store)
            for thread in args.threads.split(",")
        ]
        if not args.no_reference:
            configs += [("imapclient", batch) for batch in map(int, args.batches.split(","))]
        results: dict[tuple[object, ...], list[tuple[float, float]]] = {c: [] for c in configs}
        run(endpoint, credentials, 200, 1, nothing, False, Path(tmp))  # warm Dovecot's caches
        # Rounds in shuffled order: the machine is shared, so load drifts.
        for _round in range(args.rounds):
            for config in random.sample(configs, len(configs)):
                if config[0] == "imapclient":
                    results[config].append(run_imapclient(endpoint, credentials, config[1]))  # type: ignore[arg-type]
                else:
                    results[config].append(run(endpoint, credentials, *config, Path(tmp)))  # type: ignore[arg-type, call-arg]
        print(
            f"{args.messages} messages of {args.size} bytes over IMAPS, "
            f"{args.latency_ms:g} ms one-way latency; median of {args.rounds}"
        )
        print(
            f"{'batch':>5} {'depth':>5} {'consumer':>8} {'thread':>6} {'msg/s':>7} {'cpu µs/msg':>10}"
        )
        for config, measured in results.items():
            rate = statistics.median(r for r, _ in measured)
            cpu = statistics.median(c for _, c in measured)
            if config[0] == "imapclient":
                label = f"{config[1]:>5} {'IMAPClient.fetch reference':>22}"
            else:
                batch, depth, consume, thread = config
                label = (
                    f"{batch:>5} {depth:>5} {consume.__name__:>8} {'yes' if thread else 'no':>6}"  # type: ignore[attr-defined]
                )
            print(f"{label} {rate:>7.0f} {cpu:>10.0f}", flush=True)
        if proxy is not None:
            proxy.terminate()
            proxy.wait()


if __name__ == "__main__":
    main()
