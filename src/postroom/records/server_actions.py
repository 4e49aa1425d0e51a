"""Changes to the mail server after our own transaction committed.

Rule actions (B12 mark read, move) after routing, and \\Answered on a
message we replied to (B15, as any mail client does).

A server that refuses is reported (event log, error level) and the message
stays where it was; routing itself is not undone.
"""

from __future__ import annotations

import logging

from django.utils.translation import gettext as _

from postroom.core.actions import do_log_event
from postroom.core.models import EventLevel
from postroom.incoming.models import Message

logger = logging.getLogger(__name__)


def apply_server_actions(
    message_id: int, *, mark_read: bool = False, move_to: str | None = None, answered: bool = False
) -> None:
    from postroom.incoming.actions import do_move_message, do_set_message_flags

    message = Message.objects.select_related("account").filter(pk=message_id).first()
    if message is None:
        return
    try:
        if mark_read and not message.seen:
            do_set_message_flags(message, seen=True)
        if answered and not message.answered:
            do_set_message_flags(message, answered=True)
        if move_to:
            do_move_message(message, move_to)
    except Exception as exc:
        logger.exception("server change for message %s failed", message_id)
        do_log_event(
            kind="routing.rule_action_failed",
            level=EventLevel.ERROR,
            account=message.account,
            message=_("Message %(id)s could not be changed on the server: %(error)s")
            % {"id": message_id, "error": f"{type(exc).__name__}: {exc}"},
            data={
                "message": message_id,
                "mark_read": mark_read,
                "move_to": move_to,
                "answered": answered,
            },
        )
