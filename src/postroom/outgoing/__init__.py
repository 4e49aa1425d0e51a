"""Outgoing mail: a durable queue that sends fast, retries right, and tells the truth.

* ``models``: OutboxItem (the MIME built once, stored content-addressed, with
  its Message-ID, lease, schedule and wait reason), OutboxRecipient (status
  and last server reply per envelope recipient), DeliveryAttempt (every try
  with the server's replies), Suppression, WorkerHeartbeat.
* ``actions``: the only code that changes the outbox (``do_queue_message``,
  ``do_cancel``, ``do_retry_now``, ``do_suppress``, ``do_unsuppress``).
* ``queue``: claiming under a lease, sending, classification, back-off, rate
  limits, and the crash-safety argument (read its docstring: it documents
  the one window in which a message can arrive twice).
* ``worker``: ``postroom worker`` and the worker inside ``postroom run``.
* ``senders`` (C8/A10 sender rules), ``transport`` (C3), ``sentcopy`` (C11),
  ``bounces`` (C15, called by incoming sync), ``queries`` (read helpers).
"""
