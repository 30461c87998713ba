"""Typed views of Volteras' JSON, built leniently.

Volteras adds fields and enum values without a new API version, so parsing
never fails on what it does not know: extra fields are ignored (and kept in
`raw`), an unknown enum value stays a plain string. Known values become the
`StrEnum` members below, which still compare equal to their strings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)


class GroupStatus(StrEnum):
    """A connect group's (or eligibility check's) overall state."""

    CREATED = "CREATED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class VehicleUploadStatus(StrEnum):
    """One VIN's outcome in a connect group."""

    CONNECTED = "CONNECTED"
    PROCESSING = "PROCESSING"
    PENDING = "PENDING"
    CONNECTION_REQUIRED = "CONNECTION_REQUIRED"
    INCOMPATIBLE = "INCOMPATIBLE"
    ERROR = "ERROR"


class ActionCategory(StrEnum):
    """Who must act on a per-VIN error."""

    CUSTOMER_ACTION = "CUSTOMER_ACTION"
    CONTACT_SUPPORT = "CONTACT_SUPPORT"
    UNDER_REVIEW = "UNDER_REVIEW"


class EligibilityStatus(StrEnum):
    NOT_SUPPORTED = "NOT_SUPPORTED"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    PENDING = "PENDING"
    SUBMITTED = "SUBMITTED"
    INELIGIBLE_PENDING_FAILURE_REASON = "INELIGIBLE_PENDING_FAILURE_REASON"
    ELIGIBLE = "ELIGIBLE"
    INELIGIBLE = "INELIGIBLE"
    FAILED = "FAILED"


def enum_or_str(enum: type[E], value: Any) -> E | str | None:
    if value is None:
        return None
    try:
        return enum(value)
    except ValueError:
        return str(value)


def parse_datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a cursor-paged list (`GET /v1/accounts`, `GET /v1/vehicles`)."""

    results: list[T]
    next_page_token: str | None
    total_results: int | None

    @classmethod
    def from_api(cls, data: Mapping[str, Any], item: Callable[[Any], T]) -> Page[T]:
        total = data.get("totalResults")
        return cls(
            results=[item(entry) for entry in data.get("results") or []],
            next_page_token=data.get("nextPageToken") or None,
            total_results=total if isinstance(total, int) else None,
        )


@dataclass(frozen=True)
class NumberedPage(Generic[T]):
    """One page of a numbered list (connect and eligibility results).
    `total_results` is None when the answer left the optional count out."""

    results: list[T]
    total_results: int | None
    page: int
    # The answer's request id (header or body), to quote to Volteras support.
    request_id: str = ""


@dataclass(frozen=True)
class TokenInfo:
    client_id: str
    organization_id: str

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> TokenInfo:
        return cls(client_id=data["clientId"], organization_id=data["organizationId"])


@dataclass(frozen=True)
class Account:
    """An OEM account a vehicle owner connected through the consent flow."""

    id: str
    username: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Account:
        return cls(id=data["id"], username=data.get("username") or "", raw=dict(data))


@dataclass(frozen=True)
class Vehicle:
    """`GET /v1/vehicles/{id}`: the vehicle's current connection state and VIN."""

    id: str
    vin: str
    make: str
    model: str | None = None
    model_year: str | None = None
    registration_plate: str | None = None
    connection_status: str | None = None
    connection_error_code: str | None = None
    connection_error_message: str | None = None
    action_category: ActionCategory | str | None = None
    account_id: str | None = None
    last_seen_at: datetime | None = None
    is_listening: bool | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Vehicle:
        metadata = data.get("metadata") if isinstance(data.get("metadata"), Mapping) else {}
        return cls(
            id=data["id"],
            vin=data.get("vin") or "",
            make=data.get("make") or "",
            model=data.get("model"),
            model_year=_str(data.get("modelYear")),
            registration_plate=data.get("registrationPlate"),
            connection_status=data.get("connectionStatus"),
            connection_error_code=data.get("connectionErrorCode"),
            connection_error_message=data.get("connectionErrorMessage"),
            action_category=enum_or_str(ActionCategory, data.get("actionCategory")),
            account_id=metadata.get("accountId"),
            last_seen_at=parse_datetime(metadata.get("lastSeenAt")),
            is_listening=data.get("isListening"),
            raw=dict(data),
        )


@dataclass(frozen=True)
class Tag:
    key: str
    value: str

    def to_api(self) -> dict[str, str]:
        return {"key": self.key, "value": self.value}


@dataclass(frozen=True)
class VehicleInput:
    """One VIN to connect (an entry of `POST /v1/vehicles/connect`).

    `make` is a MakeEnum value such as "MERCEDES BENZ"; `country_code` is
    ISO 3166-1 alpha-2 (the contract requires the key, null allowed).
    """

    vin: str
    make: str
    country_code: str | None
    registration_plate: str | None = None
    model: str | None = None
    model_year: int | None = None
    tags: tuple[Tag, ...] = ()

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "vin": self.vin,
            "make": self.make,
            "countryCode": self.country_code,
        }
        optional = {
            "registrationPlate": self.registration_plate,
            "model": self.model,
            "modelYear": self.model_year,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        if self.tags:
            body["tags"] = [tag.to_api() for tag in self.tags]
        return body


@dataclass(frozen=True)
class EligibilityInput:
    """One VIN to pre-check (an entry of `POST /v1/vehicles/eligibility`)."""

    vin: str
    country_code: str | None = None
    make: str | None = None

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {"vin": self.vin, "countryCode": self.country_code}
        if self.make is not None:
            body["make"] = self.make
        return body


@dataclass(frozen=True)
class ConnectGroup:
    """A bulk submission: the answer to `POST /v1/vehicles/connect` and
    `GET /v1/vehicles/connect/{id}`, and likewise for eligibility checks."""

    id: str
    status: GroupStatus | str
    created_at: datetime | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # The answer's request id (header or body), to quote to Volteras support.
    request_id: str = field(default="", compare=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> ConnectGroup:
        return cls(
            id=data["id"],
            status=enum_or_str(GroupStatus, data.get("status")) or "",
            created_at=parse_datetime(data.get("createdAt")),
            raw=dict(data),
        )


EligibilityCheck = ConnectGroup


@dataclass(frozen=True)
class VehicleInputError:
    code: str
    message: str
    action_category: ActionCategory | str | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> VehicleInputError:
        return cls(
            code=str(data.get("code") or ""),
            message=str(data.get("message") or ""),
            action_category=enum_or_str(ActionCategory, data.get("actionCategory")),
        )


@dataclass(frozen=True)
class VehicleInputResult:
    """One VIN's outcome in a connect group (`.../connect/{id}/results`)."""

    vehicle_input_id: str
    status: VehicleUploadStatus | str
    message: str = ""
    errors: tuple[VehicleInputError, ...] = ()
    can_retry: bool | None = None
    vehicle_id: str | None = None
    vin: str | None = None
    make: str | None = None
    was_already_connected: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # The request id of the results page this came in.
    request_id: str = field(default="", compare=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> VehicleInputResult:
        errors: Iterable[Any] = data.get("errors") or []
        return cls(
            vehicle_input_id=data["vehicleInputId"],
            status=enum_or_str(VehicleUploadStatus, data.get("status")) or "",
            message=data.get("message") or "",
            errors=tuple(
                VehicleInputError.from_api(error) for error in errors if isinstance(error, Mapping)
            ),
            can_retry=data.get("canRetry"),
            vehicle_id=data.get("vehicleId"),
            vin=data.get("vin"),
            make=data.get("make"),
            was_already_connected=bool(data.get("wasAlreadyConnected", False)),
            raw=dict(data),
        )

    @property
    def error_codes(self) -> list[str]:
        return [error.code for error in self.errors]


@dataclass(frozen=True)
class EligibilityResult:
    row_id: int | None
    vin: str
    status: EligibilityStatus | str
    make: str | None = None
    error_message: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> EligibilityResult:
        row_id = data.get("rowId")
        return cls(
            row_id=row_id if isinstance(row_id, int) else None,
            vin=data.get("vin") or "",
            status=enum_or_str(EligibilityStatus, data.get("status")) or "",
            make=data.get("make"),
            error_message=data.get("errorMessage"),
            raw=dict(data),
        )
