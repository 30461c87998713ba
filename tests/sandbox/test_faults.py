"""Sandbox fault injection: 500s, 429s, latency, hangs, dropped connections, scoping."""

import time

import httpx
import pytest

from sandbox.rules import fake_vin
from tests.fixtures_sandbox import error_code


def test_next_request_fails_with_server_error_then_recovers(sandbox, sandbox_api):
    sandbox.control(faults=[{"kind": "error", "count": 1}])
    failed = sandbox_api.get("/v1/vehicles")
    assert failed.status_code == 500
    assert error_code(failed) == "SERVER_ERROR"
    assert sandbox_api.get("/v1/vehicles").status_code == 200
    assert sandbox.state()["faults"][0]["count"] == 0


def test_rate_limit_answers_429_with_retry_after(sandbox, sandbox_api):
    sandbox.control(faults=[{"kind": "rate_limit", "retry_after": 7, "count": 2}])
    answers = [sandbox_api.get("/v1/accounts") for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["retry-after"] == "7"
    assert error_code(answers[0]) == "INTERNAL_RATE_LIMITED"


def test_latency_is_added(sandbox, sandbox_api):
    sandbox.control(faults=[{"kind": "latency", "ms": 400, "count": 1}])
    started = time.monotonic()
    assert sandbox_api.get("/v1/vehicles").status_code == 200
    assert time.monotonic() - started >= 0.4


def test_hang_outlasts_the_client_timeout(sandbox, sandbox_api):
    sandbox.control(faults=[{"kind": "hang", "seconds": 3, "count": 1}])
    with pytest.raises(httpx.ReadTimeout):
        sandbox_api.get("/v1/vehicles", timeout=0.5)
    assert sandbox_api.get("/v1/vehicles").status_code == 200


def test_a_request_held_across_a_reset_leaves_the_fresh_sandbox_alone(sandbox, sandbox_api):
    """A hung POST that wakes after a reset neither writes nor consumes new faults
    (it once stole the next test's drop fault)."""
    sandbox.control(faults=[{"kind": "hang", "seconds": 1, "count": 1, "method": "POST"}])
    body = {"vehicles": [{"vin": fake_vin("FORD", "held"), "make": "FORD", "countryCode": "GB"}]}
    with pytest.raises(httpx.ReadTimeout):
        sandbox_api.post("/v1/vehicles/connect", json=body, timeout=0.2)
    sandbox.reset()
    token = sandbox.token()
    sandbox.control(faults=[{"kind": "drop", "method": "POST", "count": 1}])
    time.sleep(1.2)  # the held request wakes up now
    assert sandbox.state()["faults"][0]["count"] == 1
    listed = httpx.get(
        f"{sandbox.url}/v1/vehicles", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert listed.json()["results"] == []


def test_drop_applies_the_write_then_closes_the_connection(sandbox, sandbox_api):
    sandbox.control(faults=[{"kind": "drop", "method": "POST", "count": 1}])
    body = {"vehicles": [{"vin": fake_vin("FORD", "drop"), "make": "FORD", "countryCode": "GB"}]}
    with pytest.raises(httpx.RemoteProtocolError):
        sandbox_api.post("/v1/vehicles/connect", json=body)
    resent = sandbox_api.post("/v1/vehicles/connect", json=body)
    assert resent.status_code == 202
    found = sandbox_api.get(f"/v1/vehicles/connect/{resent.json()['id']}/results").json()
    [result] = found["results"]
    assert result["status"] == "CONNECTED"
    assert result["wasAlreadyConnected"] is True
    assert result["errors"][0]["code"] == "VEHICLE_ALREADY_ADDED_TO_ORGANIZATION"


def test_faults_are_scoped_by_path_method_and_share(sandbox, sandbox_api):
    sandbox.control(
        faults=[
            {"kind": "error", "path_prefix": "/v1/accounts"},
            {"kind": "error", "path_prefix": "/v1/vehicles", "method": "DELETE"},
            {"kind": "rate_limit", "share": 0},
        ]
    )
    assert sandbox_api.get("/v1/vehicles").status_code == 200
    assert sandbox_api.delete("/v1/vehicles/whatever").status_code == 500
    assert sandbox_api.get("/v1/accounts").status_code == 500
    assert sandbox_api.get("/v1/accounts").status_code == 500
    assert httpx.get(f"{sandbox.url}/_sandbox/control", timeout=5).status_code == 200


def test_reset_clears_faults_and_bad_controls_are_refused(sandbox, sandbox_api):
    sandbox.control(faults=[{"kind": "error"}], speed=2, vehicle_limit=5)
    state = sandbox.reset()
    assert state["faults"] == []
    assert state["speed"] == 0
    # Reset wipes tokens too: a fresh one works and meets no fault.
    headers = {"Authorization": f"Bearer {sandbox.token()}"}
    assert sandbox_api.get("/v1/vehicles", headers=headers).status_code == 200
    for bad in ({"faults": [{"kind": "explode"}]}, {"speed": -1}, {"nonsense": 1}):
        answer = httpx.post(
            f"{sandbox.url}/_sandbox/control", json=bad, auth=sandbox.credentials, timeout=5
        )
        assert answer.status_code == 400
    assert sandbox.state()["faults"] == []


@pytest.mark.parametrize(
    "path",
    ["/_sandbox/control", "/_sandbox/reset", "/_sandbox/connect-pending", "/_sandbox/expire-links"],
)
def test_changes_to_the_sandbox_need_its_credentials(sandbox, sandbox_api, path):
    for auth in (None, (sandbox.client_id, "wrong"), ("someone", sandbox.client_secret)):
        refused = httpx.post(f"{sandbox.url}{path}", json={}, auth=auth, timeout=5)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"].startswith("Basic ")
    bearer = {"Authorization": sandbox_api.headers["Authorization"]}
    assert httpx.post(f"{sandbox.url}{path}", json={}, headers=bearer, timeout=5).status_code == 200
    wrong_bearer = {"Authorization": "Bearer nope"}
    assert httpx.post(f"{sandbox.url}{path}", json={}, headers=wrong_bearer).status_code == 401
    # Reads stay open: the overview, the state and the webhook log.
    assert httpx.get(f"{sandbox.url}/_sandbox/control", timeout=5).status_code == 200
