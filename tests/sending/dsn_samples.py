"""Bounces as real MTAs write them (Postfix, an Exchange-style report, Exim, qmail), shortened.

Every report was sent to a VERP return path ``bounces+TOKEN@example.test``.
"""

from __future__ import annotations


def crlf(text: str) -> bytes:
    return text.lstrip("\n").replace("\n", "\r\n").encode()


POSTFIX_FAILED = crlf(
    """
Return-Path: <>
Delivered-To: bounces+5f2a9c@example.test
X-Original-To: bounces+5f2a9c@example.test
Received: by mail.example.test (Postfix) id 4F1B2C3D4E; Mon, 20 Nov 2023 10:00:05 +0000 (UTC)
Date: Mon, 20 Nov 2023 10:00:05 +0000 (UTC)
From: MAILER-DAEMON@mail.example.test (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: bounces+5f2a9c@example.test
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="4F1B2C3D4E.1700474405/mail.example.test"
Content-Transfer-Encoding: 8bit
Message-Id: <20231120100005.4F1B2C3D4E@mail.example.test>

This is a MIME-encapsulated message.

--4F1B2C3D4E.1700474405/mail.example.test
Content-Description: Notification
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

This is the mail system at host mail.example.test.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

                   The mail system

<nobody@remote.test>: host mx.remote.test[10.5.1.1] said: 550 5.1.1
    <nobody@remote.test>: Recipient address rejected: User unknown in virtual
    mailbox table (in reply to RCPT TO command)

--4F1B2C3D4E.1700474405/mail.example.test
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.example.test
X-Postfix-Queue-ID: 4F1B2C3D4E
X-Postfix-Sender: rfc822; bounces+5f2a9c@example.test
Arrival-Date: Mon, 20 Nov 2023 10:00:02 +0000 (UTC)

Final-Recipient: rfc822; nobody@remote.test
Original-Recipient: rfc822;Nobody@Remote.test
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.remote.test
Diagnostic-Code: smtp; 550 5.1.1 <nobody@remote.test>: Recipient address
    rejected: User unknown in virtual mailbox table

--4F1B2C3D4E.1700474405/mail.example.test
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers
Content-Transfer-Encoding: 8bit

Return-Path: <bounces+5f2a9c@example.test>
Received: from client.example.test (client.example.test [192.0.2.1])
\tby mail.example.test (Postfix) with ESMTPSA id 4F1B2C3D4E
\tfor <nobody@remote.test>; Mon, 20 Nov 2023 10:00:02 +0000 (UTC)
Date: Mon, 20 Nov 2023 10:00:01 +0000
From: Alice <alice@example.test>
To: nobody@remote.test
Subject: Invoice 42
Message-ID: <invoice-42.abc@example.test>

--4F1B2C3D4E.1700474405/mail.example.test--
"""
)

POSTFIX_DELAYED = crlf(
    """
Return-Path: <>
Delivered-To: bounces+77d1@example.test
Date: Tue, 21 Nov 2023 14:00:00 +0000 (UTC)
From: MAILER-DAEMON@mail.example.test (Mail Delivery System)
Subject: Delayed Mail (still being retried)
To: bounces+77d1@example.test
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="9AB8C7D6E5.1700575200/mail.example.test"
Message-Id: <20231121140000.9AB8C7D6E5@mail.example.test>

This is a MIME-encapsulated message.

--9AB8C7D6E5.1700575200/mail.example.test
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mail.example.test.

####################################################################
# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #
####################################################################

Your message could not be delivered for more than 4 hour(s).
It will be retried until it is 3 day(s) old.

<slow@slow.test>: connect to mx.slow.test[192.0.2.20]:25: Connection timed out

--9AB8C7D6E5.1700575200/mail.example.test
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.example.test
X-Postfix-Queue-ID: 9AB8C7D6E5
Original-Envelope-Id: outbox-7-attempt-1
Arrival-Date: Tue, 21 Nov 2023 10:00:00 +0000 (UTC)

Final-Recipient: rfc822; slow@slow.test
Original-Recipient: rfc822;slow@slow.test
Action: delayed
Status: 4.4.1
Diagnostic-Code: X-Postfix; connect to mx.slow.test[192.0.2.20]:25: Connection
    timed out
Will-Retry-Until: Fri, 24 Nov 2023 10:00:00 +0000 (UTC)

--9AB8C7D6E5.1700575200/mail.example.test
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Return-Path: <bounces+77d1@example.test>
From: alice@example.test
To: slow@slow.test
Subject: Weekly report
Message-ID:
 <weekly-report-2023-47@example.test>

--9AB8C7D6E5.1700575200/mail.example.test--
"""
)

# Exchange/Gmail style: the whole original message returned as message/rfc822, two
# recipients, one hard (mailbox gone) and one that expired after retries (4.4.7: soft).
REPORT_WITH_MESSAGE = crlf(
    """
Return-Path: <>
To: <bounces+abc123@example.test>
From: postmaster@relay.remote.test
Subject: Undeliverable: Meeting notes
Date: Wed, 22 Nov 2023 09:00:00 +0000
Message-ID: <report-xyz@relay.remote.test>
MIME-Version: 1.0
Content-Type: multipart/report; report-type="delivery-status";
 boundary="b1"

--b1
Content-Type: multipart/alternative; boundary="b2"

--b2
Content-Type: text/plain; charset="utf-8"

Delivery has failed to these recipients or groups:

gone@remote.test
The email address you entered couldn't be found.

--b2
Content-Type: text/html; charset="utf-8"

<p>Delivery has failed to these recipients or groups:</p>

--b2--

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns;relay.remote.test
Received-From-MTA: dns;mail.example.test
Arrival-Date: Wed, 22 Nov 2023 08:59:58 +0000

Final-Recipient: rfc822;gone@remote.test
Action: failed
Status: 5.1.10
Diagnostic-Code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup

Final-Recipient: utf-8; j\\x{00FC}rgen@remote.test
Action: failed
Status: 4.4.7
Diagnostic-Code: smtp;400 4.4.7 Message delayed

Final-Recipient: rfc822; relayed@remote.test
Action: relayed
Status: 2.0.0

--b1
Content-Type: message/rfc822

Return-Path: <bounces+abc123@example.test>
From: Alice <alice@example.test>
To: gone@remote.test, =?utf-8?q?J=C3=BCrgen?= <jürgen@remote.test>
Subject: Meeting notes
Message-ID: <notes-17@example.test>
Date: Wed, 22 Nov 2023 08:59:57 +0000

The notes.

--b1--
"""
)

EXIM_FAILED = crlf(
    """
Return-path: <>
Envelope-to: bounces+e1a2@example.test
Delivery-date: Thu, 23 Nov 2023 11:00:01 +0000
Received: from Debian-exim by mx.example.test with local (Exim 4.96)
\tid 1r5abc-000123-AB
\tfor bounces+e1a2@example.test; Thu, 23 Nov 2023 11:00:01 +0000
X-Failed-Recipients: gone@remote.test
Auto-Submitted: auto-replied
From: Mail Delivery System <Mailer-Daemon@mx.example.test>
To: bounces+e1a2@example.test
Subject: Mail delivery failed: returning message to sender
Message-Id: <E1r5abc-000123-AB@mx.example.test>
Date: Thu, 23 Nov 2023 11:00:01 +0000

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  gone@remote.test
    host mx.remote.test [192.0.2.30]
    SMTP error from remote mail server after RCPT TO:<gone@remote.test>:
    550 5.1.1 <gone@remote.test>... User unknown

------ This is a copy of the message, including all the headers. ------

Return-path: <bounces+e1a2@example.test>
Received: from [192.0.2.1] by mx.example.test with esmtpsa (Exim 4.96)
\tid 1r5abb-000122-ZZ; Thu, 23 Nov 2023 11:00:00 +0000
From: Alice <alice@example.test>
To: gone@remote.test
Subject: Hello
Message-ID: <hello-1@example.test>
Date: Thu, 23 Nov 2023 10:59:59 +0000

Hello there.
"""
)

EXIM_DELAYED = crlf(
    """
Return-path: <>
Envelope-to: bounces+e9f8@example.test
X-Failed-Recipients: slow@remote.test
Auto-Submitted: auto-replied
From: Mail Delivery System <Mailer-Daemon@mx.example.test>
To: bounces+e9f8@example.test
Subject: Warning: message 1r5abc-000123-AB delayed 24 hours
Message-Id: <E1r6def-000456-CD@mx.example.test>
Date: Fri, 24 Nov 2023 11:00:01 +0000

This message was created automatically by mail delivery software.
A message that you sent has not yet been delivered to one or more of its
recipients after more than 24 hours on the queue on mx.example.test.

The message identifier is:     1r5abc-000123-AB
The date of the message is:    Thu, 23 Nov 2023 11:00:00 +0000
The subject of the message is: Hello

The address to which the message has not yet been delivered is:

  slow@remote.test
    host mx.remote.test [192.0.2.30]
    Delay reason: SMTP error from remote mail server after RCPT TO:<slow@remote.test>:
    451 4.7.1 Greylisted, please try again later

No action is required on your part. Delivery attempts will continue for
some time, and this warning may be repeated at intervals if the message
remains undelivered.
"""
)

QMAIL_FAILED = crlf(
    """
Return-Path: <>
Delivered-To: bounces+q1@example.test
Date: 25 Nov 2023 10:00:00 -0000
From: MAILER-DAEMON@qmail.remote.test
To: bounces+q1@example.test
Subject: failure notice

Hi. This is the qmail-send program at qmail.remote.test.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<nobody@qmail.remote.test>:
Sorry, no mailbox here by that name. (#5.1.1)

<full@qmail.remote.test>:
192.0.2.40 does not like recipient.
Remote host said: 552 5.2.2 Mailbox full
Giving up on 192.0.2.40.

--- Below this line is a copy of the message.

Return-Path: <bounces+q1@example.test>
Received: (qmail 1234 invoked from network); 25 Nov 2023 09:59:59 -0000
Message-ID: <q-1@example.test>
From: alice@example.test
To: nobody@qmail.remote.test, full@qmail.remote.test
Subject: hi

body
"""
)

READ_RECEIPT = crlf(
    """
From: bob@remote.test
To: alice@example.test
Subject: Read: Hello
MIME-Version: 1.0
Content-Type: multipart/report; report-type=disposition-notification; boundary="r"

--r
Content-Type: text/plain

Your message was displayed.

--r
Content-Type: message/disposition-notification

Reporting-UA: remote.test; Mail
Final-Recipient: rfc822; bob@remote.test
Original-Message-ID: <hello-1@example.test>
Disposition: manual-action/MDN-sent-manually; displayed

--r--
"""
)

HUMAN_REPLY = crlf(
    """
From: Bob <bob@remote.test>
To: alice@example.test
Subject: Re: the server
X-Failed-Recipients: carol@remote.test
Message-ID: <reply-1@remote.test>

Our mail server said "550 5.1.1 User unknown" for carol@remote.test. The following
address(es) failed: none, I'm joking.
"""
)
