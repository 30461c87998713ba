"""The portal's models, one module per capability (foreign keys cross them, so
they live together here). Import them from `connections.models`.

Order of the modules, each importing only those before it: `system`,
`uploads`, `statuses` (and the timeline), `moves` (bulk moves of VINs),
`entries` (a VIN's life), `fleets`, `summaries`, `sending`, `vehicles`,
`consent`, `mail`, `store_once`, `webhooks`, `unmatched`.
"""

from connections.models.consent import (
    ConnectedAccount,
    ConsentLink,
    ConsentLinkEvent,
    LinkStatus,
    new_token,
)
from connections.models.entries import VinEntry
from connections.models.fleets import SUPPORT_GROUP, Fleet, Membership, Region, user_is_support
from connections.models.mail import MailMessage, NotificationChoice, NotificationKind
from connections.models.sending import ConnectBatch
from connections.models.statuses import (
    STATUS_BADGES,
    STATUS_LABELS,
    SUPERSEDED_REFUSAL,
    Attention,
    Source,
    VinEvent,
    VinStatus,
    plate_key,
    search_needles,
)
from connections.models.summaries import EntryGroups, UploadSummary, entry_groups
from connections.models.system import ApiToken, WorkerHeartbeat
from connections.models.unmatched import ReconciliationRun, UnmatchedVehicle
from connections.models.uploads import Upload
from connections.models.vehicles import Vehicle
from connections.models.webhooks import RefusedDelivery, WebhookEvent

__all__ = [
    "STATUS_BADGES",
    "STATUS_LABELS",
    "SUPERSEDED_REFUSAL",
    "SUPPORT_GROUP",
    "ApiToken",
    "Attention",
    "ConnectBatch",
    "ConnectedAccount",
    "ConsentLink",
    "ConsentLinkEvent",
    "EntryGroups",
    "Fleet",
    "LinkStatus",
    "MailMessage",
    "Membership",
    "NotificationChoice",
    "NotificationKind",
    "ReconciliationRun",
    "RefusedDelivery",
    "Region",
    "Source",
    "UnmatchedVehicle",
    "Upload",
    "UploadSummary",
    "Vehicle",
    "VinEntry",
    "VinEvent",
    "VinStatus",
    "WebhookEvent",
    "WorkerHeartbeat",
    "entry_groups",
    "new_token",
    "plate_key",
    "search_needles",
    "user_is_support",
]
