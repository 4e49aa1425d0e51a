from postroom.records.models.records import (
    Contact,
    LinkVia,
    Record,
    RecordLink,
    RecordSource,
    RecordType,
)
from postroom.records.models.routing import (
    AppendTo,
    AutoReplyLog,
    RoutedMessage,
    RouteOutcome,
    RoutingCursor,
    RoutingSettings,
    Rule,
    RuleMatch,
    UnrepliedNotice,
)

__all__ = [
    "AppendTo",
    "AutoReplyLog",
    "Contact",
    "LinkVia",
    "Record",
    "RecordLink",
    "RecordSource",
    "RecordType",
    "RouteOutcome",
    "RoutedMessage",
    "RoutingCursor",
    "RoutingSettings",
    "Rule",
    "RuleMatch",
    "UnrepliedNotice",
]
