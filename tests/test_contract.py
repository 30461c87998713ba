"""The contract checks themselves: they refuse what the contract refuses, and
every client `get_client()` builds in a test carries them."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import httpx
import pytest
from django.db import connections

from connections import volteras
from tests.contract import (
    ContractWatch,
    validate_authorization,
    validate_request,
    validate_response,
)
from tests.fixtures_sandbox import point_portal_at

BEARER = {"Authorization": "Bearer a-token", "Content-Type": "application/json"}
GOOD_VEHICLE = {
    "id": "veh_1",
    "vin": "WVWZZZ1JZ0W000001",
    "make": "VOLKSWAGEN",
    "metadata": {"lastSeenAt": None, "consentId": None, "accountId": None},
}
TOKEN = {"access_token": "t", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "r"}
VEHICLE = {"vin": "WVWZZZ1JZ0W000001", "make": "VOLKSWAGEN", "countryCode": "GB"}


class TestValidators:
    def test_a_conforming_request_passes(self):
        body = {"vehicles": [VEHICLE]}
        validate_request("POST", "/v1/vehicles/connect", BEARER, json.dumps(body).encode())

    def test_a_request_with_an_unknown_make_is_refused(self):
        body = {"vehicles": [{**VEHICLE, "make": "TRABANT"}]}
        with pytest.raises(AssertionError, match="request breaks the contract"):
            validate_request("POST", "/v1/vehicles/connect", BEARER, json.dumps(body).encode())

    def test_a_request_without_its_required_body_field_is_refused(self):
        with pytest.raises(AssertionError, match="request breaks the contract"):
            validate_request("POST", "/v1/vehicles/connect", BEARER, b"{}")

    def test_an_answer_missing_a_required_field_is_refused(self):
        body = {"requestId": "r", "status": "CREATED"}  # no id
        with pytest.raises(AssertionError, match="answer breaks the contract"):
            validate_response(
                "POST",
                "/v1/vehicles/connect",
                202,
                {"content-type": "application/json"},
                json.dumps(body).encode(),
            )

    def test_an_error_answer_with_an_undocumented_code_is_refused(self):
        envelope = {
            "requestId": "r",
            "timestamp": "2026-01-01T00:00:00Z",
            "error": "PAGE_SIZE_TOO_LARGE",
            "message": "m",
            "data": None,
        }
        with pytest.raises(AssertionError, match="not among the operation's codes"):
            validate_response(
                "POST", "/v1/vehicles/connect", 400, {}, json.dumps(envelope).encode()
            )

    def test_an_error_answer_without_the_envelope_is_refused(self):
        with pytest.raises(AssertionError, match="envelope field requestId missing"):
            validate_response("GET", "/v1/vehicles", 500, {}, b'{"detail": "boom"}')

    def test_bearer_calls_need_a_bearer_token(self):
        validate_authorization("GET", "/v1/vehicles", {"Authorization": "Bearer t"})
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Basic eDp5"}):
            with pytest.raises(AssertionError, match="expected Bearer credentials"):
                validate_authorization("GET", "/v1/vehicles", headers)

    def test_the_token_call_needs_basic_credentials(self):
        validate_authorization("POST", "/v1/oauth2/token", {"Authorization": "Basic eDp5"})
        with pytest.raises(AssertionError, match="expected Basic credentials"):
            validate_authorization("POST", "/v1/oauth2/token", {"Authorization": "Bearer t"})


class _BrokenVolteras(http.server.BaseHTTPRequestHandler):
    """Issues a token as the contract says, then answers a vehicle without its metadata."""

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(200, TOKEN)

    def do_GET(self):
        self._answer(200, {k: v for k, v in GOOD_VEHICLE.items() if k != "metadata"})

    def log_message(self, *args):
        pass


@pytest.fixture
def broken_volteras(settings) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _BrokenVolteras)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.VOLTERAS_API_URL = f"http://127.0.0.1:{server.server_port}"
    settings.VOLTERAS_CLIENT_ID = "id"
    settings.VOLTERAS_CLIENT_SECRET = "secret"
    settings.VOLTERAS_MAX_RETRIES = 0
    yield settings.VOLTERAS_API_URL
    server.shutdown()


class TestEveryPortalClientIsWatched:
    def test_portal_calls_to_the_sandbox_are_checked(self, db, settings, sandbox, contract_watch):
        point_portal_at(settings, sandbox)
        volteras.get_client().test_token()
        # The token call and test-token, each request and answer.
        assert contract_watch.checked == 4
        assert contract_watch.take_failures() == []

    def test_a_broken_answer_fails_the_call(self, db, broken_volteras, contract_watch):
        with pytest.raises(AssertionError, match="answer breaks the contract"):
            volteras.get_client().get_vehicle("veh_1")
        failures = contract_watch.take_failures()
        assert len(failures) == 1 and "GET /v1/vehicles/veh_1" in failures[0]

    def test_a_mismatch_swallowed_in_another_thread_is_still_recorded(
        self, transactional_db, broken_volteras, contract_watch
    ):
        seen: list[BaseException] = []

        def swallow() -> None:
            try:
                volteras.get_client().get_vehicle("veh_1")
            except BaseException as exc:  # as a worker or a server thread might
                seen.append(exc)
            finally:
                connections.close_all()

        thread = threading.Thread(target=swallow)
        thread.start()
        thread.join(timeout=30)
        assert [type(exc) for exc in seen] == [AssertionError]
        assert len(contract_watch.take_failures()) == 1


def test_the_watch_checks_credentials_of_each_request():
    watch = ContractWatch()
    with httpx.Client(
        base_url="http://volteras.invalid",
        event_hooks=watch.hooks(),
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json=GOOD_VEHICLE)),
    ) as client:
        with pytest.raises(AssertionError, match="expected Bearer credentials"):
            client.get("/v1/vehicles/veh_1")
        client.get("/v1/vehicles/veh_1", headers={"Authorization": "Bearer t"})
    assert len(watch.take_failures()) == 1
    assert watch.checked == 2


def test_a_recorded_mismatch_fails_the_test_itself():
    """What `pytest_runtest_call` does after each test body: a mismatch that a
    server or worker thread swallowed still fails the test, not its teardown."""
    from types import SimpleNamespace

    from tests import conftest

    watch = ContractWatch()
    watch.failures.append("GET /v1/vehicles/veh_1 -> 200: answer breaks the contract")
    hook = conftest.pytest_runtest_call(SimpleNamespace(funcargs={"contract_watch": watch}))
    next(hook)
    with pytest.raises(AssertionError, match="Volteras contract broken:\nGET /v1/vehicles"):
        hook.send(None)
    assert watch.take_failures() == []  # reported once

    clean = conftest.pytest_runtest_call(SimpleNamespace(funcargs={"contract_watch": watch}))
    next(clean)
    with pytest.raises(StopIteration):
        clean.send(None)
