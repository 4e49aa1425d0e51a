"""The record types every site starts with (issue 5, B7), created after each migrate.

Created by a ``post_migrate`` handler rather than a data migration, like
Django's own permissions: ``flush`` (and so every transactional test) emits
``post_migrate`` again. A type whose key exists is never touched, so an
admin's changes to a built-in type stay; a deleted one comes back.
Names and statuses are English here and translated on display
(``RecordType.display_name``, ``postroom.records.labels``).
"""

from __future__ import annotations

from typing import Any

BUILTIN: list[tuple[str, str, str, list[str], list[str]]] = [
    (
        "issue",
        "Issue",
        "ISSUE",
        ["Open", "Replied", "On hold", "Resolved", "Closed"],
        ["Resolved", "Closed"],
    ),
    (
        "lead",
        "Lead",
        "LEAD",
        ["New", "Contacted", "Qualified", "Converted", "Lost"],
        ["Converted", "Lost"],
    ),
    ("opportunity", "Opportunity", "OPP", ["Open", "Quotation", "Won", "Lost"], ["Won", "Lost"]),
    ("event", "Event", "EVENT", ["Planned", "Done", "Cancelled"], ["Done", "Cancelled"]),
    ("task", "Task", "TASK", ["Open", "Working", "Done", "Cancelled"], ["Done", "Cancelled"]),
    (
        "job_applicant",
        "Job Applicant",
        "JOB",
        ["Open", "Replied", "Hold", "Accepted", "Rejected"],
        ["Accepted", "Rejected"],
    ),
    ("communication", "Communication", "COMM", ["Open", "Closed"], ["Closed"]),
]


def ensure_builtin_types(**kwargs: Any) -> None:
    """Create the built-in record types that do not exist (by key); never change existing ones."""
    from postroom.records.models import RecordType

    existing = set(RecordType.objects.values_list("key", flat=True))
    taken_prefixes = set(RecordType.objects.values_list("prefix", flat=True))
    taken_names = set(RecordType.objects.values_list("name", flat=True))
    for key, name, prefix, statuses, closed in BUILTIN:
        if key in existing or prefix in taken_prefixes or name in taken_names:
            continue  # an admin's own type already uses the name or prefix
        RecordType.objects.create(
            key=key,
            name=name,
            prefix=prefix,
            statuses=statuses,
            closed_statuses=closed,
            builtin=True,
        )
