"""The contract checks themselves: they refuse what the contract refuses, and
every client `get_client()` builds in a test carries them."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from django.db import connections

from connections import volteras
from tests.contract import (
    ContractWatch,
    check_exchange,
    svix_signature,
    validate_authorization,
    validate_exchange_request,
    validate_request,
    validate_response,
    validate_webhook,
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
JSON = {"content-type": "application/json"}
SECRET = "whsec_dGVzdC13ZWJob29rLXNlY3JldC1mb3Itc2FuZGJveA=="


def error(code: str, **changes) -> bytes:
    body = {
        "requestId": "r",
        "timestamp": "2026-01-01T00:00:00Z",
        "error": code,
        "message": "m",
        "data": None,
        **changes,
    }
    return json.dumps(body).encode()


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
        with pytest.raises(AssertionError, match="not among the operation's codes"):
            validate_response(
                "POST", "/v1/vehicles/connect", 400, JSON, error("PAGE_SIZE_TOO_LARGE")
            )

    def test_an_error_answer_without_the_envelope_is_refused(self):
        with pytest.raises(AssertionError, match="envelope field requestId missing"):
            validate_response("GET", "/v1/vehicles", 500, JSON, b'{"detail": "boom"}')

    def test_a_conforming_error_answer_passes(self):
        validate_response("GET", "/v1/vehicles/veh_1", 404, JSON, error("RESOURCE_NOT_FOUND"))
        validate_response(
            "GET", "/v1/vehicles", 400, JSON, error("PAGE_SIZE_TOO_LARGE", data={"max": 100})
        )
        validate_response("POST", "/v1/vehicles/connect", 503, JSON, error("SERVER_ERROR"))

    def test_an_error_answer_that_is_not_json_typed_is_refused(self):
        with pytest.raises(AssertionError, match="content type is 'text/html'"):
            validate_response(
                "GET",
                "/v1/vehicles/veh_1",
                404,
                {"content-type": "text/html"},
                error("RESOURCE_NOT_FOUND"),
            )

    @pytest.mark.parametrize(
        "stamp",
        ["2026-01-01 00:00:00", "2026-01-01T00:00:00", "1767225600", "2026-13-01T00:00:00Z"],
    )
    def test_an_error_timestamp_must_be_iso_8601_with_an_offset(self, stamp):
        with pytest.raises(AssertionError, match="timestamp"):
            validate_response(
                "GET", "/v1/vehicles/veh_1", 404, JSON, error("RESOURCE_NOT_FOUND", timestamp=stamp)
            )

    @pytest.mark.parametrize(
        ("status", "code"),
        [
            (400, "RESOURCE_NOT_FOUND"),
            (500, "RESOURCE_NOT_FOUND"),
            (404, "SERVER_ERROR"),
            (401, "REQUEST_VALIDATION_ERROR"),
            (429, "SERVER_ERROR"),
            (422, "AUTHENTICATION_ERROR"),
        ],
    )
    def test_a_code_must_go_with_its_status(self, status, code):
        with pytest.raises(AssertionError, match=f"{code} does not go with HTTP {status}"):
            validate_response("GET", "/v1/vehicles/veh_1", status, JSON, error(code))

    def test_a_429_must_carry_the_rate_limit_code(self):
        validate_response(
            "GET", "/v1/vehicles", 429, {**JSON, "retry-after": "3"}, error("INTERNAL_RATE_LIMITED")
        )
        with pytest.raises(AssertionError, match="not among the operation's codes"):
            validate_response("GET", "/v1/vehicles", 429, JSON, error("OEM_RATE_LIMITED"))
        with pytest.raises(AssertionError, match="Retry-After"):
            validate_response(
                "GET",
                "/v1/vehicles",
                429,
                {**JSON, "retry-after": "soon"},
                error("INTERNAL_RATE_LIMITED"),
            )

    def test_only_cursor_paged_calls_may_answer_an_expired_page_token(self):
        validate_response("GET", "/v1/vehicles", 400, JSON, error("QUERY_PAGE_TOKEN_EXPIRED"))
        with pytest.raises(AssertionError, match="not among the operation's codes"):
            validate_response(
                "GET", "/v1/vehicles/veh_1", 400, JSON, error("QUERY_PAGE_TOKEN_EXPIRED")
            )

    def test_an_unknown_path_must_answer_not_found(self):
        validate_response("GET", "/v1/nowhere", 404, JSON, error("RESOURCE_NOT_FOUND"))
        with pytest.raises(AssertionError, match="not among the operation's codes"):
            validate_response("GET", "/v1/nowhere", 400, JSON, error("PAGE_SIZE_TOO_LARGE"))
        with pytest.raises(AssertionError, match="not among the operation's codes"):
            validate_response("GET", "/v1/nowhere", 422, JSON, error("REQUEST_VALIDATION_ERROR"))

    def test_a_wrong_method_on_a_known_path_is_405(self):
        validate_response("PUT", "/v1/vehicles", 405, JSON, error("REQUEST_VALIDATION_ERROR"))
        with pytest.raises(AssertionError, match="a wrong method is 405"):
            validate_response("PUT", "/v1/vehicles", 422, JSON, error("REQUEST_VALIDATION_ERROR"))

    def test_a_delete_accepted_has_no_body(self):
        validate_response("DELETE", "/v1/vehicles/veh_1", 202, {}, b"")
        with pytest.raises(AssertionError, match="documents no body"):
            validate_response("DELETE", "/v1/vehicles/veh_1", 202, JSON, b'{"status": "ok"}')

    def test_an_undocumented_success_status_is_refused(self):
        with pytest.raises(AssertionError, match="status not documented"):
            validate_response("POST", "/v1/vehicles/connect", 200, JSON, b"{}")

    def test_a_success_answer_must_be_json(self):
        with pytest.raises(AssertionError, match="not JSON"):
            validate_response(
                "GET", "/v1/vehicles/veh_1", 200, {"content-type": "text/plain"}, b"{}"
            )

    def test_unknown_query_parameters_are_refused(self):
        validate_request("GET", "/v1/vehicles", BEARER, None, "maxPageSize=5&pageToken=t")
        with pytest.raises(AssertionError, match=r"unknown query parameters \['pagetoken'\]"):
            validate_request("GET", "/v1/vehicles", BEARER, None, "pagetoken=t")
        with pytest.raises(AssertionError, match="unknown query parameters"):
            validate_request("GET", "/v1/vehicles/veh_1", BEARER, None, "expand=all")

    def test_a_broken_request_must_have_been_refused(self):
        broken = json.dumps({"vehicles": [{**VEHICLE, "make": "TRABANT"}]}).encode()
        for status in (400, 422, 404):
            validate_exchange_request("POST", "/v1/vehicles/connect", status, BEARER, broken)
        for status in (202, 429, 500):
            with pytest.raises(AssertionError, match=f"answered {status}, not refused"):
                validate_exchange_request("POST", "/v1/vehicles/connect", status, BEARER, broken)

    def test_check_exchange_checks_requests_answered_with_an_error(self):
        request = httpx.Request("GET", "http://volteras.invalid/v1/vehicles?bogus=1")
        answer = httpx.Response(500, headers=JSON, content=error("SERVER_ERROR"), request=request)
        with pytest.raises(AssertionError, match="unknown query parameters"):
            check_exchange(answer)


def signed(body: bytes, msg_id: str = "msg_1", secret: str = SECRET, at: int | None = None):
    timestamp = str(at if at is not None else int(time.time()))
    return {
        "content-type": "application/json",
        "svix-id": msg_id,
        "svix-timestamp": timestamp,
        "svix-signature": svix_signature(secret, msg_id, timestamp, body),
    }


class TestWebhookValidator:
    BODY = b'{"id":"veh_1","deviceType":"VEHICLE"}'

    def test_a_delivery_as_documented_passes(self):
        assert validate_webhook(signed(self.BODY), self.BODY, SECRET) == {
            "id": "veh_1",
            "deviceType": "VEHICLE",
        }

    def test_several_signatures_pass_if_one_matches(self):
        headers = signed(self.BODY)
        headers["svix-signature"] = "v1,AAAA " + headers["svix-signature"]
        validate_webhook(headers, self.BODY, SECRET)

    @pytest.mark.parametrize("missing", ["svix-id", "svix-timestamp", "svix-signature"])
    def test_each_svix_header_is_required(self, missing):
        headers = signed(self.BODY)
        del headers[missing]
        with pytest.raises(AssertionError, match=missing):
            validate_webhook(headers, self.BODY, SECRET)

    def test_a_signature_under_another_secret_is_refused(self):
        other = "whsec_" + "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA=="
        with pytest.raises(AssertionError, match="no v1 signature matches"):
            validate_webhook(signed(self.BODY, secret=other), self.BODY, SECRET)

    def test_a_body_changed_after_signing_is_refused(self):
        changed = b'{"id":"veh_2","deviceType":"VEHICLE"}'
        with pytest.raises(AssertionError, match="no v1 signature matches"):
            validate_webhook(signed(self.BODY), changed, SECRET)

    def test_a_stale_timestamp_is_refused(self):
        headers = signed(self.BODY, at=int(time.time()) - 3600)
        with pytest.raises(AssertionError, match=r"svix-timestamp 360[01]s off"):
            validate_webhook(headers, self.BODY, SECRET)

    def test_a_malformed_signature_is_refused(self):
        headers = {**signed(self.BODY), "svix-signature": "not-a-signature"}
        with pytest.raises(AssertionError, match="malformed signature"):
            validate_webhook(headers, self.BODY, SECRET)

    @pytest.mark.parametrize(
        "body",
        [
            b'{"id":"veh_1"}',
            b'{"id":"","deviceType":"VEHICLE"}',
            b'{"id":"veh_1","deviceType":"SPACESHIP"}',
            b'{"id":"veh_1","deviceType":"VEHICLE","vin":"WVWZZZ1JZ0W000001"}',
            b'{"type":"device.connected","data":{"id":"veh_1","deviceType":"VEHICLE"}}',
        ],
    )
    def test_a_body_other_than_the_documented_one_is_refused(self, body):
        with pytest.raises(AssertionError, match="body breaks the contract"):
            validate_webhook(signed(body), body, SECRET)

    def test_a_delivery_that_is_not_json_typed_is_refused(self):
        headers = {**signed(self.BODY), "content-type": "text/plain"}
        with pytest.raises(AssertionError, match="content type"):
            validate_webhook(headers, self.BODY, SECRET)

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
