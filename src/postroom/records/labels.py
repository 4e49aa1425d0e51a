"""Translatable names of the built-in record types and statuses.

They are stored in English (``postroom.records.builtin``) so an admin's own types and
statuses are plain text; these marks let makemessages find the built-in ones.
"""

from django.utils.translation import gettext, gettext_noop

BUILTIN_WORDS = [
    gettext_noop("Issue"),
    gettext_noop("Lead"),
    gettext_noop("Opportunity"),
    gettext_noop("Event"),
    gettext_noop("Task"),
    gettext_noop("Job Applicant"),
    gettext_noop("Communication"),
    gettext_noop("Open"),
    gettext_noop("Replied"),
    gettext_noop("On hold"),
    gettext_noop("Resolved"),
    gettext_noop("Closed"),
    gettext_noop("New"),
    gettext_noop("Contacted"),
    gettext_noop("Qualified"),
    gettext_noop("Converted"),
    gettext_noop("Lost"),
    gettext_noop("Quotation"),
    gettext_noop("Won"),
    gettext_noop("Planned"),
    gettext_noop("Done"),
    gettext_noop("Cancelled"),
    gettext_noop("Working"),
    gettext_noop("Hold"),
    gettext_noop("Accepted"),
    gettext_noop("Rejected"),
]
_KNOWN = frozenset(BUILTIN_WORDS)


def status_label(status: str) -> str:
    """A status as shown: translated when it is one of ours, as typed otherwise."""
    return gettext(status) if status in _KNOWN else status
