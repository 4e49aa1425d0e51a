"""What webhooks and the API say about records: one shape, documented in the OpenAPI."""

from __future__ import annotations

from typing import Any

from postroom.records.models import Contact, Record


def contact_payload(contact: Contact | None) -> dict[str, Any] | None:
    if contact is None:
        return None
    return {"id": contact.pk, "email": contact.email, "name": contact.name}


def record_payload(record: Record) -> dict[str, Any]:
    return {
        "id": record.pk,
        "reference": record.reference,
        "type": record.type.key,
        "title": record.title,
        "status": record.status,
        "owner": getattr(record.owner, "username", None),
        "contact": contact_payload(record.contact),
        "account": record.account_id,
        "fields": record.fields,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }
