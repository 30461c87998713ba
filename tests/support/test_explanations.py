"""Our explanation of every Volteras error code the portal can show (connections.explanations)."""

import pytest

from connections.explanations import (
    CONTRACT_CATEGORIES,
    EXPLANATIONS,
    STATUS_EXPLANATIONS,
    Explanation,
    WhoActs,
    explain,
)
from connections.models import VinStatus
from connections.volteras import ActionCategory
from tests.contract import codes_in, per_vin_codes_in_openapi, registry


def test_every_vin_upload_code_is_explained():
    missing = codes_in("VIN_UPLOAD") - set(EXPLANATIONS)
    assert not missing, f"error codes without an explanation: {sorted(missing)}"


def test_every_connect_api_code_is_explained():
    missing = codes_in("CONNECT_API") - set(EXPLANATIONS)
    assert not missing, f"error codes without an explanation: {sorted(missing)}"


def test_every_per_vin_code_in_the_openapi_document_is_explained():
    codes = per_vin_codes_in_openapi()
    assert "VIN_UPLOAD_NOT_SUPPORTED" in codes
    missing = codes - set(EXPLANATIONS)
    assert not missing, f"openapi per-VIN codes without an explanation: {sorted(missing)}"


def test_status_explanations_cover_the_states_with_a_next_step_and_no_code():
    assert set(STATUS_EXPLANATIONS) == {VinStatus.CONNECTION_REQUIRED}
    for status, item in STATUS_EXPLANATIONS.items():
        assert item.code == status and item.consent_link
        assert item.title and item.explanation.endswith(".") and item.next_step.endswith(".")


def test_consent_link_is_the_next_step_only_where_it_says_so():
    flagged = {code for code, x in EXPLANATIONS.items() if x.consent_link}
    assert flagged == {"VIN_UPLOAD_NOT_SUPPORTED"}
    assert "consent link" in EXPLANATIONS["VIN_UPLOAD_NOT_SUPPORTED"].next_step


def test_explanations_only_for_codes_that_exist():
    assert set(EXPLANATIONS) <= {entry["code"] for entry in registry()}


def test_the_registry_lists_the_codes_the_portal_relies_on():
    vin_upload = codes_in("VIN_UPLOAD")
    assert {"INVALID_VIN", "OEM_VEHICLE_OFFLINE", "VEHICLE_ALREADY_ADDED_TO_ORGANIZATION"} <= (
        vin_upload
    )
    assert {"DEVICE_LIMIT_REACHED", "NOT_PERMITTED"} <= vin_upload & codes_in("CONNECT_API")


@pytest.mark.parametrize("code", sorted(EXPLANATIONS))
def test_explanation_is_complete_and_our_own(code):
    item = explain(code)
    assert item == EXPLANATIONS[code]
    assert item.code == code
    assert item.title and item.explanation and item.next_step
    assert item.title[0].isupper()
    assert item.explanation.endswith(".") and item.next_step.endswith(".")
    assert isinstance(item.who_acts, WhoActs)
    assert isinstance(item.retry_helps, bool)
    published = {entry["code"]: entry["description"] for entry in registry()}[code]
    # Written by us: not the registry's text, nor a long run of its words.
    assert item.explanation.strip().lower() != published.strip().lower()
    assert _longest_shared_run(item.explanation, published) < 8


def _longest_shared_run(ours: str, theirs: str) -> int:
    """The longest run of consecutive words two texts share."""
    a = ours.lower().replace(",", "").replace(".", "").split()
    b = theirs.lower().replace(",", "").replace(".", "").split()
    best = 0
    for i in range(len(a)):
        for j in range(len(b)):
            k = 0
            while i + k < len(a) and j + k < len(b) and a[i + k] == b[j + k]:
                k += 1
            best = max(best, k)
    return best


def test_who_acts_matches_the_api_categories_plus_portal():
    assert set(CONTRACT_CATEGORIES) == {c.value for c in ActionCategory}
    assert {c.value for c in WhoActs} == set(CONTRACT_CATEGORIES) | {"PORTAL"}


def test_explanations_say_who_acts_and_whether_retrying_helps():
    assert explain("OEM_VEHICLE_OFFLINE").who_acts == WhoActs.CUSTOMER_ACTION
    assert explain("OEM_VEHICLE_OFFLINE").retry_helps
    assert explain("DEVICE_LIMIT_REACHED").who_acts == WhoActs.CONTACT_SUPPORT
    assert not explain("OEM_VEHICLE_NOT_COMPATIBLE").retry_helps
    already = explain("VEHICLE_ALREADY_ADDED_TO_ORGANIZATION")
    assert already.who_acts == WhoActs.PORTAL
    assert "Nothing has failed" in already.explanation


def test_explain_is_forgiving_about_case_and_space():
    assert explain(" invalid_vin ") == EXPLANATIONS["INVALID_VIN"]


@pytest.mark.parametrize("code", ["SOMETHING_NEW", "", None])
def test_unknown_codes_get_a_generic_explanation(code):
    item = explain(code)
    assert isinstance(item, Explanation)
    assert item.title == "Unexpected error"
    assert item.who_acts == WhoActs.CONTACT_SUPPORT
    assert "contact support" in item.next_step
    if code:
        assert code in item.explanation
    else:
        assert item.code == "UNKNOWN"


def test_explanation_is_frozen():
    with pytest.raises(AttributeError):
        explain("INVALID_VIN").title = "changed"  # type: ignore[misc]
