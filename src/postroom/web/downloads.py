"""Serving stored mail files (raw messages, attachments) to a browser.

The headers and the file-name rule are the REST API's
(:func:`postroom.api.messages.download_response` and
:func:`~postroom.api.messages.safe_download_name`), so the UI and the API
answer a download the same way; only the "missing" case differs (a 404 page
here, the API's JSON error there).
"""

from __future__ import annotations

import logging
import mimetypes
from pathlib import Path

from django.http import Http404
from django.utils.translation import gettext as _

from postroom.api.messages import download_response, safe_download_name
from postroom.incoming.blobs import blob_path
from postroom.incoming.models import Attachment

__all__ = ["attachment_filename", "download_response", "stored_file"]

logger = logging.getLogger(__name__)


def stored_file(sha256: str) -> Path:
    """The blob's file; 404 (and a log line: it should never happen) when it is missing."""
    path = blob_path(sha256)
    if not path.exists():
        logger.error("blob %s is referenced but missing from the store", sha256)
        raise Http404(_("The stored content of this message is missing."))
    return path


def attachment_filename(attachment: Attachment) -> str:
    """The stored name when it is a bare, printable file name, else a neutral one."""
    extension = mimetypes.guess_extension(attachment.content_type, strict=False) or ".bin"
    return safe_download_name(attachment.filename, f"attachment-{attachment.pk}{extension}")
