from postroom.core.models.events import Event, EventLevel
from postroom.core.models.notifications import Notification
from postroom.core.models.site import SiteSettings
from postroom.core.models.tokens import ApiToken

__all__ = ["ApiToken", "Event", "EventLevel", "Notification", "SiteSettings"]
