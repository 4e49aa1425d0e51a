from postroom.incoming.models.messages import (
    Attachment,
    Message,
    MessageBlob,
    ParseState,
    Thread,
)
from postroom.incoming.models.sync import (
    FolderState,
    MessageLocation,
    Pop3Location,
    SyncLease,
    SyncState,
    SyncStatus,
)

__all__ = [
    "Attachment",
    "FolderState",
    "Message",
    "MessageBlob",
    "MessageLocation",
    "ParseState",
    "Pop3Location",
    "SyncLease",
    "SyncState",
    "SyncStatus",
    "Thread",
]
