"""Sandbox request validation: it refuses what the contract refuses, and only that.

Each case asks the contract (openapi-core) first, then the sandbox: a request
the schema admits must not be refused as malformed (`REQUEST_VALIDATION_ERROR`),
and one it refuses must answer 422 in the envelope, never 500.
"""

import base64
import json

import pytest

from tests.contract import validate_request
from tests.fixtures_sandbox import error_code

VIN = "1M8GDM9AXKP042788"
LINK = {"scopes": ["vehicle:all"], "deviceTypes": ["VEHICLE"]}


def schema_admits(path: str, body: dict) -> bool:
    headers = {"content-type": "application/json", "authorization": "Bearer x"}
    try:
        validate_request("POST", path, headers, json.dumps(body).encode())
    except AssertionError:
        return False
    return True


def assert_agrees_with_schema(api, path: str, body: dict, admitted: bool) -> None:
    assert schema_admits(path, body) is admitted, f"the schema's verdict on {body} changed"
    answer = api.post(path, json=body)
    if admitted:
        assert answer.status_code < 400, answer.text
    else:
        assert answer.status_code == 422, answer.text
        assert error_code(answer) == "REQUEST_VALIDATION_ERROR"


@pytest.mark.parametrize(
    ("extra", "admitted"),
    [
        ({"scopes": [["vehicle:all"]]}, False),
        ({"scopes": [{"a": 1}]}, False),
        ({"deviceTypes": [["VEHICLE"]]}, False),
        ({"deviceTypes": [{}]}, False),
        ({"makes": [["FORD"]]}, False),
        ({"makes": [{"make": "FORD"}]}, False),
        ({"integrationMethod": "CARRIER_PIGEON"}, False),
        ({"integrationMethod": "BMW_ENERGY_API"}, True),
        ({"chargerLocationLatitude": "north"}, False),
        ({"chargerLocationLongitude": [1.5]}, False),
        ({"chargerLocationLatitude": "51.5", "chargerLocationLongitude": -0.12}, True),
        ({"urlExpiration": 3600.0}, True),
        ({"urlExpiration": 3600.5}, False),
        ({"modelYear": 2022.0}, True),
        ({"vin": ""}, True),
    ],
)
def test_account_connect_validates_as_the_schema_says(sandbox_api, extra, admitted):
    assert_agrees_with_schema(sandbox_api, "/v1/accounts:connect", {**LINK, **extra}, admitted)


def test_an_unparsable_return_url_is_refused_not_a_server_error(sandbox_api):
    answer = sandbox_api.post("/v1/accounts:connect", json={**LINK, "returnUrl": "http://["})
    assert answer.status_code == 422, answer.text
    assert error_code(answer) == "REQUEST_VALIDATION_ERROR"


def test_whole_number_floats_are_integers_in_vehicle_uploads(sandbox_api):
    item = {
        "vin": VIN,
        "make": "FORD",
        "countryCode": "GB",
        "modelYear": 2022.0,
        "horsepower": 150.0,
    }
    assert_agrees_with_schema(sandbox_api, "/v1/vehicles/connect", {"vehicles": [item]}, True)
    group = sandbox_api.post("/v1/vehicles/connect", json={"vehicles": [item]}).json()
    result = sandbox_api.get(f"/v1/vehicles/connect/{group['id']}/results").json()["results"][0]
    assert result["modelYear"] == 2022
    assert json.dumps(result["modelYear"]) == "2022"


def entry(**fields) -> dict:
    return {"vins": [{"vin": VIN, "make": "FORD", "countryCode": "GB", **fields}]}


@pytest.mark.parametrize(
    ("body", "admitted"),
    [
        (entry(vin="1M8GDM9AXKP04278٣"), False),  # an Arabic-Indic digit
        (entry(vin="ÄM8GDM9AXKP042788"), False),
        (entry(vin="1M8GDM9AXKP042788\n"), False),
        (entry(vin=""), False),
        (entry(make=None), False),
        ({"vins": [{"make": "FORD", "countryCode": "GB"}]}, True),
    ],
)
def test_eligibility_validates_as_the_schema_says(sandbox_api, body, admitted):
    assert_agrees_with_schema(sandbox_api, "/v1/vehicles/eligibility", body, admitted)


def test_eligibility_entry_without_vin_is_left_out_of_the_results(sandbox_api):
    body = {"vins": [{"make": "FORD", "countryCode": "GB"}, entry()["vins"][0]]}
    check = sandbox_api.post("/v1/vehicles/eligibility", json=body).json()
    found = sandbox_api.get(f"/v1/vehicles/eligibility/{check['id']}/results").json()
    assert [(r["rowId"], r["vin"]) for r in found["results"]] == [(1, VIN)]


def crafted_token(after: object) -> str:
    cursor = json.dumps({"after": after, "filters": "0" * 16})
    return base64.urlsafe_b64encode(cursor.encode()).decode()


@pytest.mark.parametrize(
    ("path", "after"),
    [
        *(("/v1/vehicles", after) for after in ([1], {"a": 1}, "x", 2**70, None, 1.5, True)),
        *(("/v1/accounts", after) for after in ([1], {"a": 1}, 5, None, "a\x00b")),
    ],
)
def test_a_crafted_page_token_is_a_validation_error(sandbox_api, path, after):
    answer = sandbox_api.get(path, params={"pageToken": crafted_token(after)})
    assert answer.status_code == 422, answer.text
    assert error_code(answer) == "REQUEST_VALIDATION_ERROR"


@pytest.mark.parametrize("size", ["0", "-3"])
def test_a_page_size_below_one_asks_for_the_default(sandbox_api, size):
    # GET /v1/vehicles declares maxPageSize a plain integer, with no minimum.
    answer = sandbox_api.get("/v1/vehicles", params={"maxPageSize": size})
    assert answer.status_code == 200, answer.text


def test_a_page_size_that_is_not_a_whole_number_is_refused(sandbox_api):
    for size in ("1_0", "2.5", "ten"):
        answer = sandbox_api.get("/v1/vehicles", params={"maxPageSize": size})
        assert error_code(answer) == "REQUEST_VALIDATION_ERROR"


@pytest.mark.parametrize("name", ["filter", "pageToken", "maxPageSize", "tagKey", "tagValue"])
def test_an_empty_query_parameter_is_refused_as_the_contract_says(sandbox_api, name):
    # OpenAPI's allowEmptyValue defaults to false, and the contract never sets it.
    with pytest.raises(AssertionError):
        validate_request("GET", "/v1/vehicles", {"authorization": "Bearer x"}, None, f"{name}=")
    answer = sandbox_api.get("/v1/vehicles", params={name: ""})
    assert answer.status_code == 422, answer.text
    assert error_code(answer) == "REQUEST_VALIDATION_ERROR"


def test_empty_page_numbers_are_refused(sandbox_api):
    group = sandbox_api.post("/v1/vehicles/connect", json={"vehicles": []}).json()
    for name in ("maxPageSize", "currentPage"):
        answer = sandbox_api.get(f"/v1/vehicles/connect/{group['id']}/results", params={name: ""})
        assert error_code(answer) == "REQUEST_VALIDATION_ERROR"


def test_every_value_of_a_repeated_parameter_must_be_valid(sandbox_api):
    for query in ("filter=&filter=0", "maxPageSize=abc&maxPageSize=5", "maxPageSize=" + "9" * 5000):
        answer = sandbox_api.get(f"/v1/vehicles?{query}")
        assert answer.status_code == 422, (query, answer.text)
        assert error_code(answer) == "REQUEST_VALIDATION_ERROR"


def test_free_text_fields_of_any_length_are_kept(sandbox_api):
    # The contract puts no maxLength on these; the sandbox's columns had one
    # (refused by PostgreSQL as a 500, silently kept by SQLite).
    long = "X" * 300
    item = {"vin": long, "make": "FORD", "countryCode": long, "registrationPlate": long}
    good = {"vin": VIN, "make": "FORD", "countryCode": "GB", "registrationPlate": long,
            "model": long}  # fmt: skip
    group = sandbox_api.post("/v1/vehicles/connect", json={"vehicles": [item, good]}).json()
    found = sandbox_api.get(f"/v1/vehicles/connect/{group['id']}/results").json()["results"]
    assert [(r["vin"], r["status"]) for r in found] == [(long, "ERROR"), (VIN, "CONNECTED")]
    assert found[1]["registrationPlate"] == long
    vehicle = sandbox_api.get(f"/v1/vehicles/{found[1]['vehicleId']}").json()
    assert (vehicle["registrationPlate"], vehicle["model"]) == (long, long)
