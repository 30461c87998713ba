"""`VolterasClient`: the operations the portal uses, typed.

Every call goes through `VolterasHttp` (timeouts, retries, error mapping) with
a bearer token from `TokenStore`. A 401 renews the token once and repeats the
call: a rejected token means the request was not processed, so repeating is
safe even for a write. For the same reason a POST answered 429 (rate limited:
nothing was applied) is sent again after the Retry-After wait, like a GET;
only a failure after the request may have been applied raises `AmbiguousWrite`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from connections.volteras.auth import TokenStore
from connections.volteras.errors import (
    AuthenticationError,
    UnexpectedResponse,
    request_id_of,
)
from connections.volteras.http import VolterasHttp
from connections.volteras.paging import all_numbered, follow
from connections.volteras.types import (
    Account,
    ConnectGroup,
    EligibilityCheck,
    EligibilityInput,
    EligibilityResult,
    NumberedPage,
    Page,
    TokenInfo,
    Vehicle,
    VehicleInput,
    VehicleInputResult,
)

T = TypeVar("T")

MAX_CONNECT_VEHICLES = 100
MAX_ELIGIBILITY_VINS = 500
RESULTS_PAGE_SIZE = 100


def _with_request_id(parsed: T, request_id: str) -> T:
    """Stamp an answer (and a page's items) with the request id Volteras gave
    it, for types that keep one: a timeline can then quote it to support."""
    if not request_id or not dataclasses.is_dataclass(parsed):
        return parsed
    names = {f.name for f in dataclasses.fields(parsed)}
    if "request_id" not in names:
        return parsed
    changes: dict[str, Any] = {"request_id": request_id}
    if "results" in names:
        changes["results"] = [_with_request_id(item, request_id) for item in parsed.results]
    return dataclasses.replace(parsed, **changes)


def _segment(value: str) -> str:
    """An id as one path segment: never lets a stray "/" or "?" reshape the URL."""
    if not value:
        raise ValueError("an id is required")
    return quote(str(value), safe="")


class VolterasClient:
    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        timeout: float = 15.0,
        max_retries: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        event_hooks: Mapping[str, list[Callable[..., Any]]] | None = None,
        **http_options: Any,
    ) -> None:
        self.http = VolterasHttp(
            base_url,
            timeout=timeout,
            max_retries=max_retries,
            sleep=sleep,
            transport=transport,
            event_hooks=event_hooks,
            **http_options,
        )
        self.tokens = TokenStore(self.http, base_url, client_id, client_secret)

    @property
    def base_url(self) -> str:
        return self.http.base_url

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> VolterasClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # The authenticated call every operation uses.

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        token = self.tokens.get()
        try:
            return self.http.request(method, path, headers=self._bearer(token), **kwargs)
        except AuthenticationError as exc:
            if exc.status != 401:
                raise
        token = self.tokens.renew(rejected=token)
        return self.http.request(method, path, headers=self._bearer(token), **kwargs)

    @staticmethod
    def _bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def _json(self, method: str, path: str, parse: Callable[[Any], T], **kwargs: Any) -> T:
        response = self._call(method, path, **kwargs)
        try:
            body = response.json()
            parsed = parse(body)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UnexpectedResponse(
                f"{method} {path}: answer does not match the contract "
                f"({exc.__class__.__name__}: {exc})",
                status=response.status_code,
                request_id=response.headers.get("x-request-id"),
            ) from exc
        return _with_request_id(parsed, request_id_of(response, body) or "")

    # Authentication.

    def test_token(self) -> TokenInfo:
        """Who the credentials belong to; a cheap end-to-end check of auth."""
        return self._json("POST", "/v1/oauth2/test-token", TokenInfo.from_api, idempotent=True)

    # Accounts and the consent flow.

    def connect_account(
        self,
        *,
        scopes: Sequence[str],
        device_types: Sequence[str],
        return_url: str | None = None,
        locale: str | None = None,
        integration_method: str | None = None,
        charger_location_latitude: float | str | None = None,
        charger_location_longitude: float | str | None = None,
        country_code: str | None = None,
        makes: Sequence[str] | None = None,
        url_expiration: int | None = None,
        region: str | None = None,
        vin: str | None = None,
        model: str | None = None,
        model_year: int | None = None,
    ) -> str:
        """Create a consent-flow link; returns its `authenticationUrl`."""
        if not scopes or not device_types:
            raise ValueError("scopes and device_types each need at least one value")
        if url_expiration is not None and not 3600 <= url_expiration <= 1209600:
            raise ValueError("url_expiration must be between 3600 and 1209600 seconds")
        fields: dict[str, Any] = {
            "scopes": list(scopes),
            "deviceTypes": list(device_types),
            "returnUrl": return_url,
            "locale": locale,
            "integrationMethod": integration_method,
            "chargerLocationLatitude": charger_location_latitude,
            "chargerLocationLongitude": charger_location_longitude,
            "countryCode": country_code,
            "makes": list(makes) if makes is not None else None,
            "urlExpiration": url_expiration,
            "region": region,
            "vin": vin,
            "model": model,
            "modelYear": model_year,
        }
        body = {key: value for key, value in fields.items() if value is not None}
        return self._json(
            "POST", "/v1/accounts:connect", lambda data: str(data["authenticationUrl"]), json=body
        )

    def accounts_page(
        self, page_token: str | None = None, page_size: int | None = None
    ) -> Page[Account]:
        return self._json(
            "GET",
            "/v1/accounts",
            lambda data: Page.from_api(data, Account.from_api),
            params={"pageToken": page_token, "maxPageSize": page_size},
        )

    def list_accounts(self, page_size: int | None = None) -> Iterator[Account]:
        """Every connected account, following `nextPageToken` lazily (restarting
        the query if its page token expires, see `paging.follow`)."""
        return follow(lambda token: self.accounts_page(token, page_size))

    def get_account(self, account_id: str) -> Account:
        return self._json("GET", f"/v1/accounts/{_segment(account_id)}", Account.from_api)

    def disconnect_account(self, account_id: str) -> None:
        self._call("POST", f"/v1/accounts/{_segment(account_id)}:disconnect")

    # Connecting VINs.

    def connect_vehicles(
        self, vehicles: Sequence[VehicleInput], *, wait_when_rate_limited: bool = True
    ) -> ConnectGroup:
        """Submit up to 100 VINs; returns the group to poll. Checked before sending.

        With `wait_when_rate_limited=False` a 429 is raised as `RateLimited`
        (with its `retry_after`) instead of being waited out in-process."""
        if not vehicles:
            raise ValueError("connect_vehicles needs at least one vehicle")
        if len(vehicles) > MAX_CONNECT_VEHICLES:
            raise ValueError(
                f"Volteras accepts at most {MAX_CONNECT_VEHICLES} vehicles per request, "
                f"got {len(vehicles)}"
            )
        body = {"vehicles": [vehicle.to_api() for vehicle in vehicles]}
        return self._json(
            "POST",
            "/v1/vehicles/connect",
            ConnectGroup.from_api,
            json=body,
            wait_when_rate_limited=wait_when_rate_limited,
        )

    def get_connect_group(self, group_id: str) -> ConnectGroup:
        return self._json(
            "GET", f"/v1/vehicles/connect/{_segment(group_id)}", ConnectGroup.from_api
        )

    def connect_results_page(
        self, group_id: str, page: int = 0, page_size: int = RESULTS_PAGE_SIZE
    ) -> NumberedPage[VehicleInputResult]:
        return self._numbered_page(
            f"/v1/vehicles/connect/{_segment(group_id)}/results",
            VehicleInputResult.from_api,
            page,
            page_size,
        )

    def connect_results(
        self, group_id: str, page_size: int = RESULTS_PAGE_SIZE
    ) -> list[VehicleInputResult]:
        """Every per-VIN result of a group, reading pages from 0 until all are in
        (see `paging.all_numbered` for when that is)."""
        return all_numbered(
            lambda page: self.connect_results_page(group_id, page, page_size), page_size
        )

    # Eligibility pre-check.

    def check_eligibility(self, entries: Sequence[EligibilityInput | str]) -> EligibilityCheck:
        """Submit up to 500 VINs (bare strings or `EligibilityInput`) for a pre-check."""
        items = [EligibilityInput(e) if isinstance(e, str) else e for e in entries]
        if not items:
            raise ValueError("check_eligibility needs at least one VIN")
        if len(items) > MAX_ELIGIBILITY_VINS:
            raise ValueError(
                f"Volteras accepts at most {MAX_ELIGIBILITY_VINS} VINs per check, got {len(items)}"
            )
        body = {"vins": [item.to_api() for item in items]}
        return self._json("POST", "/v1/vehicles/eligibility", ConnectGroup.from_api, json=body)

    def eligibility_results_page(
        self, check_id: str, page: int = 0, page_size: int = RESULTS_PAGE_SIZE
    ) -> NumberedPage[EligibilityResult]:
        return self._numbered_page(
            f"/v1/vehicles/eligibility/{_segment(check_id)}/results",
            EligibilityResult.from_api,
            page,
            page_size,
        )

    def eligibility_results(
        self, check_id: str, page_size: int = RESULTS_PAGE_SIZE
    ) -> list[EligibilityResult]:
        return all_numbered(
            lambda page: self.eligibility_results_page(check_id, page, page_size), page_size
        )

    # Vehicles.

    def vehicles_page(
        self,
        page_token: str | None = None,
        page_size: int | None = None,
        *,
        tag_key: str | None = None,
        tag_value: str | None = None,
    ) -> Page[Vehicle]:
        return self._json(
            "GET",
            "/v1/vehicles",
            lambda data: Page.from_api(data, Vehicle.from_api),
            params={
                "pageToken": page_token,
                "maxPageSize": page_size,
                "tagKey": tag_key,
                "tagValue": tag_value,
            },
        )

    def list_vehicles(
        self,
        page_size: int | None = None,
        *,
        tag_key: str | None = None,
        tag_value: str | None = None,
    ) -> Iterator[Vehicle]:
        """Every connected vehicle, following `nextPageToken` lazily (restarting
        the query if its page token expires, see `paging.follow`)."""
        return follow(
            lambda token: self.vehicles_page(token, page_size, tag_key=tag_key, tag_value=tag_value)
        )

    def get_vehicle(self, vehicle_id: str) -> Vehicle:
        return self._json("GET", f"/v1/vehicles/{_segment(vehicle_id)}", Vehicle.from_api)

    def disconnect_vehicle(self, vehicle_id: str) -> None:
        """Irreversible; Volteras processes it asynchronously (200 or 202)."""
        self._call("DELETE", f"/v1/vehicles/{_segment(vehicle_id)}")

    def _numbered_page(
        self, path: str, item: Callable[[Any], T], page: int, page_size: int
    ) -> NumberedPage[T]:
        def parse(data: Any) -> NumberedPage[T]:
            total = data.get("totalResults")
            return NumberedPage(
                results=[item(entry) for entry in data.get("results") or []],
                total_results=total if isinstance(total, int) else None,
                page=page,
            )

        return self._json(
            "GET", path, parse, params={"currentPage": page, "maxPageSize": page_size}
        )
