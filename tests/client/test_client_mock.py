"""The Volteras client against `httpx.MockTransport`: the cases a real server
cannot produce on demand (dropped connections at exact moments, odd bodies,
unknown fields) and the exact requests the client sends."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import httpx
import pytest
import time_machine
from django.db import DatabaseError, connection, transaction
from django.test import override_settings
from django.utils import timezone

from connections.models import ApiToken
from connections.volteras import (
    AmbiguousWrite,
    AuthenticationError,
    ConnectGroup,
    EligibilityInput,
    GroupStatus,
    NetworkError,
    NotFound,
    NotPermitted,
    PageTokenExpired,
    RateLimited,
    ServerError,
    Tag,
    UnexpectedResponse,
    ValidationError,
    VehicleInput,
    VehicleUploadStatus,
    VolterasClient,
    VolterasError,
    get_client,
)
from connections.volteras.errors import parse_retry_after
from connections.volteras.http import VolterasHttp
from tests.contract import validate_request

API = "https://api.example.test"
VIN = "WVWZZZ1JZXW000001"
VEHICLE = {
    "id": "veh_1",
    "vin": VIN,
    "make": "VOLKSWAGEN",
    "metadata": {"lastSeenAt": None, "consentId": None, "accountId": "acc_1"},
    "connectionStatus": "CONNECTED",
}

Handler = Callable[[httpx.Request], httpx.Response]


def envelope(code: str, message: str = "nope", request_id: str = "req-1") -> dict:
    return {
        "requestId": request_id,
        "timestamp": "2026-01-01T00:00:00Z",
        "error": code,
        "message": message,
        "data": {},
    }


class FakeVolteras:
    """Answers the token endpoint itself and hands everything else to `handler`;
    records every request so tests can assert on what was sent."""

    def __init__(self, handler: Handler | None = None, expires_in: int = 3600) -> None:
        self.handler = handler or (lambda request: httpx.Response(404))
        self.expires_in = expires_in
        self.requests: list[httpx.Request] = []
        self.token_requests: list[dict[str, list[str]]] = []
        self.refusing_refresh = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/v1/oauth2/token":
            form = parse_qs(request.content.decode())
            self.token_requests.append(form)
            if self.refusing_refresh and form["grant_type"] == ["refresh_token"]:
                return httpx.Response(401, json=envelope("AUTHENTICATION_ERROR"))
            number = len(self.token_requests)
            return httpx.Response(
                200,
                json={
                    "access_token": f"access-{number}",
                    "token_type": "Bearer",
                    "expires_in": self.expires_in,
                    "refresh_token": f"refresh-{number}",
                },
            )
        return self.handler(request)

    @property
    def api_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path != "/v1/oauth2/token"]


def conforming_request(request: httpx.Request) -> None:
    """Event hook: every request the client sends must be one the contract accepts.
    (The answers here are deliberately odd; the sandbox tests check real ones.)"""
    path = request.url.raw_path.decode().partition("?")[0]
    validate_request(
        request.method, path, request.headers, request.content, request.url.query.decode()
    )


@pytest.fixture
def make_client(db, sleeps):
    clients: list[VolterasClient] = []

    def make(fake: FakeVolteras, **options) -> VolterasClient:
        options.setdefault("max_retries", 3)
        options.setdefault("jitter", lambda: 0.5)
        client = VolterasClient(
            API,
            "client-id",
            "client-secret",
            timeout=2.0,
            sleep=sleeps,
            transport=httpx.MockTransport(fake),
            event_hooks={"request": [conforming_request]},
            **options,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def answer(status: int = 200, body=None, headers=None) -> Handler:
    return lambda request: httpx.Response(status, json=body, headers=headers)


def sequence(*responses: httpx.Response | Exception) -> Handler:
    """Answers (or raises) the given items in order, one per request."""
    remaining = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        item = remaining.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return handler


# Authentication and the shared token.


def test_token_request_uses_basic_auth_and_form_body(make_client):
    fake = FakeVolteras(answer(200, {"clientId": "client-id", "organizationId": "org_1"}))
    info = make_client(fake).test_token()

    assert (info.client_id, info.organization_id) == ("client-id", "org_1")
    token_request = fake.requests[0]
    assert token_request.method == "POST"
    assert token_request.url.path == "/v1/oauth2/token"
    assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
    expected = base64.b64encode(b"client-id:client-secret").decode()
    assert token_request.headers["authorization"] == f"Basic {expected}"
    assert fake.token_requests == [{"grant_type": ["client_credentials"]}]
    call = fake.api_requests[0]
    assert call.headers["authorization"] == "Bearer access-1"
    row = ApiToken.objects.get(api_url=API)
    assert row.access_token == "access-1"
    assert row.refresh_token == "refresh-1"
    assert abs((row.expires_at - timezone.now()) - timedelta(seconds=3600)) < timedelta(seconds=5)


def test_token_is_reused_until_shortly_before_expiry_then_refreshed(make_client):
    fake = FakeVolteras(answer(200, VEHICLE), expires_in=600)
    client = make_client(fake)
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        client.get_vehicle("veh_1")
        traveller.shift(timedelta(seconds=530))  # still outside the 60 s margin
        client.get_vehicle("veh_1")
        assert len(fake.token_requests) == 1
        traveller.shift(timedelta(seconds=20))  # inside the margin: renew
        client.get_vehicle("veh_1")

    assert fake.token_requests[1] == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["refresh-1"],
    }
    assert [r.headers["authorization"] for r in fake.api_requests] == [
        "Bearer access-1",
        "Bearer access-1",
        "Bearer access-2",
    ]


def test_refused_refresh_falls_back_to_client_credentials(make_client):
    fake = FakeVolteras(answer(200, VEHICLE), expires_in=600)
    fake.refusing_refresh = True
    client = make_client(fake)
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        client.get_vehicle("veh_1")
        traveller.shift(timedelta(seconds=700))
        client.get_vehicle("veh_1")

    grants = [form["grant_type"][0] for form in fake.token_requests]
    assert grants == ["client_credentials", "refresh_token", "client_credentials"]
    assert fake.api_requests[-1].headers["authorization"] == "Bearer access-3"


def test_two_clients_share_one_token_through_the_database(make_client):
    fake = FakeVolteras(answer(200, VEHICLE))
    make_client(fake).get_vehicle("veh_1")
    make_client(fake).get_vehicle("veh_1")

    assert len(fake.token_requests) == 1
    assert {r.headers["authorization"] for r in fake.api_requests} == {"Bearer access-1"}


def test_renewal_uses_a_token_another_process_stored_meanwhile(make_client):
    fake = FakeVolteras(answer(200, VEHICLE))
    first, second = make_client(fake), make_client(fake)
    first.get_vehicle("veh_1")
    second.get_vehicle("veh_1")
    # The first client is told its token is bad and renews; the second then gets
    # a 401 for the old token and must pick up the renewed one, not fetch again.
    first.tokens.renew(rejected="access-1")
    token = second.tokens.renew(rejected="access-1")

    assert token == "access-2"
    assert len(fake.token_requests) == 2


def stale_token_row(renewing_until: datetime | None) -> ApiToken:
    """A stored token past its expiry, perhaps being renewed by another process."""
    now = timezone.now()
    return ApiToken.objects.create(
        api_url=API,
        access_token="old",
        refresh_token="refresh-old",
        expires_at=now - timedelta(seconds=1),
        renewing_until=renewing_until,
    )


def test_the_token_request_runs_outside_any_transaction(make_client):
    """Holding the row lock (SQLite's write lock) across a slow, retried token
    request made every other writer wait, then fail with "database is locked"."""
    depth = len(connection.atomic_blocks)  # the test's own transaction
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/oauth2/token":
            seen.append(len(connection.atomic_blocks))
        return fake_volteras(request)

    fake_volteras = FakeVolteras(answer(200, VEHICLE))
    make_client(handler).get_vehicle("veh_1")

    assert seen == [depth]
    row = ApiToken.objects.get(api_url=API)
    assert (row.access_token, row.renewing_until) == ("access-1", None)


def test_a_renewal_in_progress_elsewhere_is_waited_for_not_repeated(make_client):
    stale_token_row(renewing_until=timezone.now() + timedelta(seconds=30))
    fake = FakeVolteras(answer(200, VEHICLE))
    client = make_client(fake)
    waits: list[float] = []

    def other_process_finishes(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:
            ApiToken.objects.filter(api_url=API).update(
                access_token="theirs",
                expires_at=timezone.now() + timedelta(hours=1),
                updated_at=timezone.now(),
                renewing_until=None,
            )

    client.tokens.wait = other_process_finishes
    assert client.tokens.get() == "theirs"
    assert len(waits) == 3
    assert fake.token_requests == []


def test_a_lease_left_by_a_dead_renewer_is_taken_over(make_client):
    stale_token_row(renewing_until=timezone.now() - timedelta(seconds=1))
    fake = FakeVolteras(answer(200, VEHICLE))
    client = make_client(fake)
    client.tokens.wait = lambda seconds: pytest.fail("waited for a lease that had expired")

    assert client.tokens.get() == "access-1"
    assert fake.token_requests == [
        {"grant_type": ["refresh_token"], "refresh_token": ["refresh-old"]}
    ]


def test_a_failed_renewal_releases_its_lease(make_client):
    stale_token_row(renewing_until=None)

    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json=envelope("AUTHENTICATION_ERROR", "bad client"))

    with pytest.raises(AuthenticationError):
        make_client(refuse).tokens.get()
    row = ApiToken.objects.get(api_url=API)
    assert (row.access_token, row.renewing_until) == ("old", None)


def test_a_renewal_that_outlived_its_lease_keeps_the_newer_token(make_client):
    stale_token_row(renewing_until=None)
    fake = FakeVolteras(answer(200, VEHICLE))

    def slow_then_overtaken(request: httpx.Request) -> httpx.Response:
        # While this request is in flight, another process takes the lease
        # over and stores its own token.
        ApiToken.objects.filter(api_url=API).update(
            access_token="newer",
            refresh_token="refresh-newer",
            expires_at=timezone.now() + timedelta(hours=1),
            renewing_until=None,
        )
        return fake(request)

    token = make_client(slow_then_overtaken).tokens.get()

    assert token == "access-1"  # valid, and good for this call
    row = ApiToken.objects.get(api_url=API)
    assert (row.access_token, row.refresh_token) == ("newer", "refresh-newer")


def test_401_renews_once_and_repeats_the_call(make_client):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] == "Bearer access-1":
            return httpx.Response(401, json=envelope("AUTHENTICATION_ERROR"))
        return httpx.Response(200, json=VEHICLE)

    fake = FakeVolteras(handler)
    vehicle = make_client(fake).get_vehicle("veh_1")

    assert vehicle.id == "veh_1"
    assert len(fake.token_requests) == 2
    assert len(fake.api_requests) == 2


def test_a_second_401_is_raised_not_looped(make_client):
    fake = FakeVolteras(answer(401, envelope("AUTHENTICATION_ERROR", request_id="req-401")))
    with pytest.raises(AuthenticationError) as caught:
        make_client(fake).get_vehicle("veh_1")

    assert caught.value.status == 401
    assert caught.value.request_id == "req-401"
    assert len(fake.api_requests) == 2
    assert len(fake.token_requests) == 2


def test_bad_credentials_raise_authentication_error(make_client):
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json=envelope("AUTHENTICATION_ERROR", "bad client"))

    client = VolterasClient(API, "x", "y", transport=httpx.MockTransport(refuse))
    with pytest.raises(AuthenticationError) as caught:
        client.get_vehicle("veh_1")
    assert caught.value.code == "AUTHENTICATION_ERROR"
    assert ApiToken.objects.get(api_url=API).access_token == ""


def test_token_answer_without_a_token_is_unexpected(make_client):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"token_type": "Bearer"})

    client = VolterasClient(API, "x", "y", transport=httpx.MockTransport(handler))
    with pytest.raises(UnexpectedResponse):
        client.test_token()


# Error mapping.


@pytest.mark.parametrize(
    ("status", "code", "family"),
    [
        (401, "AUTHENTICATION_ERROR", AuthenticationError),
        (400, "REQUEST_VALIDATION_ERROR", ValidationError),
        (422, "REQUEST_VALIDATION_ERROR", ValidationError),
        (400, "PAGE_SIZE_TOO_LARGE", ValidationError),
        (400, "QUERY_PAGE_TOKEN_EXPIRED", PageTokenExpired),
        (404, "RESOURCE_NOT_FOUND", NotFound),
        (403, "NOT_PERMITTED", NotPermitted),
        (403, "DEVICE_LIMIT_REACHED", NotPermitted),
        (400, "DEVICE_LIMIT_REACHED", NotPermitted),
        (429, "SOMETHING_NEW", RateLimited),
        (500, "SERVER_ERROR", ServerError),
        (503, "SOMETHING_NEW", ServerError),
        (418, "SOMETHING_NEW", VolterasError),
        (403, "SOMETHING_NEW", NotPermitted),
    ],
)
def test_error_envelope_maps_to_its_family(make_client, status, code, family):
    fake = FakeVolteras(answer(status, envelope(code, "what went wrong", "req-42")))
    client = make_client(fake, max_retries=0)
    with pytest.raises(VolterasError) as caught:
        client.get_account("acc_1")

    error = caught.value
    assert type(error) is family
    assert (error.code, error.status, error.request_id) == (code, status, "req-42")
    assert error.message == "what went wrong"
    assert "req-42" in str(error)


def test_non_json_error_body_still_maps_by_status(make_client):
    page = "<html><body>Bad gateway from the proxy</body></html>"
    fake = FakeVolteras(lambda request: httpx.Response(502, text=page))
    with pytest.raises(ServerError) as caught:
        make_client(fake, max_retries=0).get_account("acc_1")
    assert caught.value.code is None
    assert caught.value.status == 502
    assert "Bad gateway" in caught.value.message


def test_framework_validation_body_maps_to_validation_error(make_client):
    body = {"detail": [{"loc": ["body", "vehicles"], "msg": "field required"}]}
    fake = FakeVolteras(answer(422, body, headers={"x-request-id": "req-hdr"}))
    with pytest.raises(ValidationError) as caught:
        make_client(fake).get_account("acc_1")
    assert caught.value.data == body["detail"]
    assert caught.value.request_id == "req-hdr"
    assert caught.value.message == "HTTP 422 Unprocessable Entity"


def test_empty_error_body_maps_by_status(make_client):
    fake = FakeVolteras(lambda request: httpx.Response(404))
    with pytest.raises(NotFound) as caught:
        make_client(fake).get_account("acc_1")
    assert caught.value.message == "HTTP 404 Not Found"


# Retries of reads.


def test_get_is_retried_on_5xx_with_backoff_then_succeeds(make_client, sleeps):
    fake = FakeVolteras(
        sequence(
            httpx.Response(500, json=envelope("SERVER_ERROR")),
            httpx.Response(503, text="unavailable"),
            httpx.Response(200, json=VEHICLE),
        )
    )
    vehicle = make_client(fake).get_vehicle("veh_1")

    assert vehicle.vin == VIN
    # jitter 0.5: three quarters of 0.5 s, then of 1 s.
    assert sleeps == [0.375, 0.75]


def test_get_gives_up_after_max_retries(make_client, sleeps):
    fake = FakeVolteras(answer(500, envelope("SERVER_ERROR")))
    with pytest.raises(ServerError):
        make_client(fake, max_retries=2).get_vehicle("veh_1")
    assert len(fake.api_requests) == 3
    assert len(sleeps) == 2


def test_get_honours_retry_after_on_429(make_client, sleeps):
    fake = FakeVolteras(
        sequence(
            httpx.Response(429, json=envelope("RATE_LIMITED"), headers={"Retry-After": "7"}),
            httpx.Response(200, json=VEHICLE),
        )
    )
    make_client(fake).get_vehicle("veh_1")
    assert sleeps == [7.0]


def test_429_with_a_long_retry_after_is_raised_for_the_caller(make_client, sleeps):
    fake = FakeVolteras(answer(429, envelope("RATE_LIMITED"), headers={"Retry-After": "900"}))
    with pytest.raises(RateLimited) as caught:
        make_client(fake).get_vehicle("veh_1")
    assert caught.value.retry_after == 900.0
    assert sleeps == []
    assert len(fake.api_requests) == 1


def test_get_is_retried_on_network_errors(make_client, sleeps):
    fake = FakeVolteras(
        sequence(
            httpx.ReadTimeout("slow"),
            httpx.RemoteProtocolError("dropped"),
            httpx.ConnectError("refused"),
            httpx.Response(200, json=VEHICLE),
        )
    )
    assert make_client(fake).get_vehicle("veh_1").id == "veh_1"
    assert len(sleeps) == 3


def test_get_network_failure_becomes_network_error(make_client):
    fake = FakeVolteras(sequence(*[httpx.ReadTimeout("slow")] * 3))
    with pytest.raises(NetworkError) as caught:
        make_client(fake, max_retries=2).get_vehicle("veh_1")
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
    assert caught.value.status is None


def test_backoff_grows_and_is_capped_and_jittered():
    http = VolterasHttp(API, timeout=1, max_retries=9, jitter=lambda: 1.0, backoff_cap=4.0)
    assert [http.backoff(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    http.jitter = lambda: 0.0
    assert http.backoff(3) == 1.0
    http.close()


@pytest.mark.parametrize(
    ("header", "expected"), [("3", 3.0), ("0.5", 0.5), ("-1", 0.0), ("soon", None), ("", None)]
)
def test_retry_after_parsing(header, expected):
    assert parse_retry_after(header) == expected


def test_retry_after_as_http_date():
    with time_machine.travel("2026-03-01 12:00:00Z", tick=False):
        assert parse_retry_after("Sun, 01 Mar 2026 12:00:30 GMT") == 30.0


# Writes: never repeated blindly.


def test_post_connect_error_before_sending_is_retried(make_client, sleeps):
    group = {"id": "grp_1", "status": "CREATED", "createdAt": "2026-01-01T00:00:00Z"}
    fake = FakeVolteras(sequence(httpx.ConnectError("refused"), httpx.Response(202, json=group)))
    result = make_client(fake).connect_vehicles([VehicleInput(VIN, "VOLKSWAGEN", "GB")])
    assert result.id == "grp_1"
    assert len(fake.api_requests) == 2
    assert len(sleeps) == 1


def test_post_connect_errors_exhausted_is_a_network_error_not_ambiguous(make_client):
    fake = FakeVolteras(sequence(*[httpx.ConnectTimeout("no route")] * 2))
    with pytest.raises(NetworkError) as caught:
        make_client(fake, max_retries=1).connect_vehicles([VehicleInput(VIN, "KIA", "DE")])
    assert not isinstance(caught.value, AmbiguousWrite)


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("waited"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("connection reset"),
        httpx.WriteTimeout("half sent"),
    ],
)
def test_post_failure_after_sending_is_ambiguous_and_not_retried(make_client, sleeps, failure):
    fake = FakeVolteras(sequence(failure))
    with pytest.raises(AmbiguousWrite) as caught:
        make_client(fake).connect_vehicles([VehicleInput(VIN, "VOLKSWAGEN", "GB")])
    assert (caught.value.method, caught.value.path) == ("POST", "/v1/vehicles/connect")
    assert len(fake.api_requests) == 1
    assert sleeps == []


def test_delete_timeout_is_ambiguous(make_client):
    fake = FakeVolteras(sequence(httpx.ReadTimeout("waited")))
    with pytest.raises(AmbiguousWrite) as caught:
        make_client(fake).disconnect_vehicle("veh_1")
    assert caught.value.method == "DELETE"
    assert len(fake.api_requests) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_post_server_error_is_ambiguous_and_not_retried(make_client, sleeps, status):
    """A 5xx on `POST /v1/vehicles/connect` may come after Volteras stored the
    group: the caller must read back, not send a second group."""
    fake = FakeVolteras(answer(status, envelope("SERVER_ERROR", request_id="req-5xx")))
    with pytest.raises(AmbiguousWrite) as caught:
        make_client(fake).connect_vehicles([VehicleInput(VIN, "VOLKSWAGEN", "GB")])
    error = caught.value
    assert (error.method, error.path) == ("POST", "/v1/vehicles/connect")
    assert (error.status, error.code, error.request_id) == (status, "SERVER_ERROR", "req-5xx")
    assert len(fake.api_requests) == 1
    assert sleeps == []


def test_a_refused_post_is_not_ambiguous(make_client):
    fake = FakeVolteras(answer(422, envelope("REQUEST_VALIDATION_ERROR")))
    with pytest.raises(ValidationError):
        make_client(fake).connect_vehicles([VehicleInput(VIN, "VOLKSWAGEN", "GB")])


def test_post_gateway_timeout_is_ambiguous(make_client):
    fake = FakeVolteras(lambda request: httpx.Response(504, text="upstream timed out"))
    with pytest.raises(AmbiguousWrite) as caught:
        make_client(fake).disconnect_account("acc_1")
    assert caught.value.status == 504
    assert len(fake.api_requests) == 1


def test_post_429_is_retried_after_retry_after(make_client, sleeps):
    group = {"id": "grp_1", "status": "CREATED", "createdAt": "2026-01-01T00:00:00Z"}
    fake = FakeVolteras(
        sequence(
            httpx.Response(429, json=envelope("RATE_LIMITED"), headers={"Retry-After": "2"}),
            httpx.Response(202, json=group),
        )
    )
    make_client(fake).connect_vehicles([VehicleInput(VIN, "VOLKSWAGEN", "GB")])
    assert sleeps == [2.0]
    assert len(fake.api_requests) == 2


def test_401_on_a_write_is_repeated_once_with_a_new_token(make_client):
    group = {"id": "grp_1", "status": "CREATED", "createdAt": "2026-01-01T00:00:00Z"}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] == "Bearer access-1":
            return httpx.Response(401, json=envelope("AUTHENTICATION_ERROR"))
        return httpx.Response(202, json=group)

    fake = FakeVolteras(handler)
    make_client(fake).connect_vehicles([VehicleInput(VIN, "VOLKSWAGEN", "GB")])
    assert [json.loads(r.content)["vehicles"][0]["vin"] for r in fake.api_requests] == [VIN] * 2


# Operations: what is sent, what comes back.


def test_connect_vehicles_refuses_more_than_100_before_sending(make_client):
    fake = FakeVolteras()
    client = make_client(fake)
    vehicles = [VehicleInput(f"WVWZZZ1JZXW{n:06d}", "VOLKSWAGEN", "GB") for n in range(101)]
    with pytest.raises(ValueError, match="at most 100"):
        client.connect_vehicles(vehicles)
    with pytest.raises(ValueError):
        client.connect_vehicles([])
    assert fake.requests == []


def test_connect_vehicles_sends_the_contract_shape(make_client):
    group = {"id": "grp_1", "status": "PROCESSING", "createdAt": "2026-01-01T10:00:00Z"}
    fake = FakeVolteras(answer(202, group))
    result = make_client(fake).connect_vehicles(
        [
            VehicleInput(
                VIN,
                "MERCEDES BENZ",
                "DE",
                registration_plate="B-XY 123",
                model="EQA",
                model_year=2023,
                tags=(Tag("cost-centre", "north"),),
            ),
            VehicleInput("WVWZZZ1JZXW000002", "VOLKSWAGEN", None),
        ]
    )
    sent = json.loads(fake.api_requests[0].content)
    assert sent == {
        "vehicles": [
            {
                "vin": VIN,
                "make": "MERCEDES BENZ",
                "countryCode": "DE",
                "registrationPlate": "B-XY 123",
                "model": "EQA",
                "modelYear": 2023,
                "tags": [{"key": "cost-centre", "value": "north"}],
            },
            {"vin": "WVWZZZ1JZXW000002", "make": "VOLKSWAGEN", "countryCode": None},
        ]
    }
    assert result.status is GroupStatus.PROCESSING
    assert result.created_at == datetime(2026, 1, 1, 10, tzinfo=UTC)


def test_connect_account_sends_only_given_fields(make_client):
    fake = FakeVolteras(answer(200, {"authenticationUrl": "https://flow.example/abc"}))
    url = make_client(fake).connect_account(
        scopes=["vehicle:all"],
        device_types=["VEHICLE"],
        makes=["BMW"],
        region="EUROPE",
        locale="de-DE",
        return_url="https://portal.example/return",
        url_expiration=7200,
        vin=VIN,
        model="i4",
        model_year=2024,
        country_code="DE",
    )
    assert url == "https://flow.example/abc"
    request = fake.api_requests[0]
    assert request.url.path == "/v1/accounts:connect"
    assert json.loads(request.content) == {
        "scopes": ["vehicle:all"],
        "deviceTypes": ["VEHICLE"],
        "makes": ["BMW"],
        "region": "EUROPE",
        "locale": "de-DE",
        "returnUrl": "https://portal.example/return",
        "urlExpiration": 7200,
        "vin": VIN,
        "model": "i4",
        "modelYear": 2024,
        "countryCode": "DE",
    }


def test_connect_account_checks_its_arguments_before_sending(make_client):
    fake = FakeVolteras()
    client = make_client(fake)
    with pytest.raises(ValueError):
        client.connect_account(scopes=[], device_types=["VEHICLE"])
    with pytest.raises(ValueError):
        client.connect_account(scopes=["vehicle:all"], device_types=["VEHICLE"], url_expiration=60)
    assert fake.requests == []


def test_unknown_fields_and_enum_values_are_kept_not_fatal(make_client):
    results = {
        "results": [
            {
                "vehicleInputId": "in_1",
                "status": "QUANTUM_ENTANGLED",
                "message": "new status",
                "errors": [
                    {"code": "BRAND_NEW_CODE", "message": "m", "actionCategory": "ASK_LATER"},
                    {"code": "OEM_VEHICLE_UPDATE_REQUIRED", "message": "update"},
                ],
                "canRetry": True,
                "vin": VIN,
                "make": "VOLKSWAGEN",
                "shinyNewField": {"nested": 1},
            },
            {"vehicleInputId": "in_2", "status": "CONNECTED", "message": "ok", "vehicleId": "v2"},
        ],
        "totalResults": 2,
        "extra": "ignored",
    }
    fake = FakeVolteras(answer(200, results))
    first, second = make_client(fake).connect_results("grp_1")

    assert first.status == "QUANTUM_ENTANGLED"
    assert first.errors[0].action_category == "ASK_LATER"
    assert first.error_codes == ["BRAND_NEW_CODE", "OEM_VEHICLE_UPDATE_REQUIRED"]
    assert first.errors[1].action_category is None
    assert first.can_retry is True
    assert first.raw["shinyNewField"] == {"nested": 1}
    assert second.status is VehicleUploadStatus.CONNECTED
    assert second.vehicle_id == "v2"
    assert second.was_already_connected is False


def test_vehicle_parsing(make_client):
    body = {
        **VEHICLE,
        "modelYear": "2022",
        "connectionStatus": "ERROR",
        "connectionErrorCode": "OEM_VEHICLE_OFFLINE",
        "actionCategory": "CUSTOMER_ACTION",
        "metadata": {
            "lastSeenAt": "2026-02-03T04:05:06+00:00",
            "consentId": "c1",
            "accountId": "acc_9",
        },
        "futureThing": [1, 2],
    }
    fake = FakeVolteras(answer(200, body))
    vehicle = make_client(fake).get_vehicle("veh_1")
    assert vehicle.vin == VIN
    assert vehicle.connection_status == "ERROR"
    assert vehicle.connection_error_code == "OEM_VEHICLE_OFFLINE"
    assert vehicle.action_category == "CUSTOMER_ACTION"
    assert vehicle.account_id == "acc_9"
    assert vehicle.last_seen_at.year == 2026
    assert vehicle.model_year == "2022"
    assert vehicle.raw["futureThing"] == [1, 2]


def test_a_success_answer_missing_required_fields_is_unexpected(make_client):
    fake = FakeVolteras(answer(200, {"vin": VIN}))
    with pytest.raises(UnexpectedResponse):
        make_client(fake).get_vehicle("veh_1")


def test_ids_are_quoted_into_one_path_segment(make_client):
    fake = FakeVolteras(answer(200, VEHICLE))
    client = make_client(fake)
    client.get_vehicle("../accounts?x=1")
    assert fake.api_requests[0].url.raw_path == b"/v1/vehicles/..%2Faccounts%3Fx%3D1"
    with pytest.raises(ValueError):
        client.get_vehicle("")


def test_connect_results_reads_every_numbered_page(make_client):
    rows = [{"vehicleInputId": f"in_{n}", "status": "PENDING", "message": ""} for n in range(5)]

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["currentPage"])
        size = int(request.url.params["maxPageSize"])
        chunk = rows[page * size : (page + 1) * size]
        return httpx.Response(200, json={"results": chunk, "totalResults": len(rows)})

    fake = FakeVolteras(handler)
    results = make_client(fake).connect_results("grp_1", page_size=2)

    assert [r.vehicle_input_id for r in results] == [f"in_{n}" for n in range(5)]
    assert [r.url.params["currentPage"] for r in fake.api_requests] == ["0", "1", "2"]


def test_connect_results_without_a_count_read_while_pages_come_back_full(make_client):
    """`totalResults` is optional (default 0): its absence must not end the walk."""
    rows = [{"vehicleInputId": f"in_{n}", "status": "PENDING", "message": ""} for n in range(5)]

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["currentPage"])
        size = int(request.url.params["maxPageSize"])
        return httpx.Response(200, json={"results": rows[page * size : (page + 1) * size]})

    fake = FakeVolteras(handler)
    results = make_client(fake).connect_results("grp_1", page_size=2)

    assert [r.vehicle_input_id for r in results] == [f"in_{n}" for n in range(5)]
    assert [r.url.params["currentPage"] for r in fake.api_requests] == ["0", "1", "2"]


def test_results_filling_their_pages_exactly_end_on_an_empty_page(make_client):
    rows = [{"vin": VIN, "status": "ELIGIBLE"}] * 4

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["currentPage"])
        return httpx.Response(200, json={"results": rows[page * 2 : (page + 1) * 2]})

    fake = FakeVolteras(handler)
    assert len(make_client(fake).eligibility_results("chk_1", page_size=2)) == 4
    assert [r.url.params["currentPage"] for r in fake.api_requests] == ["0", "1", "2"]


def test_a_count_is_followed_past_short_pages(make_client):
    """A server may cap pages below the size asked for; a count says how many remain."""
    rows = [{"vehicleInputId": f"in_{n}", "status": "PENDING", "message": ""} for n in range(3)]

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["currentPage"])
        return httpx.Response(200, json={"results": rows[page : page + 1], "totalResults": 3})

    fake = FakeVolteras(handler)
    assert len(make_client(fake).connect_results("grp_1", page_size=100)) == 3
    assert len(fake.api_requests) == 3


def test_connect_results_stops_on_an_empty_page(make_client):
    fake = FakeVolteras(answer(200, {"results": [], "totalResults": 3}))
    assert make_client(fake).connect_results("grp_1") == []
    assert len(fake.api_requests) == 1


def test_list_vehicles_follows_next_page_token(make_client):
    pages = {
        None: {"results": [VEHICLE], "nextPageToken": "p2", "totalResults": 3},
        "p2": {"results": [{**VEHICLE, "id": "veh_2"}], "nextPageToken": "p3", "totalResults": 3},
        "p3": {"results": [{**VEHICLE, "id": "veh_3"}], "nextPageToken": None, "totalResults": 3},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.params["maxPageSize"] == "1"
        return httpx.Response(200, json=pages[request.url.params.get("pageToken")])

    fake = FakeVolteras(handler)
    ids = [vehicle.id for vehicle in make_client(fake).list_vehicles(page_size=1)]
    assert ids == ["veh_1", "veh_2", "veh_3"]


def test_a_repeating_page_token_is_not_followed_forever(make_client):
    page = {"results": [VEHICLE], "nextPageToken": "same", "totalResults": 9}
    fake = FakeVolteras(answer(200, page))
    with pytest.raises(UnexpectedResponse):
        list(make_client(fake).list_vehicles())
    assert len(fake.api_requests) == 2


def expiring_pages(expiries: int) -> FakeVolteras:
    """Two pages of vehicles whose second page token expires `expiries` times."""
    left = [expiries]

    def handler(request: httpx.Request) -> httpx.Response:
        token = request.url.params.get("pageToken")
        if token is None:
            page = {"results": [VEHICLE], "nextPageToken": "p2", "totalResults": 2}
            return httpx.Response(200, json=page)
        if left[0]:
            left[0] -= 1
            return httpx.Response(400, json=envelope("QUERY_PAGE_TOKEN_EXPIRED"))
        page = {"results": [{**VEHICLE, "id": "veh_2"}], "nextPageToken": None, "totalResults": 2}
        return httpx.Response(200, json=page)

    return FakeVolteras(handler)


def test_an_expired_page_token_restarts_the_query_without_repeating_items(make_client):
    fake = expiring_pages(2)
    ids = [vehicle.id for vehicle in make_client(fake).list_vehicles()]

    assert ids == ["veh_1", "veh_2"]
    tokens = [r.url.params.get("pageToken") for r in fake.api_requests]
    assert tokens == [None, "p2", None, "p2", None, "p2"]


def test_a_page_token_expiring_every_time_is_raised_after_bounded_restarts(make_client):
    fake = expiring_pages(100)
    with pytest.raises(PageTokenExpired) as caught:
        list(make_client(fake).list_vehicles())
    assert caught.value.code == "QUERY_PAGE_TOKEN_EXPIRED"
    assert not isinstance(caught.value, ValidationError)
    assert len(fake.api_requests) == 2 * (1 + 3)  # the first walk and three restarts


def test_an_expired_token_on_the_first_page_is_not_retried(make_client):
    fake = FakeVolteras(answer(400, envelope("QUERY_PAGE_TOKEN_EXPIRED")))
    with pytest.raises(PageTokenExpired):
        list(make_client(fake).list_accounts())
    assert len(fake.api_requests) == 1


def test_eligibility_check_and_results(make_client):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(
                202, json={"id": "el_1", "status": "CREATED", "createdAt": "2026-01-01T00:00:00Z"}
            )
        return httpx.Response(
            200,
            json={
                "results": [{"rowId": 0, "vin": VIN, "status": "ELIGIBLE", "make": "BMW"}],
                "totalResults": 1,
            },
        )

    fake = FakeVolteras(handler)
    client = make_client(fake)
    check = client.check_eligibility([VIN, EligibilityInput("WBA00000000000002", "DE", "BMW")])
    assert isinstance(check, ConnectGroup)
    assert check.id == "el_1"
    assert json.loads(fake.api_requests[0].content) == {
        "vins": [
            {"vin": VIN, "countryCode": None},
            {"vin": "WBA00000000000002", "countryCode": "DE", "make": "BMW"},
        ]
    }
    (result,) = client.eligibility_results("el_1")
    assert (result.row_id, result.vin, result.status) == (0, VIN, "ELIGIBLE")
    with pytest.raises(ValueError):
        client.check_eligibility([VIN] * 501)


# Logging.


def test_calls_are_logged_without_secrets_or_vins(make_client, caplog):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(
                202,
                json={"id": "grp_1", "status": "CREATED", "createdAt": "2026-01-01T00:00:00Z"},
                headers={"x-request-id": "req-ok"},
            )
        return httpx.Response(404, json=envelope("RESOURCE_NOT_FOUND", VIN, "req-404"))

    fake = FakeVolteras(handler)
    client = make_client(fake)
    with caplog.at_level(logging.DEBUG):
        client.connect_vehicles([VehicleInput(VIN, "VOLKSWAGEN", "GB")])
        with pytest.raises(NotFound):
            client.get_vehicle("veh_1")

    volteras = [r for r in caplog.records if r.name == "connections.volteras"]
    messages = [r.getMessage() for r in volteras]
    connect_line = next(m for m in messages if "POST /v1/vehicles/connect" in m)
    assert "202" in connect_line
    assert "request_id=req-ok" in connect_line
    assert " in " in connect_line
    assert any("GET /v1/vehicles/veh_1 -> 404" in m and "req-404" in m for m in messages)
    assert all(r.levelno == logging.INFO for r in volteras)
    everything = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (VIN, "access-1", "refresh-1", "client-secret"):
        assert secret not in everything


# Wiring from settings.


@override_settings(
    VOLTERAS_API_URL="https://one.example",
    VOLTERAS_CLIENT_ID="id-1",
    VOLTERAS_CLIENT_SECRET="secret-1",
    VOLTERAS_TIMEOUT=4.5,
    VOLTERAS_MAX_RETRIES=2,
)
def test_get_client_is_built_from_settings_and_reused():
    client = get_client()
    assert client is get_client()
    assert client.base_url == "https://one.example"
    assert client.http.max_retries == 2
    assert client.http._client.timeout.read == 4.5
    assert client.tokens.api_url == "https://one.example"
    with override_settings(VOLTERAS_API_URL="https://two.example"):
        assert get_client().base_url == "https://two.example"


@pytest.mark.postgres_only
def test_concurrent_renewals_fetch_one_token(transactional_db):
    """Two processes' worth of clients renewing at once: the second waits for
    the first's row lock (or SQLite's write lock) and reuses its token."""
    first_fetching = threading.Event()
    second_started = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/oauth2/token" and not first_fetching.is_set():
            first_fetching.set()
            # Hold the first renewal open until the second is on its way, plus a
            # moment for it to reach the lock.
            assert second_started.wait(timeout=10)
            time.sleep(0.3)
        return fake(request)

    fake = FakeVolteras(answer(200, VEHICLE))
    clients = [
        VolterasClient(API, "client-id", "client-secret", transport=httpx.MockTransport(handler))
        for _ in range(2)
    ]
    tokens: list[str] = []
    failures: list[BaseException] = []

    def run(client: VolterasClient, before=None) -> None:
        try:
            if before is not None:
                assert first_fetching.wait(timeout=10)
                before.set()
            tokens.append(client.tokens.get())
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(clients[0],)),
        threading.Thread(target=run, args=(clients[1], second_started)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert failures == []
    assert tokens == ["access-1", "access-1"]
    assert len(fake.token_requests) == 1


@pytest.mark.postgres_only
def test_ten_workers_renewing_at_once_fetch_one_token_without_holding_the_row(
    transactional_db,
):
    """Ten processes' worth of clients find the token stale together: one
    fetches, nine wait for it; and while it fetches, the row is not locked."""
    started = threading.Barrier(10, timeout=10)
    lock_free_during_fetch: list[bool] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/oauth2/token":
            time.sleep(0.3)  # a slow Volteras: the others arrive meanwhile
            lock_free_during_fetch.append(row_is_lockable())
        return fake(request)

    def row_is_lockable() -> bool:
        result: list[bool] = []

        def probe() -> None:
            try:
                with transaction.atomic():
                    # The waiting clients lock the row for a moment each time
                    # they look; a lock held across the fetch would outlast this.
                    with connection.cursor() as cursor:
                        cursor.execute("SET LOCAL lock_timeout = '1s'")
                    ApiToken.objects.select_for_update().get(api_url=API)
                result.append(True)
            except DatabaseError:
                result.append(False)
            finally:
                connection.close()

        thread = threading.Thread(target=probe)
        thread.start()
        thread.join(timeout=10)
        return result == [True]

    fake = FakeVolteras(answer(200, VEHICLE))
    clients = [
        VolterasClient(API, "client-id", "client-secret", transport=httpx.MockTransport(handler))
        for _ in range(10)
    ]
    tokens: list[str] = []
    failures: list[BaseException] = []

    def run(client: VolterasClient) -> None:
        try:
            started.wait()
            tokens.append(client.tokens.get())
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert failures == []
    assert tokens == ["access-1"] * 10
    assert len(fake.token_requests) == 1
    assert lock_free_during_fetch == [True]
