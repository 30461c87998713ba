"""Sandbox VIN connection: rules, magic VINs, re-submission, limits, pages, vehicles."""

import json
import time

import pytest

from sandbox.rules import fake_vin
from tests.contract import SPEC_PATH, openapi
from tests.fixtures_sandbox import error_code

REAL_VIN = "1M8GDM9AXKP042788"  # a real VIN with a valid check digit (X)


def magic(prefix: str) -> str:
    return prefix + "0" * (17 - len(prefix))


def vehicle(vin: str, make: str = "VOLKSWAGEN", country: str | None = "GB", **extra) -> dict:
    return {"vin": vin, "make": make, "countryCode": country, **extra}


def connect(api, *vehicles: dict) -> dict:
    answer = api.post("/v1/vehicles/connect", json={"vehicles": list(vehicles)})
    assert answer.status_code == 202, answer.text
    return answer.json()


def results(api, group_id: str, **params) -> dict:
    answer = api.get(f"/v1/vehicles/connect/{group_id}/results", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def only_result(api, *vehicles: dict) -> dict:
    group = connect(api, *vehicles)
    return results(api, group["id"])["results"][-1]


RULES = [
    # vin, make, country, status, error code, actionCategory, canRetry
    (REAL_VIN, "FORD", "GB", "CONNECTED", None, None, None),
    (magic("ALERT511"), "FORD", "GB", "CONNECTED", None, None, None),
    (magic("PR0C11"), "FORD", "GB", "PENDING", None, None, None),
    (magic("C0NSENT1"), "TESLA", "GB", "CONNECTION_REQUIRED", None, None, False),
    (magic("1NC0MP11"), "FORD", "GB", "INCOMPATIBLE", "OEM_VEHICLE_NOT_COMPATIBLE",
     "CONTACT_SUPPORT", False),
    (magic("PERR0R11"), "FORD", "GB", "ERROR", "OEM_VEHICLE_UPDATE_REQUIRED", "CUSTOMER_ACTION",
     True),
    (magic("0FFL1NE1"), "FORD", "GB", "ERROR", "OEM_VEHICLE_OFFLINE", "CUSTOMER_ACTION", True),
    (magic("REM0TE11"), "FORD", "GB", "ERROR", "OEM_VEHICLE_REMOTE_ACCESS_DISABLED",
     "CUSTOMER_ACTION", True),
    (magic("SHAR1NG1"), "FORD", "GB", "ERROR", "OEM_VEHICLE_DATA_SHARING_DISABLED",
     "CUSTOMER_ACTION", True),
    (magic("FC0NSNT1"), "FORD", "GB", "ERROR", "FLEET_CONSENT_MISSING", "CUSTOMER_ACTION", True),
    (magic("DR1VER11"), "FORD", "GB", "ERROR", "OEM_AUTH_DRIVER_IS_NOT_PRIMARY_USER",
     "CUSTOMER_ACTION", True),
    (magic("N0TF0UND"), "FORD", "GB", "ERROR", "OEM_DEVICE_NOT_FOUND", "CONTACT_SUPPORT", False),
    (magic("N0PERM11"), "FORD", "GB", "ERROR", "NOT_PERMITTED", "CONTACT_SUPPORT", False),
    (magic("N0CHECK1"), "FORD", "GB", "ERROR", "VIN_CHECK_NOT_SUPPORTED", "CONTACT_SUPPORT", False),
    (magic("N0UPL0AD"), "FORD", "GB", "ERROR", "VIN_UPLOAD_NOT_SUPPORTED", "CONTACT_SUPPORT",
     False),
    (magic("BLACK11S"), "FORD", "GB", "ERROR", "VIN_BLACKLISTED", "UNDER_REVIEW", False),
    (magic("SUBJ0000"), "FORD", "GB", "ERROR", "SUBJECTS_NOT_ASSIGNABLE", "CONTACT_SUPPORT", True),
    ("WVWZZZ1KZAW000001", "VOLKSWAGEN", "GB", "ERROR", "INVALID_VIN", "CUSTOMER_ACTION", False),
    ("1M8GDM9AXKP04278", "FORD", "GB", "ERROR", "INVALID_VIN", "CUSTOMER_ACTION", False),
    ("1M8GDM9AXKP04278O", "FORD", "GB", "ERROR", "INVALID_VIN", "CUSTOMER_ACTION", False),
    (REAL_VIN, "FORD", "GBR", "ERROR", "VIN_UPLOAD_INVALID_FORMAT", "CUSTOMER_ACTION", False),
    (REAL_VIN, "FORD", None, "ERROR", "VIN_UPLOAD_INVALID_FORMAT", "CUSTOMER_ACTION", False),
    (REAL_VIN, "KIA", "US", "ERROR", "OEM_INCORRECT_REGION", "CUSTOMER_ACTION", False),
    (REAL_VIN, "HYUNDAI", "JP", "ERROR", "OEM_INCORRECT_REGION", "CUSTOMER_ACTION", False),
    (REAL_VIN, "BMW", "AU", "ERROR", "OEM_INCORRECT_REGION", "CUSTOMER_ACTION", False),
    (REAL_VIN, "MINI", "US", "CONNECTED", None, None, None),
    (REAL_VIN, "KIA", "DE", "CONNECTED", None, None, None),
]  # fmt: skip


@pytest.mark.parametrize(("vin", "make", "country", "status", "code", "category", "retry"), RULES)
def test_every_rule_produces_its_documented_outcome(
    sandbox_api, vin, make, country, status, code, category, retry
):
    result = only_result(sandbox_api, vehicle(vin, make, country))
    assert result["status"] == status
    assert [e["code"] for e in result["errors"]] == ([code] if code else [])
    assert [e["actionCategory"] for e in result["errors"]] == ([category] if code else [])
    assert result["canRetry"] is retry
    assert result["wasAlreadyConnected"] is False
    assert (result["vehicleId"] is not None) is (status == "CONNECTED")


def test_group_moves_through_its_states_at_demo_speed(sandbox, sandbox_api):
    # Speed 1: the group is CREATED for 0.5 s, then PROCESSING until 2 s; its
    # VIN is PROCESSING for 1 s, then PENDING, then CONNECTED at 2 s. Each
    # window is wide beside a loopback call, so polling sees every state. The
    # sandbox is another process: its clock is real, so this test polls it.
    openapi()  # parse the contract now, not inside the first timed exchange
    sandbox.control(speed=1)
    group = connect(sandbox_api, vehicle(magic("ALERT511"), "FORD"))
    assert group["status"] == "CREATED"
    groups: list[str] = []
    vins: list[dict] = []
    deadline = time.monotonic() + 15
    while not (groups[-1:] == ["COMPLETED"] and vins[-1:] and vins[-1]["status"] == "CONNECTED"):
        assert time.monotonic() < deadline, f"not settled after 15 s: {groups} {vins}"
        status = sandbox_api.get(f"/v1/vehicles/connect/{group['id']}").json()["status"]
        if groups[-1:] != [status]:
            groups.append(status)
        vin = results(sandbox_api, group["id"])["results"][0]
        if not vins or vins[-1]["status"] != vin["status"]:
            vins.append(vin)
        time.sleep(0.02)
    assert groups == ["CREATED", "PROCESSING", "COMPLETED"]
    assert [v["status"] for v in vins] == ["PROCESSING", "PENDING", "CONNECTED"]
    assert [v["vehicleId"] is not None for v in vins] == [False, False, True]


def test_group_is_completed_on_first_read_at_speed_zero(sandbox_api):
    group = connect(sandbox_api, vehicle(REAL_VIN, "FORD"), vehicle(magic("PR0C11"), "FORD"))
    answer = sandbox_api.get(f"/v1/vehicles/connect/{group['id']}")
    assert answer.json() == {**group, "status": "COMPLETED"}
    statuses = [r["status"] for r in results(sandbox_api, group["id"])["results"]]
    assert statuses == ["CONNECTED", "PENDING"]


def test_pending_vehicle_connects_later(sandbox, sandbox_api):
    sandbox.control(pending_seconds=3600)
    group = connect(sandbox_api, vehicle(magic("PEND1NG1"), "FORD"), vehicle(magic("PR0C11")))
    pending, forever = results(sandbox_api, group["id"])["results"]
    assert (pending["status"], forever["status"]) == ("PENDING", "PENDING")
    assert len(sandbox.connect_pending()) == 1
    pending, forever = results(sandbox_api, group["id"])["results"]
    assert pending["status"] == "CONNECTED"
    assert forever["status"] == "PENDING"
    got = sandbox_api.get(f"/v1/vehicles/{pending['vehicleId']}").json()
    assert got["connectionStatus"] == "CONNECTED"
    assert got["vin"] == magic("PEND1NG1")


@pytest.mark.parametrize(
    ("vin", "status", "code"),
    [
        (REAL_VIN, "CONNECTED", "VEHICLE_ALREADY_ADDED_TO_ORGANIZATION"),
        (magic("PR0C11"), "PENDING", "VEHICLE_ALREADY_ADDED_PENDING_CONNECTION"),
        (magic("C0NSENT1"), "CONNECTION_REQUIRED", "VEHICLE_ALREADY_ADDED_CONNECTION_REQUIRED"),
        (magic("1NC0MP11"), "INCOMPATIBLE", "VEHICLE_ALREADY_ADDED_INCOMPATIBLE"),
    ],
)
def test_resubmission_answers_already_added(sandbox_api, vin, status, code):
    first = only_result(sandbox_api, vehicle(vin, "FORD"))
    again = only_result(sandbox_api, vehicle(vin, "FORD"))
    assert again["status"] == status
    assert [e["code"] for e in again["errors"]] == [code]
    assert again["wasAlreadyConnected"] is (status == "CONNECTED")
    assert again["vehicleId"] == first["vehicleId"]


def test_device_limit_per_vin_then_for_the_whole_request(sandbox, sandbox_api):
    sandbox.control(vehicle_limit=2)
    vins = [fake_vin("FORD", f"limit-{n}") for n in range(3)]
    group = connect(sandbox_api, *(vehicle(v, "FORD") for v in vins))
    found = results(sandbox_api, group["id"])["results"]
    assert [r["status"] for r in found] == ["CONNECTED", "CONNECTED", "ERROR"]
    assert found[2]["errors"][0]["code"] == "DEVICE_LIMIT_REACHED"
    assert found[2]["canRetry"] is True
    refused = sandbox_api.post(
        "/v1/vehicles/connect", json={"vehicles": [vehicle(fake_vin("FORD", "one more"))]}
    )
    assert refused.status_code == 403
    assert error_code(refused) == "DEVICE_LIMIT_REACHED"


def test_request_validation(sandbox_api):
    too_many = [vehicle(fake_vin("FORD", str(n)), "FORD") for n in range(101)]
    bad_make = [vehicle(REAL_VIN, "TRABANT")]
    no_country = [{"vin": REAL_VIN, "make": "FORD"}]
    for body in ({"vehicles": too_many}, {"vehicles": bad_make}, {"vehicles": no_country}, {}):
        answer = sandbox_api.post("/v1/vehicles/connect", json=body)
        assert answer.status_code == 422
        assert error_code(answer) == "REQUEST_VALIDATION_ERROR"
    garbage = sandbox_api.post(
        "/v1/vehicles/connect", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert error_code(garbage) == "REQUEST_VALIDATION_ERROR"


def test_an_empty_vehicle_list_is_accepted_as_the_contract_allows(sandbox_api):
    # BulkConnectVehicleRequest.vehicles has maxItems 100 and no minItems, so
    # an empty list is a valid request: an empty group, not a refusal. (The
    # portal never sends one: the client refuses it before sending.)
    group = connect(sandbox_api)
    assert sandbox_api.get(f"/v1/vehicles/connect/{group['id']}").json()["status"] == "COMPLETED"
    page = results(sandbox_api, group["id"])
    assert (page["results"], page["totalResults"]) == ([], 0)
    spec = json.loads(SPEC_PATH.read_text())
    vehicles = spec["components"]["schemas"]["BulkConnectVehicleRequest"]["properties"]["vehicles"]
    assert (vehicles["maxItems"], vehicles.get("minItems")) == (100, None)


def test_tags_and_fields_are_stored_and_returned(sandbox_api):
    tags = [{"key": "depot", "value": "Leeds"}]
    sent = vehicle(REAL_VIN, "FORD", tags=tags, registrationPlate="AB12 CDE", modelYear=2022)
    result = only_result(sandbox_api, sent)
    assert result["tags"] == tags
    assert result["registrationPlate"] == "AB12 CDE"
    got = sandbox_api.get(f"/v1/vehicles/{result['vehicleId']}").json()
    assert (got["registrationPlate"], got["modelYear"]) == ("AB12 CDE", "2022")
    listed = sandbox_api.get("/v1/vehicles", params={"tagKey": "depot", "tagValue": "Leeds"})
    assert [v["id"] for v in listed.json()["results"]] == [result["vehicleId"]]
    other = sandbox_api.get("/v1/vehicles", params={"tagKey": "depot", "tagValue": "York"})
    assert other.json()["results"] == []


def test_results_are_numbered_pages_from_zero(sandbox_api):
    vins = [fake_vin("FORD", f"page-{n}") for n in range(5)]
    group = connect(sandbox_api, *(vehicle(v, "FORD") for v in vins))
    pages = [results(sandbox_api, group["id"], maxPageSize=2, currentPage=n) for n in range(3)]
    assert [p["totalResults"] for p in pages] == [5, 5, 5]
    assert [r["vin"] for p in pages for r in p["results"]] == vins


def test_vehicle_list_cursor_pages(sandbox_api):
    vins = [fake_vin("FORD", f"list-{n}") for n in range(5)]
    connect(sandbox_api, *(vehicle(v, "FORD") for v in vins))
    seen, token = [], None
    while True:
        params = {"maxPageSize": 2, **({"pageToken": token} if token else {})}
        page = sandbox_api.get("/v1/vehicles", params=params).json()
        assert page["totalResults"] == 5
        seen += [v["vin"] for v in page["results"]]
        token = page["nextPageToken"]
        if token is None:
            break
    assert seen == vins
    too_large = sandbox_api.get("/v1/vehicles", params={"maxPageSize": 101})
    assert too_large.status_code == 400
    assert error_code(too_large) == "PAGE_SIZE_TOO_LARGE"
    first = sandbox_api.get("/v1/vehicles", params={"maxPageSize": 2}).json()
    changed = sandbox_api.get(
        "/v1/vehicles",
        params={"maxPageSize": 2, "pageToken": first["nextPageToken"], "tagKey": "x"},
    )
    assert error_code(changed) == "PAGINATED_QUERY_FILTER_CHANGED"


def test_delete_disconnects_and_unknown_ids_are_not_found(sandbox_api):
    result = only_result(sandbox_api, vehicle(REAL_VIN, "FORD"))
    vehicle_id = result["vehicleId"]
    assert sandbox_api.delete(f"/v1/vehicles/{vehicle_id}").status_code == 202
    assert sandbox_api.get(f"/v1/vehicles/{vehicle_id}").json()["connectionStatus"] == (
        "DISCONNECTED"
    )
    assert sandbox_api.get("/v1/vehicles").json()["results"] == []
    again = only_result(sandbox_api, vehicle(REAL_VIN, "FORD"))
    assert again["status"] == "CONNECTED"
    assert again["vehicleId"] != vehicle_id
    for path in ("/v1/vehicles/nope", "/v1/vehicles/connect/nope", "/v1/accounts/nope"):
        answer = sandbox_api.get(path)
        assert answer.status_code == 404
        assert error_code(answer) == "RESOURCE_NOT_FOUND"
    assert error_code(sandbox_api.delete("/v1/vehicles/nope")) == "RESOURCE_NOT_FOUND"


def test_eligibility_check(sandbox_api):
    entries = [
        {"vin": REAL_VIN, "make": "FORD", "countryCode": "GB"},
        {"vin": magic("1NC0MP11"), "make": "FORD", "countryCode": "GB"},
        {"vin": "WVWZZZ1KZAW000001", "make": "VOLKSWAGEN", "countryCode": "DE"},
        {"vin": magic("N0UPL0AD"), "make": "FORD", "countryCode": "GB"},
        {"vin": REAL_VIN, "make": "KIA", "countryCode": "US"},
    ]
    answer = sandbox_api.post("/v1/vehicles/eligibility", json={"vins": entries})
    assert answer.status_code == 202
    check_id = answer.json()["id"]
    found = sandbox_api.get(f"/v1/vehicles/eligibility/{check_id}/results").json()
    assert [r["status"] for r in found["results"]] == [
        "ELIGIBLE",
        "INELIGIBLE",
        "VALIDATION_ERROR",
        "NOT_SUPPORTED",
        "INELIGIBLE",
    ]
    assert [r["rowId"] for r in found["results"]] == [0, 1, 2, 3, 4]
    refused = sandbox_api.post("/v1/vehicles/eligibility", json={"vins": []})
    assert error_code(refused) == "REQUEST_VALIDATION_ERROR"


# Statuses the contract lists that only a magic VIN brings about. `sandbox_api`
# checks every answer against openapi.json, so each test also proves the
# answer carrying the rare status is a valid one.


def test_a_group_failure_vin_makes_the_whole_group_fail(sandbox_api):
    group = connect(sandbox_api, vehicle(REAL_VIN, "FORD"), vehicle(magic("FA1LGRP1"), "FORD"))
    status = sandbox_api.get(f"/v1/vehicles/connect/{group['id']}").json()["status"]
    assert status == "FAILED"
    found = results(sandbox_api, group["id"])["results"]
    assert [(r["status"], r["canRetry"], r["vehicleId"]) for r in found] == [
        ("ERROR", True, None),
        ("ERROR", True, None),
    ]
    assert sandbox_api.get("/v1/vehicles").json()["totalResults"] == 0
    again = only_result(sandbox_api, vehicle(REAL_VIN, "FORD"))
    assert (again["status"], again["wasAlreadyConnected"]) == ("CONNECTED", False)


@pytest.mark.parametrize(
    ("prefix", "status"),
    [("1NELPND1", "INELIGIBLE_PENDING_FAILURE_REASON"), ("EFA1LED1", "FAILED")],
)
def test_eligibility_magic_vins(sandbox_api, prefix, status):
    entries = [{"vin": magic(prefix), "make": "FORD", "countryCode": "GB"}]
    check = sandbox_api.post("/v1/vehicles/eligibility", json={"vins": entries}).json()
    found = sandbox_api.get(f"/v1/vehicles/eligibility/{check['id']}/results").json()
    assert [r["status"] for r in found["results"]] == [status]
    assert found["results"][0]["errorMessage"]
    # A connection treats them as any valid VIN.
    assert only_result(sandbox_api, vehicle(magic(prefix), "FORD"))["status"] == "CONNECTED"


def test_a_vin_resubmitted_while_pending_ends_as_a_reupload_of_a_connected_vehicle(
    sandbox, sandbox_api
):
    sandbox.control(pending_seconds=3600)
    first = connect(sandbox_api, vehicle(magic("PEND1NG1"), "FORD"))
    again = connect(sandbox_api, vehicle(magic("PEND1NG1"), "FORD"))
    waiting = results(sandbox_api, again["id"])["results"][0]
    assert [e["code"] for e in waiting["errors"]] == ["VEHICLE_ALREADY_ADDED_PENDING_CONNECTION"]
    assert (waiting["status"], waiting["wasAlreadyConnected"]) == ("PENDING", False)
    sandbox.connect_pending()
    done = results(sandbox_api, again["id"])["results"][0]
    # wasAlreadyConnected: "a re-upload ... completed successfully on an existing vehicle".
    assert (done["status"], done["wasAlreadyConnected"]) == ("CONNECTED", True)
    assert [e["code"] for e in done["errors"]] == ["VEHICLE_ALREADY_ADDED_TO_ORGANIZATION"]
    original = results(sandbox_api, first["id"])["results"][0]
    assert done["vehicleId"] == original["vehicleId"]
    assert (original["status"], original["wasAlreadyConnected"]) == ("CONNECTED", False)


def test_delete_answers_202_with_no_body_as_documented(sandbox_api):
    result = only_result(sandbox_api, vehicle(REAL_VIN, "FORD"))
    answer = sandbox_api.delete(f"/v1/vehicles/{result['vehicleId']}")
    assert answer.status_code == 202
    assert "content-type" not in answer.headers
    assert answer.content == b""
