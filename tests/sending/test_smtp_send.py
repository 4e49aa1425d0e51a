"""SmtpSender against real aiosmtpd servers: one transaction, classification, reuse, TLS, AUTH."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from postroom.mail.errors import (
    AuthError,
    ConnectionLost,
    ConnectionRefused,
    ConnectTimeout,
    MailError,
    SMTPRejected,
    StartTLSUnavailable,
)
from postroom.mail.mime import parse_headers
from postroom.mail.mime.build import OutgoingMessage, build_message
from postroom.mail.smtp_send import AddressNotSendable, DeliveryUncertain, SmtpSender
from postroom.mail.types import Endpoint, Protocol, Security
from tests.servers import SmtpServer
from tests.servers.fixtures import SmtpServerFactory
from tests.servers.users import ALICE, ALICE_PASSWORD

from .conftest import SENDER, SenderEndpoint, creds, message

THREE = ["bob@remote.test", "carol@remote.test", "dave@remote.test"]


@pytest.fixture(params=["lockstep", "pipelining"])
def flavour(request: pytest.FixtureRequest) -> str:
    """Run a test against a server without and with PIPELINING."""
    if request.param == "pipelining":
        request.getfixturevalue("pipelining")
    return str(request.param)


def plain_sender(
    factory: SmtpServerFactory, endpoint_for: SenderEndpoint, **options: Any
) -> tuple[SmtpServer, SmtpSender]:
    server = factory(mode="plain", **options)
    return server, SmtpSender(endpoint_for(server), None)


# ---------------------------------------------------------------- one transaction


def test_one_transaction_for_three_recipients(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint, flavour: str
) -> None:
    server, sender = plain_sender(smtp_server_factory, endpoint_for)
    with sender:
        result = sender.send(SENDER, THREE, message())
    assert result.all_accepted
    assert [r.address for r in result.recipients] == THREE
    assert all(r.code == 250 and r.reply.startswith("250 ") for r in result.recipients)
    assert result.data_code == 250
    assert sender.transactions == 1 and sender.connections == 1
    [received] = server.wait_for_messages(1)
    assert received.rcpt_tos == tuple(THREE)
    assert received.mail_from == SENDER
    assert received.data.startswith(b"From: alice@example.test\r\n")
    # SIZE is offered by the fixture; an ASCII message needs neither 8BITMIME nor SMTPUTF8.
    assert [o.split("=")[0] for o in received.mail_options] == ["SIZE"]


def test_refused_recipient_does_not_fail_the_others(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint, flavour: str
) -> None:
    server, sender = plain_sender(smtp_server_factory, endpoint_for)
    server.fail_next("RCPT", "550 5.1.1 <bob@remote.test>: User unknown")
    with sender:
        result = sender.send(SENDER, THREE, message())
    bob, carol, dave = result.recipients
    assert (bob.accepted, bob.code, bob.temporary) == (False, 550, False)
    assert bob.reply == "550 5.1.1 <bob@remote.test>: User unknown"
    assert carol.accepted and dave.accepted
    assert result.accepted == ("carol@remote.test", "dave@remote.test")
    [received] = server.wait_for_messages(1)
    assert received.rcpt_tos == ("carol@remote.test", "dave@remote.test")


def test_rcpt_451_is_temporary_for_that_recipient(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint, flavour: str
) -> None:
    server, sender = plain_sender(smtp_server_factory, endpoint_for)
    server.fail_next("RCPT", "451 4.7.1 Greylisted, try again later")
    with sender:
        result = sender.send(SENDER, THREE[:2], message())
    bob, carol = result.recipients
    assert (bob.accepted, bob.code, bob.temporary) == (False, 451, True)
    assert "Greylisted" in bob.reply
    assert carol.accepted and not carol.temporary
    assert server.wait_for_messages(1)[0].rcpt_tos == ("carol@remote.test",)


def test_all_recipients_refused_sends_no_data_and_connection_stays_usable(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint, flavour: str
) -> None:
    server, sender = plain_sender(smtp_server_factory, endpoint_for)
    server.fail_next("RCPT", "550 5.1.1 No such user", times=2)
    with sender:
        result = sender.send(SENDER, THREE[:2], message())
        assert not any(r.accepted for r in result.recipients)
        assert result.data_code is None and sender.transactions == 0
        again = sender.send(SENDER, ["erin@remote.test"], message("second"))
        assert again.all_accepted
        assert sender.connections == 1
    [received] = server.wait_for_messages(1)
    assert received.rcpt_tos == ("erin@remote.test",)


def test_data_451_defers_every_recipient(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint, flavour: str
) -> None:
    server, sender = plain_sender(smtp_server_factory, endpoint_for)
    server.fail_next("DATA", "451 4.3.0 Queue temporarily unavailable")
    with sender:
        result = sender.send(SENDER, THREE, message())
        assert result.data_code == 451
        assert all(
            (r.accepted, r.code, r.temporary) == (False, 451, True) for r in result.recipients
        )
        assert result.recipients[0].reply == "451 4.3.0 Queue temporarily unavailable"
        assert server.messages == []
        # The transaction ended with the reply: the same connection carries the next one.
        assert sender.send(SENDER, THREE, message()).all_accepted
        assert sender.connections == 1


def test_data_554_fails_every_recipient_permanently(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint, flavour: str
) -> None:
    server, sender = plain_sender(smtp_server_factory, endpoint_for)
    server.fail_next("DATA", "554 5.6.0 Message content rejected")
    with sender:
        result = sender.send(SENDER, THREE, message())
    assert result.data_code == 554 and result.data_reply.startswith("554 5.6.0")
    assert all((r.accepted, r.code, r.temporary) == (False, 554, False) for r in result.recipients)


def test_refused_data_after_partial_rcpt_only_touches_accepted_ones(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint, flavour: str
) -> None:
    server, sender = plain_sender(smtp_server_factory, endpoint_for)
    server.fail_next("RCPT", "550 5.1.1 unknown")
    server.fail_next("DATA", "452 4.3.1 Insufficient system storage")
    with sender:
        result = sender.send(SENDER, THREE[:2], message())
    bob, carol = result.recipients
    assert (bob.code, bob.temporary) == (550, False)  # keeps its own RCPT reply
    assert (carol.accepted, carol.code, carol.temporary) == (False, 452, True)


def test_mail_from_refused_applies_to_everyone(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint, flavour: str
) -> None:
    server, sender = plain_sender(smtp_server_factory, endpoint_for)
    server.fail_next("MAIL", "553 5.7.1 Sender address rejected: not owned by user")
    with sender:
        result = sender.send(SENDER, THREE, message())
        assert all((r.code, r.temporary) == (553, False) for r in result.recipients)
        assert result.data_code is None
        server.fail_next("MAIL", "452 4.3.1 Too busy")
        result = sender.send(SENDER, THREE, message())
        assert all((r.code, r.temporary) == (452, True) for r in result.recipients)
        assert sender.send(SENDER, THREE, message()).all_accepted
        assert sender.connections == 1
    assert len(server.messages) == 1


def test_421_at_rcpt_defers_the_rest_and_drops_the_connection(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint, flavour: str
) -> None:
    server, sender = plain_sender(smtp_server_factory, endpoint_for)
    server.fail_next("RCPT", "421 4.3.2 Shutting down")
    with sender:
        result = sender.send(SENDER, THREE, message())
        assert all(
            (r.accepted, r.code, r.temporary) == (False, 421, True) for r in result.recipients
        )
        assert not sender.connected
        assert sender.send(SENDER, THREE, message()).all_accepted
        assert sender.connections == 2


# ---------------------------------------------------------------- dropped connections


def test_drop_during_data_is_uncertain_and_next_send_reconnects(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint, flavour: str
) -> None:
    server, sender = plain_sender(smtp_server_factory, endpoint_for)
    server.drop_next("DATA")
    with sender:
        with pytest.raises(DeliveryUncertain) as caught:
            sender.send(SENDER, THREE, message("first"))
        assert isinstance(caught.value, ConnectionLost) and isinstance(caught.value, MailError)
        assert caught.value.temporary
        assert "may have accepted" in str(caught.value)
        assert not sender.connected
        result = sender.send(SENDER, THREE, message("second"))
        assert result.all_accepted
        assert sender.connections == 2
    [received] = server.wait_for_messages(1)
    assert b"Subject: second" in received.data


def test_drop_at_rcpt_raises_temporary_and_next_send_works(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint, flavour: str
) -> None:
    server, sender = plain_sender(smtp_server_factory, endpoint_for)
    with sender:
        sender.send(SENDER, THREE[:1], message("warm-up"))
        server.drop_next("RCPT")
        with pytest.raises(ConnectionLost) as caught:
            sender.send(SENDER, THREE, message("cut"))
        assert caught.value.temporary and not isinstance(caught.value, DeliveryUncertain)
        assert sender.send(SENDER, THREE, message("after")).all_accepted
    subjects = [m.message["Subject"] for m in server.wait_for_messages(2)]
    assert subjects == ["warm-up", "after"]


def test_dead_reused_connection_is_replaced_without_losing_the_message(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint, flavour: str
) -> None:
    # The server closed the idle connection (it answers RSET by hanging up): the sender
    # notices at the check, reconnects, and the message goes out exactly once.
    server = smtp_server_factory(mode="plain")
    with SmtpSender(endpoint_for(server), None, check_after=0.0) as sender:
        sender.send(SENDER, THREE[:1], message("one"))
        server.drop_next("RSET")
        assert sender.send(SENDER, THREE[:1], message("two")).all_accepted
        server.fail_next("RSET", "421 4.4.2 Idle timeout, closing connection")
        assert sender.send(SENDER, THREE[:1], message("three")).all_accepted
        assert sender.connections == 3
    assert [m.message["Subject"] for m in server.wait_for_messages(3)] == ["one", "two", "three"]


def test_dead_connection_found_at_mail_from_is_replaced(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint
) -> None:
    # Without PIPELINING and within check_after no RSET is sent; a server that has gone
    # shows at MAIL FROM (EOF, or the 421 it left), which is still before anything of the
    # transaction was accepted.
    server = smtp_server_factory(mode="plain")
    with SmtpSender(endpoint_for(server), None, check_after=60.0) as sender:
        sender.send(SENDER, THREE[:1], message("one"))
        server.drop_next("MAIL")
        assert sender.send(SENDER, THREE[:1], message("two")).all_accepted
        server.fail_next("MAIL", "421 4.4.2 Idle timeout")
        assert sender.send(SENDER, THREE[:1], message("three")).all_accepted
        assert sender.connections == 3
    assert len(server.wait_for_messages(3)) == 3


def test_idle_connection_is_checked_with_rset_before_reuse(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint
) -> None:
    server = smtp_server_factory(mode="plain")
    with SmtpSender(endpoint_for(server), None, check_after=0.05) as sender:
        sender.send(SENDER, THREE[:1], message("one"))
        sender.send(SENDER, THREE[:1], message("quick"))  # within check_after: no RSET
        time.sleep(0.1)
        # An injected RSET reply is consumed only if an RSET is sent.
        server.fail_next("RSET", "421 4.4.2 closing")
        assert sender.send(SENDER, THREE[:1], message("after idle")).all_accepted
        assert sender.connections == 2
    assert len(server.wait_for_messages(3)) == 3


def test_connection_is_reused_across_many_sends(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint, flavour: str
) -> None:
    server, sender = plain_sender(smtp_server_factory, endpoint_for)
    with sender:
        for i in range(60):
            assert sender.send(SENDER, THREE[: 1 + i % 3], message(f"m{i}")).all_accepted
        assert sender.connections == 1 and sender.transactions == 60
        assert sender._conn is not None
        sock = sender._conn.smtp.sock
        assert sock is not None
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    received = server.wait_for_messages(60)
    assert len({m.peer for m in received}) == 1  # one client port: one connection
    assert [m.message["Subject"] for m in received] == [f"m{i}" for i in range(60)]


# ---------------------------------------------------------------- TLS and AUTH


def test_auth_required_and_given_over_starttls(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint
) -> None:
    server = smtp_server_factory(
        mode="starttls", users={ALICE: ALICE_PASSWORD}, auth_required=True, deny_relay=True
    )
    with SmtpSender(endpoint_for(server), creds(ALICE, ALICE_PASSWORD)) as sender:
        assert sender.send(ALICE, THREE, message()).all_accepted
        assert sender.send(ALICE, THREE, message()).all_accepted
    first, _ = server.wait_for_messages(2)
    assert first.authenticated_as == ALICE and first.tls
    assert [a.success for a in server.auth_attempts] == [True]  # logged in once


def test_auth_over_implicit_tls(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint
) -> None:
    server = smtp_server_factory(mode="implicit", users={ALICE: ALICE_PASSWORD})
    endpoint = endpoint_for(server, host="localhost")
    with SmtpSender(endpoint, creds(ALICE, ALICE_PASSWORD)) as sender:
        assert sender.send(ALICE, THREE[:1], message()).all_accepted
    [received] = server.wait_for_messages(1)
    assert received.tls and received.authenticated_as == ALICE


def test_wrong_password_raises_auth_error_permanent(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint
) -> None:
    server = smtp_server_factory(mode="implicit", users={ALICE: ALICE_PASSWORD})
    sender = SmtpSender(endpoint_for(server), creds(ALICE, "wrong"))
    with pytest.raises(AuthError) as caught:
        sender.send(ALICE, THREE[:1], message())
    assert not caught.value.temporary
    assert caught.value.server_reply and caught.value.server_reply.startswith("535")
    assert not sender.connected and server.messages == []


def test_missing_auth_shows_per_recipient_relay_refusal(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint
) -> None:
    server = smtp_server_factory(mode="plain", deny_relay=True)
    with SmtpSender(endpoint_for(server), None) as sender:
        result = sender.send(SENDER, ["local@example.test", "bob@remote.test"], message())
    local, remote = result.recipients
    assert local.accepted
    assert (remote.accepted, remote.code, remote.temporary) == (False, 554, False)
    assert "Relay access denied" in remote.reply


def test_starttls_with_the_runs_ca(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint
) -> None:
    server = smtp_server_factory(mode="starttls", require_starttls=True)
    with SmtpSender(endpoint_for(server, host="localhost"), None) as sender:
        assert sender.send(SENDER, THREE[:1], message()).all_accepted
    assert server.wait_for_messages(1)[0].tls


def test_starttls_missing_is_refused_never_plaintext(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint
) -> None:
    server = smtp_server_factory(mode="plain")
    sender = SmtpSender(endpoint_for(server, security=Security.STARTTLS), None)
    with pytest.raises(StartTLSUnavailable) as caught:
        sender.send(SENDER, THREE[:1], message())
    assert not caught.value.temporary
    assert server.messages == []


def test_connection_refused_and_timeout_are_temporary(closed_port: int, silent_port: int) -> None:
    for port, kind in ((closed_port, ConnectionRefused), (silent_port, ConnectTimeout)):
        endpoint = Endpoint(Protocol.SMTP, "127.0.0.1", port, Security.NONE, timeout=0.5)
        with pytest.raises(kind) as caught:
            SmtpSender(endpoint, None).send(SENDER, THREE[:1], message())
        assert caught.value.temporary


# ---------------------------------------------------------------- addresses and content


def test_smtputf8_address_to_a_server_that_offers_it(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint
) -> None:
    server = smtp_server_factory(mode="plain", smtputf8=True)
    built = build_message(
        OutgoingMessage(
            from_address=SENDER,
            to=["Jürgen <jürgen@bücher.example>", "bob@remote.test"],
            subject="Grüße",
            text="Hallo Jürgen\n",
        )
    )
    assert built.needs_smtputf8
    with SmtpSender(endpoint_for(server), None) as sender:
        result = sender.send(built.envelope_from, built.envelope_recipients, built.raw)
    assert result.all_accepted
    [received] = server.wait_for_messages(1)
    assert received.rcpt_tos == ("jürgen@xn--bcher-kva.example", "bob@remote.test")
    assert "SMTPUTF8" in received.mail_options
    assert "BODY=8BITMIME" in received.mail_options  # the UTF-8 header makes it 8-bit
    to = parse_headers(received.data).to
    assert [a.email for a in to] == ["jürgen@xn--bcher-kva.example", "bob@remote.test"]
    assert to[0].name == "Jürgen"


def test_smtputf8_address_to_a_server_without_it_is_a_clear_error(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint
) -> None:
    server = smtp_server_factory(mode="plain", smtputf8=False)
    built = build_message(
        OutgoingMessage(from_address=SENDER, to=["jürgen@bücher.example"], text="Hallo\n")
    )
    with SmtpSender(endpoint_for(server), None) as sender:
        with pytest.raises(AddressNotSendable) as caught:
            sender.send(built.envelope_from, built.envelope_recipients, built.raw)
        assert isinstance(caught.value, SMTPRejected) and not caught.value.temporary
        assert "SMTPUTF8" in str(caught.value) and "127.0.0.1" in str(caught.value)
        # Nothing was sent; the connection is fine for the next message.
        assert sender.send(SENDER, ["bob@remote.test"], message()).all_accepted
        assert sender.connections == 1
    assert len(server.wait_for_messages(1)) == 1


def test_unsendable_recipient_is_refused_alone(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint, flavour: str
) -> None:
    # An ASCII message, one recipient with a UTF-8 local part, a server without SMTPUTF8;
    # plus a recipient that would inject a command.
    server = smtp_server_factory(mode="plain", smtputf8=False)
    with SmtpSender(endpoint_for(server), None) as sender:
        result = sender.send(
            SENDER, ["jürgen@example.test", "evil@x.test>\r\nRSET", "bob@remote.test"], message()
        )
    utf8, evil, bob = result.recipients
    assert (utf8.accepted, utf8.code, utf8.temporary) == (False, None, False)
    assert "SMTPUTF8" in utf8.reply
    assert (evil.accepted, evil.code) == (False, None)
    assert bob.accepted
    assert server.wait_for_messages(1)[0].rcpt_tos == ("bob@remote.test",)


def test_utf8_sender_without_server_support_raises(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint
) -> None:
    server = smtp_server_factory(mode="plain", smtputf8=False)
    with SmtpSender(endpoint_for(server), None) as sender:
        with pytest.raises(AddressNotSendable, match="sender"):
            sender.send("jürgen@example.test", ["bob@remote.test"], message())


def test_idna_domain_needs_no_smtputf8(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint
) -> None:
    server = smtp_server_factory(mode="plain", smtputf8=False)
    with SmtpSender(endpoint_for(server), None) as sender:
        assert sender.send("info@bücher.example", ["bob@münchen.example"], message()).all_accepted
    [received] = server.wait_for_messages(1)
    assert received.mail_from == "info@xn--bcher-kva.example"
    assert received.rcpt_tos == ("bob@xn--mnchen-3ya.example",)
    assert "SMTPUTF8" not in received.mail_options


def test_8bit_body_is_announced(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint
) -> None:
    server = smtp_server_factory(mode="plain")
    with SmtpSender(endpoint_for(server), None) as sender:
        sender.send(SENDER, ["bob@remote.test"], message(body="Grüße\r\n".encode()))
    [received] = server.wait_for_messages(1)
    assert "BODY=8BITMIME" in received.mail_options
    assert "SMTPUTF8" not in received.mail_options
    assert received.data.endswith("Grüße\r\n".encode())


def test_dots_and_bare_line_feeds(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint
) -> None:
    server = smtp_server_factory(mode="plain")
    raw = b"Subject: dots\n\n.\n..two\n.leading\nbare\rcr\nend"
    with SmtpSender(endpoint_for(server), None) as sender:
        assert sender.send("", ["bob@remote.test"], raw).all_accepted
        assert sender.send("<>", ["bob@remote.test"], raw).all_accepted
    first, second = server.wait_for_messages(2)
    assert first.mail_from == second.mail_from == "<>"  # the null sender, as aiosmtpd has it
    assert first.data == b"Subject: dots\r\n\r\n.\r\n..two\r\n.leading\r\nbare\r\ncr\r\nend\r\n"


def test_no_recipients_is_a_programming_error(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint
) -> None:
    server = smtp_server_factory(mode="plain")
    with pytest.raises(ValueError):
        SmtpSender(endpoint_for(server), None).send(SENDER, [], message())


def test_large_message_goes_out_in_chunks_intact(
    smtp_server_factory: SmtpServerFactory, endpoint_for: SenderEndpoint
) -> None:
    server = smtp_server_factory(mode="plain")
    line = b"0123456789abcdefghijklmnopqrstuvwxyz" * 2 + b"\r\n"
    body = line * (3 * 1024 * 1024 // len(line)) + b".starts with a dot\r\n"
    with SmtpSender(endpoint_for(server), None) as sender:
        assert sender.send(SENDER, ["bob@remote.test"], message(body=body)).all_accepted
    [received] = server.wait_for_messages(1, timeout=10)
    assert received.data == message(body=body)
    size = next(o for o in received.mail_options if o.startswith("SIZE="))
    assert int(size[5:]) >= len(message(body=body))
