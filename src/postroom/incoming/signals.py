"""What incoming sync announces to the apps above it (records, webhooks).

``mail_ready`` is sent after a sync pass stored and extracted mail, with
``account``; receivers must pick up their work from the database (every
message they have not handled yet), not from the signal, so a pass that was
killed before sending it loses nothing: the next pass catches up.
A receiver that raises is logged and recorded; it does not fail the sync.
"""

from django.dispatch import Signal

mail_ready = Signal()
