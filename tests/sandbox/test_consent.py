"""Sandbox consent flow: the link, the HTML pages, accounts and disconnection."""

import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.fixtures_sandbox import error_code

RETURN_URL = "https://portal.example/consent/return?link=42"
VIN = "1M8GDM9AXKP042788"


def link(api, **payload) -> str:
    body = {"scopes": ["vehicle:all"], "deviceTypes": ["VEHICLE"], "returnUrl": RETURN_URL}
    answer = api.post("/v1/accounts:connect", json={**body, **payload})
    assert answer.status_code == 200, answer.text
    return answer.json()["authenticationUrl"]


def offered(page: str) -> list[str]:
    return re.findall(r'name="vehicles" value="([A-Z0-9]{17})"', page)


def test_approve_creates_account_and_vehicles(sandbox, sandbox_api):
    url = link(sandbox_api, makes=["VOLKSWAGEN", "AUDI"])
    assert url.startswith(f"{sandbox.url}/consent/")
    with httpx.Client(timeout=10) as browser:
        login = browser.get(url)
        assert login.status_code == 200
        assert 'name="username"' in login.text
        assert ">AUDI<" in login.text
        assert ">TESLA<" not in login.text
        picked = browser.post(url, data={"make": "AUDI", "username": "ann", "password": "x"})
        vins = offered(picked.text)
        assert len(vins) == 3
        assert "Approve" in picked.text
        done = browser.post(
            url,
            data={"make": "AUDI", "username": "ann", "vehicles": vins[:2], "decision": "approve"},
        )
    assert done.status_code == 302
    target = urlsplit(done.headers["location"])
    query = parse_qs(target.query)
    assert f"{target.scheme}://{target.netloc}{target.path}" == RETURN_URL.split("?")[0]
    assert query["link"] == ["42"]
    assert query["result"] == ["success"]
    account_id = query["accountId"][0]
    assert sandbox_api.get(f"/v1/accounts/{account_id}").json() == {
        "id": account_id,
        "username": "ann",
    }
    listed = sandbox_api.get("/v1/vehicles").json()["results"]
    assert sorted(v["vin"] for v in listed) == sorted(vins[:2])
    assert {v["metadata"]["accountId"] for v in listed} == {account_id}
    assert [a["id"] for a in sandbox_api.get("/v1/accounts").json()["results"]] == [account_id]
    again = httpx.get(url, timeout=10)
    assert again.status_code == 410


def test_decline_redirects_without_account(sandbox_api):
    url = link(sandbox_api)
    answer = httpx.post(url, data={"decision": "decline"}, timeout=10)
    assert answer.status_code == 302
    assert parse_qs(urlsplit(answer.headers["location"]).query) == {
        "link": ["42"],
        "result": ["declined"],
    }
    assert sandbox_api.get("/v1/accounts").json()["totalResults"] == 0


def test_vin_link_connects_the_vehicle_that_needed_consent(sandbox_api):
    vin = "C0NSENT1" + "0" * 9
    group = sandbox_api.post(
        "/v1/vehicles/connect",
        json={"vehicles": [{"vin": vin, "make": "TESLA", "countryCode": "GB"}]},
    ).json()
    results_path = f"/v1/vehicles/connect/{group['id']}/results"
    assert sandbox_api.get(results_path).json()["results"][0]["status"] == "CONNECTION_REQUIRED"
    url = link(sandbox_api, vin=vin, makes=["TESLA"])
    page = httpx.post(url, data={"make": "TESLA", "username": "bo"}, timeout=10)
    assert vin in page.text
    httpx.post(url, data={"make": "TESLA", "username": "bo", "decision": "approve"}, timeout=10)
    result = sandbox_api.get(results_path).json()["results"][0]
    assert result["status"] == "CONNECTED"
    assert sandbox_api.get(f"/v1/vehicles/{result['vehicleId']}").json()["vin"] == vin


def test_expired_link_is_refused_with_a_clear_page(sandbox, sandbox_api):
    url = link(sandbox_api)
    assert sandbox.expire_links() == 1
    answer = httpx.get(url, timeout=10)
    assert answer.status_code == 410
    assert "expired" in answer.text
    posted = httpx.post(url, data={"decision": "approve", "make": "AUDI", "username": "a"})
    assert posted.status_code == 410


def test_disconnect_account_disconnects_its_vehicles(sandbox_api):
    url = link(sandbox_api, makes=["VOLVO"])
    page = httpx.post(url, data={"make": "VOLVO", "username": "cy"}, timeout=10)
    vins = offered(page.text)
    done = httpx.post(
        url,
        data={"make": "VOLVO", "username": "cy", "vehicles": vins, "decision": "approve"},
        timeout=10,
    )
    account_id = parse_qs(urlsplit(done.headers["location"]).query)["accountId"][0]
    answer = sandbox_api.post(f"/v1/accounts/{account_id}:disconnect")
    assert answer.status_code == 200
    assert sandbox_api.get("/v1/vehicles").json()["totalResults"] == 0
    assert error_code(sandbox_api.get(f"/v1/accounts/{account_id}")) == "RESOURCE_NOT_FOUND"
    missing = sandbox_api.post("/v1/accounts/nope:disconnect")
    assert error_code(missing) == "RESOURCE_NOT_FOUND"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"scopes": []}, "REQUEST_VALIDATION_ERROR"),
        ({"deviceTypes": ["TOASTER"]}, "REQUEST_VALIDATION_ERROR"),
        ({"urlExpiration": 60}, "REQUEST_VALIDATION_ERROR"),
        ({"urlExpiration": 1_209_601}, "REQUEST_VALIDATION_ERROR"),
        ({"makes": ["BMW"]}, "REQUEST_VALIDATION_ERROR"),
        ({"makes": ["KIA"], "region": "NORTH_AMERICA"}, "UNSUPPORTED_OEM"),
        ({"vin": "NOTAVIN"}, "REQUEST_VALIDATION_ERROR"),
        ({"locale": "es-ES"}, "REQUEST_VALIDATION_ERROR"),
    ],
)
def test_connect_payload_rules(sandbox_api, payload, code):
    body = {"scopes": ["vehicle:all"], "deviceTypes": ["VEHICLE"], **payload}
    answer = sandbox_api.post("/v1/accounts:connect", json=body)
    assert answer.status_code in (400, 422)
    assert error_code(answer) == code


def test_region_given_makes_bmw_links_valid(sandbox_api):
    url = link(sandbox_api, makes=["BMW"], region="NORTH_AMERICA", urlExpiration=1_209_600)
    assert ">BMW<" in httpx.get(url, timeout=10).text


def test_accounts_are_cursor_paged(sandbox_api):
    ids = []
    for name in ("a", "b", "c"):
        url = link(sandbox_api, makes=["FORD"])
        page = httpx.post(url, data={"make": "FORD", "username": name}, timeout=10)
        done = httpx.post(
            url,
            data={"make": "FORD", "username": name, "vehicles": offered(page.text)[:1],
                  "decision": "approve"},
            timeout=10,
        )  # fmt: skip
        ids.append(parse_qs(urlsplit(done.headers["location"]).query)["accountId"][0])
    first = sandbox_api.get("/v1/accounts", params={"maxPageSize": 2}).json()
    second = sandbox_api.get(
        "/v1/accounts", params={"maxPageSize": 2, "pageToken": first["nextPageToken"]}
    ).json()
    assert second["nextPageToken"] is None
    assert sorted(a["id"] for a in first["results"] + second["results"]) == sorted(ids)
