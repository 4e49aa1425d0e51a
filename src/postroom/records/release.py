"""Held mail and routing errors: release one held message, route failed ones again.

A message is *held* when its sender passed the account's loop limit (see
``postroom.records.routing``). A person who looked at it and found it genuine
releases it: it is routed once more with the loop limit lifted for that one
message, so it creates (or joins) its record, and the ledger says "released".
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction
from django.utils.translation import gettext as _

from postroom.accounts.models import EmailAccount
from postroom.core.actions import do_log_event
from postroom.incoming.models import Message
from postroom.records import routing
from postroom.records.actions import Actor, RecordError
from postroom.records.models import Record, RoutedMessage, RouteOutcome

# Larger than any count of records one sender can reach in a window.
_NO_LIMIT = 2**31 - 1


def do_release_held(message: Message, *, actor: Actor = None) -> Record | None:
    """Route a held ``message`` again, bypassing the loop limit once; its record, if any."""
    with transaction.atomic():
        held = (
            RoutedMessage.objects.select_for_update()
            .filter(message=message, outcome=RouteOutcome.HELD)
            .first()
        )
        if held is None:
            raise RecordError("message", _("This message is not held."))
        held.delete()
        ctx = routing.routing_context(message.account)
        # Only this pass, in memory: the saved settings keep their limit.
        ctx.settings.loop_limit = _NO_LIMIT
        decision = routing.route_message(ctx, message)
        if decision.outcome == RouteOutcome.CREATED:
            RoutedMessage.objects.filter(message=message).update(outcome=RouteOutcome.RELEASED)
        do_log_event(
            kind="routing.released",
            account=message.account,
            message=_("Held message %(id)s from %(sender)s released.")
            % {"id": message.pk, "sender": message.from_email},
            data={
                "message": message.pk,
                "record": decision.record.pk if decision.record else None,
                "actor": getattr(actor, "username", None),
            },
        )
    return decision.record


def do_reroute_account(
    account: EmailAccount, messages: Sequence[Message], *, actor: Actor = None
) -> routing.RouteReport:
    """Forget the failed or held routing of ``messages`` and route the account's pending mail."""
    routing.do_reroute(messages)
    do_log_event(
        kind="routing.rerouted",
        account=account,
        message=_("%(n)d message(s) routed again.") % {"n": len(messages)},
        data={"messages": [m.pk for m in messages], "actor": getattr(actor, "username", None)},
    )
    return routing.do_route_pending(account)
