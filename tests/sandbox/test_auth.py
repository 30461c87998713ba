"""Sandbox OAuth: client credentials, refresh, test-token, expiry and bad tokens."""

import json
import re
import time

import httpx

from tests.contract import SPEC_PATH, response_hook
from tests.fixtures_sandbox import error_code


def _client(sandbox, **kwargs) -> httpx.Client:
    return httpx.Client(
        base_url=sandbox.url, event_hooks={"response": [response_hook]}, timeout=10, **kwargs
    )


def _token(client: httpx.Client, sandbox, **data) -> httpx.Response:
    return client.post(
        "/v1/oauth2/token",
        data={"grant_type": "client_credentials", **data},
        auth=(sandbox.client_id, sandbox.client_secret),
    )


def test_client_credentials_then_test_token(sandbox):
    with _client(sandbox) as client:
        answer = _token(client, sandbox)
        assert answer.status_code == 200
        body = answer.json()
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == 3600
        headers = {"Authorization": f"Bearer {body['access_token']}"}
        who = client.post("/v1/oauth2/test-token", headers=headers)
    assert who.status_code == 200
    assert who.json()["clientId"] == sandbox.client_id
    assert who.json()["organizationId"]


def test_wrong_secret_is_refused(sandbox):
    with _client(sandbox) as client:
        answer = client.post(
            "/v1/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(sandbox.client_id, "not-the-secret"),
        )
    assert answer.status_code == 401
    assert error_code(answer) == "AUTHENTICATION_ERROR"


def test_unknown_grant_type_is_a_validation_error(sandbox):
    with _client(sandbox) as client:
        answer = _token(client, sandbox, grant_type="password")
    assert answer.status_code == 422
    assert error_code(answer) == "REQUEST_VALIDATION_ERROR"


def test_refresh_token_gives_a_new_token_once(sandbox):
    with _client(sandbox) as client:
        first = _token(client, sandbox).json()
        # The contract puts the whole token endpoint behind HTTP Basic.
        refresh = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
        credentials = (sandbox.client_id, sandbox.client_secret)
        refreshed = client.post("/v1/oauth2/token", data=refresh, auth=credentials)
        again = client.post("/v1/oauth2/token", data=refresh, auth=credentials)
        assert refreshed.status_code == 200
        new = refreshed.json()["access_token"]
        assert new != first["access_token"]
        ok = client.get("/v1/vehicles", headers={"Authorization": f"Bearer {new}"})
    assert ok.status_code == 200
    assert again.status_code == 401
    assert error_code(again) == "AUTHENTICATION_ERROR"


def test_missing_and_wrong_bearer_tokens_are_refused(sandbox):
    with _client(sandbox) as client:
        missing = client.get("/v1/vehicles")
        wrong = client.get("/v1/vehicles", headers={"Authorization": "Bearer nope"})
        basic = client.get("/v1/accounts", auth=(sandbox.client_id, sandbox.client_secret))
    for answer in (missing, wrong, basic):
        assert answer.status_code == 401
        assert error_code(answer) == "AUTHENTICATION_ERROR"


def test_token_expires_after_the_ttl(sandbox):
    sandbox.control(token_ttl=1)
    with _client(sandbox) as client:
        body = _token(client, sandbox).json()
        assert body["expires_in"] == 1
        headers = {"Authorization": f"Bearer {body['access_token']}"}
        assert client.get("/v1/vehicles", headers=headers).status_code == 200
        deadline = time.monotonic() + 5
        answer = client.get("/v1/vehicles", headers=headers)
        while answer.status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.1)
            answer = client.get("/v1/vehicles", headers=headers)
    assert answer.status_code == 401
    assert "expired" in answer.json()["message"]


def test_unknown_endpoint_answers_not_found_envelope(sandbox_api):
    answer = sandbox_api.get("/v1/no-such-thing")
    assert answer.status_code == 404
    assert error_code(answer) == "RESOURCE_NOT_FOUND"


def test_credentials_are_checked_before_the_grant_type(sandbox):
    with _client(sandbox) as client:
        wrong = client.post(
            "/v1/oauth2/token", data={"grant_type": "password"}, auth=(sandbox.client_id, "nope")
        )
        none = client.post("/v1/oauth2/token", data={"grant_type": "password"})
        no_form = client.post("/v1/oauth2/token", json={"grant_type": "client_credentials"})
    for answer in (wrong, none, no_form):
        assert answer.status_code == 401
        assert error_code(answer) == "AUTHENTICATION_ERROR"
        assert answer.headers["WWW-Authenticate"].startswith("Basic ")


def test_a_refresh_needs_the_client_credentials_too(sandbox):
    with _client(sandbox) as client:
        first = _token(client, sandbox).json()
        refresh = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
        refused = client.post("/v1/oauth2/token", data=refresh)
        accepted = client.post(
            "/v1/oauth2/token", data=refresh, auth=(sandbox.client_id, sandbox.client_secret)
        )
    assert refused.status_code == 401
    assert accepted.status_code == 200


def test_a_bearer_401_names_its_scheme(sandbox):
    with _client(sandbox) as client:
        answer = client.get("/v1/vehicles")
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer ")


IMPLEMENTED = {
    ("post", "/v1/oauth2/token"), ("post", "/v1/oauth2/test-token"), ("get", "/v1/accounts"),
    ("get", "/v1/accounts/{account_id}"), ("post", "/v1/accounts:connect"),
    ("post", "/v1/accounts/{account_id}:disconnect"), ("get", "/v1/vehicles"),
    ("get", "/v1/vehicles/{vehicle_id}"), ("delete", "/v1/vehicles/{vehicle_id}"),
    ("post", "/v1/vehicles/connect"), ("get", "/v1/vehicles/connect/{id}"),
    ("get", "/v1/vehicles/connect/{id}/results"), ("post", "/v1/vehicles/eligibility"),
    ("get", "/v1/vehicles/eligibility/{id}/results"),
}  # fmt: skip


def unimplemented_operations() -> list[tuple[str, str]]:
    spec = json.loads(SPEC_PATH.read_text())
    found = []
    for template, operations in spec["paths"].items():
        for method in operations:
            if method in ("get", "post", "put", "patch", "delete") and (
                (method, template) not in IMPLEMENTED
            ):
                found.append((method.upper(), re.sub(r"\{[^}]+\}", "abc", template)))
    return found


def test_unimplemented_operations_check_the_token_then_answer_the_envelope(sandbox, sandbox_api):
    operations = unimplemented_operations()
    assert len(operations) > 30
    with _client(sandbox) as anonymous:
        for method, path in operations:
            refused = anonymous.request(method, path)
            assert refused.status_code == 401, (method, path, refused.text)
            assert error_code(refused) == "AUTHENTICATION_ERROR"
            assert refused.headers["WWW-Authenticate"].startswith("Bearer ")
    for method, path in operations:
        # The hook checks the code is one this operation documents.
        answer = sandbox_api.request(method, path)
        assert answer.status_code in (404, 501), (method, path, answer.text)
