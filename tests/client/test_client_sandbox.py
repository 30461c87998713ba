"""The Volteras client over real HTTP against the running sandbox.

Every request the client sends and every answer it gets is checked against
Volteras' published contract (`tests/contract.py`) by event hooks installed
on the client, so a shape the real API would refuse fails the test here.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import time_machine
from django.utils import timezone

from connections.models import ApiToken
from connections.volteras import (
    AmbiguousWrite,
    AuthenticationError,
    GroupStatus,
    NetworkError,
    NotFound,
    NotPermitted,
    RateLimited,
    ServerError,
    Tag,
    ValidationError,
    VehicleInput,
    VehicleUploadStatus,
    VolterasClient,
)
from tests.contract import check_exchange, validate_request
from tests.factories import make_vin


class Exchanges:
    """Event hooks: validate each exchange against the contract, and keep the
    requests so tests can count them."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def on_request(self, request: httpx.Request) -> None:
        self.requests.append(request)
        if request.url.path.startswith("/v1/"):
            validate_request(
                request.method,
                request.url.path,
                request.headers,
                request.content,
                request.url.query.decode(),
            )

    def on_response(self, response: httpx.Response) -> None:
        check_exchange(response)

    def hooks(self) -> dict[str, list]:
        return {"request": [self.on_request], "response": [self.on_response]}

    def paths(self, method: str | None = None) -> list[str]:
        return [r.url.path for r in self.requests if method is None or r.method == method]

    def count(self, path: str) -> int:
        return sum(1 for r in self.requests if r.url.path == path)


@pytest.fixture
def exchanges() -> Exchanges:
    return Exchanges()


@pytest.fixture
def make_client(db, sandbox, exchanges, sleeps):
    clients: list[VolterasClient] = []

    def make(**options) -> VolterasClient:
        options.setdefault("timeout", 5.0)
        options.setdefault("max_retries", 3)
        client = VolterasClient(
            sandbox.url,
            options.pop("client_id", sandbox.client_id),
            options.pop("client_secret", sandbox.client_secret),
            sleep=sleeps,
            event_hooks=exchanges.hooks(),
            **options,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client) -> VolterasClient:
    return make_client()


def connect_account_via_consent(client: VolterasClient, vin: str, username: str) -> str:
    """Walk the sandbox's consent flow for a single-vehicle link; returns the account id."""
    url = client.connect_account(
        scopes=["vehicle:all"],
        device_types=["VEHICLE"],
        vin=vin,
        return_url="https://portal.example/return",
        makes=["VOLKSWAGEN"],
    )
    answer = httpx.post(
        url,
        data={"make": "VOLKSWAGEN", "username": username, "decision": "approve"},
        timeout=10,
    )
    assert answer.status_code == 302, answer.text
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["result"] == ["success"]
    return query["accountId"][0]


# Tokens.


def test_token_fetch_and_test_token(client, exchanges, sandbox):
    info = client.test_token()

    assert info.client_id == sandbox.client_id
    assert info.organization_id
    assert exchanges.paths() == ["/v1/oauth2/token", "/v1/oauth2/test-token"]
    row = ApiToken.objects.get(api_url=sandbox.url)
    assert row.access_token and row.refresh_token
    assert row.expires_at > timezone.now() + timedelta(minutes=59)


def test_short_lived_token_is_refreshed_with_the_refresh_token(client, exchanges, sandbox, caplog):
    sandbox.control(token_ttl=30)
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        client.test_token()
        first = ApiToken.objects.get(api_url=sandbox.url)
        assert first.expires_at == timezone.now() + timedelta(seconds=30)
        traveller.shift(timedelta(seconds=20))
        client.test_token()
        assert exchanges.count("/v1/oauth2/token") == 1
        # Past the renewal margin (a tenth of 30 s) the client refreshes before
        # the server would refuse the token.
        traveller.shift(timedelta(seconds=8))
        with caplog.at_level(logging.INFO, logger="connections.volteras"):
            client.test_token()

    second = ApiToken.objects.get(api_url=sandbox.url)
    assert exchanges.count("/v1/oauth2/token") == 2
    assert second.access_token != first.access_token
    assert second.refresh_token != first.refresh_token
    assert "token obtained via refresh_token" in caplog.text


def test_expired_refresh_token_falls_back_to_client_credentials(client, exchanges, sandbox):
    client.test_token()
    # Another process used the refresh token (they are single use) and its answer was lost.
    ApiToken.objects.filter(api_url=sandbox.url).update(
        expires_at=timezone.now() - timedelta(seconds=1), refresh_token="already-used"
    )
    client.test_token()

    grants = [
        parse_qs(r.content.decode())["grant_type"][0]
        for r in exchanges.requests
        if r.url.path == "/v1/oauth2/token"
    ]
    assert grants == ["client_credentials", "refresh_token", "client_credentials"]


def test_two_clients_share_one_token_through_the_database(make_client, exchanges):
    first, second = make_client(), make_client()
    first.test_token()
    second.test_token()
    assert exchanges.count("/v1/oauth2/token") == 1
    tokens = {r.headers["authorization"] for r in exchanges.requests if "test-token" in str(r.url)}
    assert len(tokens) == 1


def test_a_revoked_token_is_renewed_once_on_401(client, exchanges, sandbox):
    client.test_token()
    ApiToken.objects.filter(api_url=sandbox.url).update(access_token="revoked-by-volteras")

    assert client.test_token().client_id == sandbox.client_id
    assert exchanges.paths() == [
        "/v1/oauth2/token",
        "/v1/oauth2/test-token",
        "/v1/oauth2/test-token",  # 401 with the revoked token
        "/v1/oauth2/token",  # renewed once
        "/v1/oauth2/test-token",
    ]
    assert ApiToken.objects.get(api_url=sandbox.url).access_token != "revoked-by-volteras"


def test_wrong_credentials_raise_authentication_error(make_client, exchanges):
    client = make_client(client_secret="not-the-secret")
    with pytest.raises(AuthenticationError) as caught:
        client.test_token()
    assert caught.value.code == "AUTHENTICATION_ERROR"
    assert caught.value.status == 401
    assert caught.value.request_id
    assert exchanges.count("/v1/oauth2/token") == 1


# Operations and paging.


def test_connect_vehicles_then_group_results_and_vehicle(client):
    vin = make_vin(1, make="VOLKSWAGEN")
    group = client.connect_vehicles(
        [
            VehicleInput(
                vin,
                "VOLKSWAGEN",
                "GB",
                registration_plate="AB12 CDE",
                model="ID.3",
                model_year=2022,
                tags=(Tag("depot", "leeds"),),
            ),
            VehicleInput("PERR0R11000000001", "VOLKSWAGEN", "GB"),
        ]
    )
    assert group.status == GroupStatus.CREATED
    assert client.get_connect_group(group.id).status == GroupStatus.COMPLETED

    connected, failed = client.connect_results(group.id)
    assert connected.vin == vin
    assert connected.status is VehicleUploadStatus.CONNECTED
    assert connected.vehicle_id
    assert connected.raw["tags"] == [{"key": "depot", "value": "leeds"}]
    assert failed.status is VehicleUploadStatus.ERROR
    assert failed.error_codes == ["OEM_VEHICLE_UPDATE_REQUIRED"]
    assert failed.errors[0].action_category == "CUSTOMER_ACTION"
    assert failed.can_retry is True

    vehicle = client.get_vehicle(connected.vehicle_id)
    assert (vehicle.vin, vehicle.connection_status) == (vin, "CONNECTED")
    assert vehicle.registration_plate == "AB12 CDE"


def test_connect_results_read_over_several_pages(client, exchanges):
    group = client.connect_vehicles(
        [VehicleInput(make_vin(n, make="VOLKSWAGEN"), "VOLKSWAGEN", "DE") for n in range(5)]
    )
    results = client.connect_results(group.id, page_size=2)

    assert sorted(r.vin for r in results) == sorted(
        make_vin(n, make="VOLKSWAGEN") for n in range(5)
    )
    pages = [
        r.url.params["currentPage"] for r in exchanges.requests if r.url.path.endswith("/results")
    ]
    assert pages == ["0", "1", "2"]


def test_list_vehicles_follows_cursor_pages(client, exchanges):
    client.connect_vehicles(
        [VehicleInput(make_vin(n, make="VOLKSWAGEN"), "VOLKSWAGEN", "GB") for n in range(5)]
    )

    vins = [vehicle.vin for vehicle in client.list_vehicles(page_size=2)]
    assert sorted(vins) == sorted(make_vin(n, make="VOLKSWAGEN") for n in range(5))
    assert exchanges.count("/v1/vehicles") == 3

    page = client.vehicles_page(page_size=4)
    assert (len(page.results), page.total_results) == (4, 5)
    rest = client.vehicles_page(page.next_page_token, page_size=4)
    assert len(rest.results) == 1
    assert rest.next_page_token is None


def test_accounts_listed_over_pages_fetched_and_disconnected(client, exchanges):
    ids = [
        connect_account_via_consent(client, make_vin(100 + n, make="VOLKSWAGEN"), f"driver{n}")
        for n in range(5)
    ]
    listed = list(client.list_accounts(page_size=2))

    assert sorted(a.id for a in listed) == sorted(ids)
    assert exchanges.count("/v1/accounts") == 3
    account = client.get_account(ids[0])
    assert account.username == "driver0"

    client.disconnect_account(ids[0])
    with pytest.raises(NotFound):
        client.get_account(ids[0])


def test_disconnect_vehicle(client):
    group = client.connect_vehicles(
        [VehicleInput(make_vin(7, make="VOLKSWAGEN"), "VOLKSWAGEN", "GB")]
    )
    (result,) = client.connect_results(group.id)
    client.disconnect_vehicle(result.vehicle_id)
    assert make_vin(7, make="VOLKSWAGEN") not in {v.vin for v in client.list_vehicles()}


def test_eligibility_check(client):
    check = client.check_eligibility([make_vin(20, make="VOLKSWAGEN"), "1NC0MP1100000000A"])
    results = client.eligibility_results(check.id, page_size=1)
    assert [(r.row_id, r.status) for r in results] == [(0, "ELIGIBLE"), (1, "INELIGIBLE")]


# Each error family, as the sandbox answers it.


def test_not_found(client):
    with pytest.raises(NotFound) as caught:
        client.get_vehicle("no-such-vehicle")
    assert (caught.value.code, caught.value.status) == ("RESOURCE_NOT_FOUND", 404)
    assert caught.value.request_id


def test_validation_errors(client):
    with pytest.raises(ValidationError) as caught:
        client.connect_account(scopes=["vehicle:all"], device_types=["VEHICLE"], makes=["BMW"])
    assert (caught.value.code, caught.value.status) == ("REQUEST_VALIDATION_ERROR", 422)
    assert caught.value.data

    with pytest.raises(ValidationError) as caught:
        client.vehicles_page(page_size=1000)
    assert caught.value.code == "PAGE_SIZE_TOO_LARGE"

    with pytest.raises(ValidationError) as caught:
        client.connect_account(
            scopes=["vehicle:all"], device_types=["VEHICLE"], makes=["KIA"], region="NORTH_AMERICA"
        )
    assert caught.value.code == "UNSUPPORTED_OEM"


def test_device_limit_is_not_permitted(client, sandbox):
    sandbox.control(vehicle_limit=1)
    client.connect_vehicles([VehicleInput(make_vin(30, make="VOLKSWAGEN"), "VOLKSWAGEN", "GB")])
    with pytest.raises(NotPermitted) as caught:
        client.connect_vehicles([VehicleInput(make_vin(31, make="VOLKSWAGEN"), "VOLKSWAGEN", "GB")])
    assert (caught.value.code, caught.value.status) == ("DEVICE_LIMIT_REACHED", 403)


# Retries and faults.


def fault(kind: str, path_prefix: str, method: str = "", **options) -> dict:
    return {"kind": kind, "path_prefix": path_prefix, "method": method, **options}


def test_get_retried_through_injected_server_errors(client, sandbox, exchanges, sleeps):
    client.test_token()
    sandbox.control(faults=[fault("error", "/v1/vehicles", "GET", count=2)])

    assert list(client.list_vehicles()) == []
    assert exchanges.count("/v1/vehicles") == 3
    assert len(sleeps) == 2
    assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0


def test_get_gives_up_on_persistent_server_errors(make_client, sandbox, exchanges, sleeps):
    client = make_client(max_retries=2)
    client.test_token()
    sandbox.control(faults=[fault("error", "/v1/vehicles", "GET")])

    with pytest.raises(ServerError) as caught:
        client.get_vehicle("veh_x")
    assert (caught.value.code, caught.value.status) == ("SERVER_ERROR", 500)
    assert len(sleeps) == 2
    assert exchanges.count("/v1/vehicles/veh_x") == 3


def test_get_honours_retry_after(client, sandbox, sleeps):
    client.test_token()
    sandbox.control(faults=[fault("rate_limit", "/v1/vehicles", "GET", count=2, retry_after=3)])

    assert list(client.list_vehicles()) == []
    assert sleeps == [3.0, 3.0]


def test_rate_limit_outlasting_retries_is_raised(make_client, sandbox, sleeps):
    client = make_client(max_retries=1)
    client.test_token()
    sandbox.control(faults=[fault("rate_limit", "/v1/vehicles", "GET", retry_after=2)])

    with pytest.raises(RateLimited) as caught:
        client.vehicles_page()
    assert caught.value.retry_after == 2.0
    assert caught.value.code == "INTERNAL_RATE_LIMITED"
    assert sleeps == [2.0]


def test_post_rate_limited_is_retried_and_applied_once(client, sandbox, sleeps):
    client.test_token()
    sandbox.control(faults=[fault("rate_limit", "/v1/vehicles/connect", "POST", count=1)])

    group = client.connect_vehicles(
        [VehicleInput(make_vin(40, make="VOLKSWAGEN"), "VOLKSWAGEN", "GB")]
    )
    assert sleeps == [1.0]
    (result,) = client.connect_results(group.id)
    assert result.was_already_connected is False
    assert [v.vin for v in client.list_vehicles()] == [make_vin(40, make="VOLKSWAGEN")]


def test_post_server_error_is_ambiguous_not_retried(client, sandbox, exchanges, sleeps):
    client.test_token()
    sandbox.control(faults=[fault("error", "/v1/vehicles/connect", "POST", count=1)])

    with pytest.raises(AmbiguousWrite) as caught:
        client.connect_vehicles([VehicleInput(make_vin(41, make="VOLKSWAGEN"), "VOLKSWAGEN", "GB")])
    assert (caught.value.status, caught.value.code) == (500, "SERVER_ERROR")
    assert exchanges.count("/v1/vehicles/connect") == 1
    assert sleeps == []


def test_dropped_connection_after_a_post_is_ambiguous_and_the_write_happened(
    client, sandbox, exchanges
):
    client.test_token()
    sandbox.control(faults=[fault("drop", "/v1/vehicles/connect", "POST", count=1)])
    vin = make_vin(50, make="VOLKSWAGEN")

    with pytest.raises(AmbiguousWrite) as caught:
        client.connect_vehicles([VehicleInput(vin, "VOLKSWAGEN", "GB")])
    assert (caught.value.method, caught.value.path) == ("POST", "/v1/vehicles/connect")
    assert exchanges.count("/v1/vehicles/connect") == 1

    # Reconciling: the vehicle is there, and re-sending says so instead of failing.
    assert [v.vin for v in client.list_vehicles()] == [vin]
    group = client.connect_vehicles([VehicleInput(vin, "VOLKSWAGEN", "GB")])
    (again,) = client.connect_results(group.id)
    assert again.status is VehicleUploadStatus.CONNECTED
    assert again.was_already_connected is True
    assert again.error_codes == ["VEHICLE_ALREADY_ADDED_TO_ORGANIZATION"]


def test_dropped_connection_after_a_delete_is_ambiguous(client, sandbox):
    group = client.connect_vehicles(
        [VehicleInput(make_vin(51, make="VOLKSWAGEN"), "VOLKSWAGEN", "GB")]
    )
    (result,) = client.connect_results(group.id)
    sandbox.control(faults=[fault("drop", "/v1/vehicles/", "DELETE", count=1)])

    with pytest.raises(AmbiguousWrite):
        client.disconnect_vehicle(result.vehicle_id)
    assert list(client.list_vehicles()) == []


def test_a_dropped_get_is_retried(client, sandbox, exchanges, sleeps):
    client.test_token()
    sandbox.control(faults=[fault("drop", "/v1/vehicles", "GET", count=1)])
    assert list(client.list_vehicles()) == []
    assert exchanges.count("/v1/vehicles") == 2
    assert len(sleeps) == 1


def test_a_hanging_get_times_out(make_client, sandbox):
    client = make_client(timeout=0.3, max_retries=0)
    client.test_token()
    sandbox.control(faults=[fault("hang", "/v1/vehicles", "GET", count=1, seconds=3)])

    started = time.monotonic()
    with pytest.raises(NetworkError) as caught:
        client.vehicles_page()
    assert time.monotonic() - started < 2
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)


def test_a_hanging_get_is_retried(make_client, sandbox, sleeps):
    client = make_client(timeout=0.3, max_retries=1)
    client.test_token()
    sandbox.control(faults=[fault("hang", "/v1/vehicles", "GET", count=1, seconds=3)])
    assert client.vehicles_page().results == []
    assert len(sleeps) == 1


def test_a_hanging_post_is_ambiguous_not_retried(make_client, sandbox, exchanges):
    client = make_client(timeout=0.3)
    client.test_token()
    sandbox.control(faults=[fault("hang", "/v1/vehicles/connect", "POST", count=1, seconds=3)])

    with pytest.raises(AmbiguousWrite) as caught:
        client.connect_vehicles([VehicleInput(make_vin(60, make="VOLKSWAGEN"), "VOLKSWAGEN", "GB")])
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
    assert exchanges.count("/v1/vehicles/connect") == 1


def test_a_write_that_cannot_connect_is_retried_then_a_network_error(db, sleeps):
    """Connection refused means nothing was sent: retried, and never ambiguous."""
    api_url = "http://127.0.0.1:9"  # the discard port: nothing listens
    ApiToken.objects.create(
        api_url=api_url, access_token="valid", expires_at=timezone.now() + timedelta(hours=1)
    )
    client = VolterasClient(api_url, "id", "secret", max_retries=2, sleep=sleeps)
    with pytest.raises(NetworkError) as caught:
        client.connect_vehicles([VehicleInput(make_vin(70, make="VOLKSWAGEN"), "VOLKSWAGEN", "GB")])
    assert not isinstance(caught.value, AmbiguousWrite)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert len(sleeps) == 2
