"""State changes the web UI needs that have no ``do_*`` action in the core yet.

TO MOVE: ``do_allow_remote_images`` belongs in ``postroom.incoming.actions``
next to ``do_set_message_flags`` (the API and CLI will want the same switch).
It lives here only until the incoming core takes it over; nothing else in
``postroom.web`` writes to the database directly.
"""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from postroom.core.actions import do_log_event
from postroom.incoming.models import Message


def do_allow_remote_images(message: Message, *, actor: object = None) -> Message:
    """Show this message's remote images from now on (for everyone who can read it).

    Remote images are blocked by default because they tell the sender when
    and where the mail was read; allowing them is the reader's decision, so
    it is logged like a flag change.
    """
    if message.allow_remote_images:
        return message
    with transaction.atomic():
        Message.objects.filter(pk=message.pk).update(allow_remote_images=True)
        message.allow_remote_images = True
        do_log_event(
            kind="message.remote_images",
            account=message.account,
            message=_("Remote images allowed on a message."),
            data={"message": message.pk, "actor": getattr(actor, "username", None)},
        )
    return message
