"""The sandbox's answers held to the stricter contract checks where the rest of
the suite never looks: states that only exist while time passes (the suite runs
the sandbox at speed 0), error answers off the happy path, and real webhook
deliveries.

Every exchange here goes through `response_hook` (`sandbox_api`) or the
`ContractWatch` of the portal's own client, so the test bodies only need to
make the sandbox produce the answer; the hooks judge it.
"""

import json
import time

from connections import volteras
from connections.volteras import EligibilityInput, GroupStatus, VehicleInput
from sandbox.rules import fake_vin
from tests.contract import WEBHOOK_EVENT_TYPES, validate_webhook
from tests.fixtures_sandbox import connect_vins, error_code

# With speed 1 a group is CREATED for 0.5 s and PROCESSING until 2 s; each VIN
# is PROCESSING until 1 s and PENDING until 2 s; eligibility is SUBMITTED for 1 s.
SPEED = 1.0
POLL_SECONDS = 0.05
DEADLINE_SECONDS = 15.0

NORMAL = fake_vin("VOLKSWAGEN", "contract-speed")
INCOMPATIBLE = "1NC0MP11" + "0" * 9
ERROR = "PERR0R11" + "0" * 9


def test_intermediate_connect_states_answer_the_contract(db, volteras, contract_watch):
    volteras.control(speed=SPEED, pending_seconds=3600)
    client = volteras_client()
    vehicles = [VehicleInput(vin, "VOLKSWAGEN", "GB") for vin in (NORMAL, INCOMPATIBLE, ERROR)]

    group = client.connect_vehicles(vehicles)
    group_states = [str(group.status)]
    vin_states: set[str] = set()
    deadline = time.monotonic() + DEADLINE_SECONDS
    while group_states[-1] != GroupStatus.COMPLETED and time.monotonic() < deadline:
        group_states.append(str(client.get_connect_group(group.id).status))
        vin_states |= {str(result.status) for result in client.connect_results(group.id)}
        time.sleep(POLL_SECONDS)
    vin_states |= {str(result.status) for result in client.connect_results(group.id)}

    assert {"CREATED", "PROCESSING", "COMPLETED"} <= set(group_states), group_states
    assert {"PROCESSING", "PENDING", "CONNECTED", "INCOMPATIBLE", "ERROR"} <= vin_states
    assert contract_watch.checked >= 2 * len(group_states)


def test_eligibility_while_submitted_answers_the_contract(db, volteras, contract_watch):
    volteras.control(speed=SPEED)
    client = volteras_client()
    check = client.check_eligibility(
        [EligibilityInput(NORMAL, country_code="GB", make="VOLKSWAGEN")]
    )

    states: list[set[str]] = []
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        states.append({str(r.status) for r in client.eligibility_results(check.id)})
        if "SUBMITTED" not in states[-1]:
            break
        time.sleep(POLL_SECONDS)
    assert states[0] == {"SUBMITTED"}, states
    assert states[-1] == {"ELIGIBLE"}, states


def volteras_client() -> volteras.VolterasClient:
    """The portal's own client (watched by `contract_watch`)."""
    return volteras.get_client()


class TestErrorAnswersOffTheHappyPath:
    """`sandbox_api` checks each exchange; these make the sandbox answer errors."""

    def test_an_unknown_path(self, sandbox_api):
        response = sandbox_api.get("/v1/no-such-thing")
        assert (response.status_code, error_code(response)) == (404, "RESOURCE_NOT_FOUND")

    def test_a_wrong_method_on_a_known_path(self, sandbox_api):
        response = sandbox_api.put("/v1/vehicles", json={})
        assert response.status_code == 405

    def test_a_broken_request_is_refused(self, sandbox_api):
        body = {"vehicles": [{"vin": NORMAL, "make": "TRABANT", "countryCode": "GB"}]}
        response = sandbox_api.post("/v1/vehicles/connect", json=body)
        assert error_code(response) == "REQUEST_VALIDATION_ERROR"

    def test_a_page_too_large(self, sandbox_api):
        response = sandbox_api.get("/v1/vehicles", params={"maxPageSize": 1000})
        assert error_code(response) == "PAGE_SIZE_TOO_LARGE"

    def test_a_missing_token(self, sandbox, sandbox_api):
        response = sandbox_api.get("/v1/vehicles", headers={"Authorization": "Bearer nope"})
        assert (response.status_code, error_code(response)) == (401, "AUTHENTICATION_ERROR")

    def test_a_rate_limit(self, sandbox, sandbox_api):
        fault = {"kind": "rate_limit", "path_prefix": "/v1/vehicles", "method": "GET", "count": 1}
        sandbox.control(faults=[fault])
        response = sandbox_api.get("/v1/vehicles")
        assert (response.status_code, error_code(response)) == (429, "INTERNAL_RATE_LIMITED")

    def test_a_server_error_on_a_write(self, sandbox, sandbox_api):
        fault = {"kind": "error", "path_prefix": "/v1/vehicles/connect", "method": "POST"}
        sandbox.control(faults=[fault])
        body = {"vehicles": [{"vin": NORMAL, "make": "VOLKSWAGEN", "countryCode": "GB"}]}
        response = sandbox_api.post("/v1/vehicles/connect", json=body)
        assert (response.status_code, error_code(response)) == (500, "SERVER_ERROR")

    def test_a_delete_accepted_and_repeated(self, sandbox_api):
        [vehicle_id] = connect_vins(sandbox_api, NORMAL)
        accepted = sandbox_api.delete(f"/v1/vehicles/{vehicle_id}")
        assert (accepted.status_code, accepted.content) == (202, b"")
        again = sandbox_api.delete(f"/v1/vehicles/{vehicle_id}")
        assert (again.status_code, error_code(again)) == (404, "RESOURCE_NOT_FOUND")


def test_delivered_webhooks_answer_the_contract(sandbox, sandbox_api, receiver):
    """Real Svix deliveries from the sandbox: connected, disconnected, a
    pending vehicle connecting later, a retry after a failed attempt and a
    duplicate, each one checked."""
    sandbox.control(webhook_duplicates=1, pending_seconds=3600)
    receiver.statuses = [500]
    [vehicle_id] = connect_vins(sandbox_api, NORMAL)
    connect_vins(sandbox_api, "PEND1NG1" + "0" * 9)
    sandbox.connect_pending()
    assert sandbox_api.delete(f"/v1/vehicles/{vehicle_id}").status_code == 202

    # connected (failed once, then retried and duplicated), pending connected
    # (duplicated), disconnected (duplicated).
    delivered = receiver.wait_for(7)
    for headers, body in delivered:
        payload = validate_webhook(headers, body, sandbox.webhook_secret)
        assert payload["deviceType"] == "VEHICLE"
    types = {d["msgId"]: d["type"] for d in sandbox.deliveries()}
    assert {types[headers["svix-id"]] for headers, _ in delivered} == WEBHOOK_EVENT_TYPES
    assert json.loads(delivered[0][1])["id"] == vehicle_id
