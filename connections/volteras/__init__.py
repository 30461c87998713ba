"""The Volteras API client: the only code in the portal that speaks HTTP to
Volteras (or to the offline sandbox, which it cannot tell apart).

    from connections.volteras import get_client, VehicleInput, AmbiguousWrite

    group = get_client().connect_vehicles([VehicleInput(vin, "VOLKSWAGEN", "GB")])
"""

from __future__ import annotations

import threading

from django.conf import settings

from connections.volteras.client import MAX_CONNECT_VEHICLES, MAX_ELIGIBILITY_VINS, VolterasClient
from connections.volteras.errors import (
    AmbiguousWrite,
    AuthenticationError,
    NetworkError,
    NotFound,
    NotPermitted,
    PageTokenExpired,
    RateLimited,
    ServerError,
    UnexpectedResponse,
    ValidationError,
    VolterasError,
)
from connections.volteras.types import (
    Account,
    ActionCategory,
    ConnectGroup,
    EligibilityCheck,
    EligibilityInput,
    EligibilityResult,
    EligibilityStatus,
    GroupStatus,
    NumberedPage,
    Page,
    Tag,
    TokenInfo,
    Vehicle,
    VehicleInput,
    VehicleInputError,
    VehicleInputResult,
    VehicleUploadStatus,
)

__all__ = [
    "MAX_CONNECT_VEHICLES",
    "MAX_ELIGIBILITY_VINS",
    "Account",
    "ActionCategory",
    "AmbiguousWrite",
    "AuthenticationError",
    "ConnectGroup",
    "EligibilityCheck",
    "EligibilityInput",
    "EligibilityResult",
    "EligibilityStatus",
    "GroupStatus",
    "NetworkError",
    "NotFound",
    "NotPermitted",
    "NumberedPage",
    "Page",
    "PageTokenExpired",
    "RateLimited",
    "ServerError",
    "Tag",
    "TokenInfo",
    "UnexpectedResponse",
    "ValidationError",
    "Vehicle",
    "VehicleInput",
    "VehicleInputError",
    "VehicleInputResult",
    "VehicleUploadStatus",
    "VolterasClient",
    "VolterasError",
    "get_client",
]

_clients: dict[tuple[str, str, str, float, int], VolterasClient] = {}
_clients_lock = threading.Lock()


def get_client() -> VolterasClient:
    """The client for the configured API, one per process (it holds a connection
    pool). Built afresh when the settings change, as they do under
    `override_settings` in tests."""
    key = (
        settings.VOLTERAS_API_URL,
        settings.VOLTERAS_CLIENT_ID,
        settings.VOLTERAS_CLIENT_SECRET,
        float(settings.VOLTERAS_TIMEOUT),
        int(settings.VOLTERAS_MAX_RETRIES),
    )
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = VolterasClient(key[0], key[1], key[2], timeout=key[3], max_retries=key[4])
            _clients[key] = client
        return client
