"""What each Volteras error code means for a fleet manager, in our own words.

Volteras reports a code per failed VIN (and per failed API call). The portal
shows `explain(code)`: what happened, the next step, who has to act and
whether sending the VIN again can help. Codes we have not written up yet still
get a sensible generic explanation, never an error page.

This is the one table of knowledge the upload table, the VIN page, the support
workspace and its export all read: `EXPLANATIONS` by error code, and
`STATUS_EXPLANATIONS` for the states that have a next step without any code.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class WhoActs(StrEnum):
    """Who has to do something. The first three are Volteras' action categories;
    PORTAL means the portal deals with it by itself."""

    CUSTOMER_ACTION = "CUSTOMER_ACTION"
    CONTACT_SUPPORT = "CONTACT_SUPPORT"
    UNDER_REVIEW = "UNDER_REVIEW"
    PORTAL = "PORTAL"


# The categories Volteras itself reports (`actionCategory`).
CONTRACT_CATEGORIES = (WhoActs.CUSTOMER_ACTION, WhoActs.CONTACT_SUPPORT, WhoActs.UNDER_REVIEW)

WHO_ACTS_LABELS: dict[str, str] = {
    WhoActs.CUSTOMER_ACTION: "Customer action",
    WhoActs.CONTACT_SUPPORT: "Contact support",
    WhoActs.UNDER_REVIEW: "Under review",
    WhoActs.PORTAL: "The portal retries by itself",
}


@dataclass(frozen=True, slots=True)
class Explanation:
    code: str
    title: str
    explanation: str
    next_step: str
    who_acts: WhoActs
    retry_helps: bool
    # The owner's consent is the way forward: a single-VIN consent link is offered.
    consent_link: bool = False

    @property
    def who_acts_label(self) -> str:
        return WHO_ACTS_LABELS[self.who_acts]


def _entry(code: str, *fields, consent_link: bool = False) -> tuple[str, Explanation]:
    """(code, Explanation(code, title, explanation, next_step, who_acts, retry_helps))."""
    return code, Explanation(code, *fields, consent_link)


_CUSTOMER = WhoActs.CUSTOMER_ACTION
_SUPPORT = WhoActs.CONTACT_SUPPORT
_REVIEW = WhoActs.UNDER_REVIEW
_PORTAL = WhoActs.PORTAL

EXPLANATIONS: dict[str, Explanation] = dict(
    [
        # Per-VIN results of a connection attempt.
        _entry(
            "OEM_INCORRECT_REGION",
            "Wrong region for this make",
            "The manufacturer looked for this vehicle in a different part of the world "
            "from the one it is registered in, so it could not be found there.",
            "Check the vehicle's country. If it is right, ask support to check the region "
            "your fleet uses for this make, then send the VIN again.",
            _CUSTOMER,
            True,
        ),
        _entry(
            "OEM_VEHICLE_OFFLINE",
            "Vehicle not reachable",
            "The vehicle did not answer the manufacturer. This usually means it has been "
            "parked for a while, is in an underground car park, or has no mobile signal.",
            "Drive the vehicle somewhere with good mobile coverage, then retry.",
            _CUSTOMER,
            True,
        ),
        _entry(
            "OEM_VEHICLE_REMOTE_ACCESS_DISABLED",
            "Remote access is switched off",
            "The vehicle's connected services (remote access) are switched off, or the "
            "owner has not yet allowed data to be shared, so the manufacturer will not "
            "let anyone reach it.",
            "Ask the driver to switch on the connected services in the vehicle or the "
            "manufacturer's app, and to accept any sharing request there. Then retry.",
            _CUSTOMER,
            True,
        ),
        _entry(
            "OEM_VEHICLE_DATA_SHARING_DISABLED",
            "Data sharing is switched off",
            "Data sharing is turned off for this vehicle, so the manufacturer keeps its "
            "data to itself.",
            "Ask the driver to turn data sharing on in the vehicle's settings or in the "
            "manufacturer's app (the message shown with the error may say where), then retry.",
            _CUSTOMER,
            True,
        ),
        _entry(
            "FLEET_CONSENT_MISSING",
            "Fleet approval missing at the manufacturer",
            "The manufacturer needs your company to approve data sharing in its own fleet "
            "portal first. The driver cannot fix this from the vehicle.",
            "Ask whoever manages your company's account with this manufacturer to approve "
            "the connection in the manufacturer's fleet portal, then retry.",
            _CUSTOMER,
            True,
        ),
        _entry(
            "OEM_AUTH_DRIVER_IS_NOT_PRIMARY_USER",
            "Not the vehicle's main account",
            "The manufacturer account used to give consent is not the vehicle's main "
            "(primary) account, and only that account may share the vehicle.",
            "Ask the person who holds the vehicle's main account in the manufacturer's app "
            "to complete the consent, or to make the driver the primary user, then retry.",
            _CUSTOMER,
            True,
        ),
        _entry(
            "OEM_DEVICE_NOT_FOUND",
            "Manufacturer does not know this vehicle",
            "The manufacturer has no vehicle with this VIN in its connected-car system. "
            "The VIN or make may be mistyped, or the vehicle was never registered for "
            "connected services.",
            "Compare the VIN and make with the registration document. If they are right, "
            "make sure the vehicle is registered in the manufacturer's app, then retry.",
            _CUSTOMER,
            True,
        ),
        _entry(
            "OEM_VEHICLE_NOT_COMPATIBLE",
            "Vehicle not compatible",
            "This vehicle cannot be connected: its model, age or equipment is not supported "
            "by the manufacturer's connected-car service.",
            "Nothing to send again. If the message shown with the error suggests a fix (for "
            "example a software update or a subscription), do that first; otherwise remove "
            "the vehicle from your list.",
            _CUSTOMER,
            False,
        ),
        _entry(
            "OEM_VEHICLE_UPDATE_REQUIRED",
            "Vehicle needs a software update",
            "The vehicle's software is too old for the connection to be made.",
            "Install the pending software update (over the air, or at a dealer), then retry.",
            _CUSTOMER,
            True,
        ),
        _entry(
            "DEVICE_LIMIT_REACHED",
            "Vehicle limit reached",
            "Your organisation has connected as many vehicles as its Volteras plan allows, "
            "so no more can be added.",
            "Contact support to raise the limit, or disconnect vehicles you no longer need. "
            "Then send the VINs again.",
            _SUPPORT,
            True,
        ),
        _entry(
            "NOT_PERMITTED",
            "Not allowed",
            "Your organisation's Volteras account is not allowed to do this, for example to "
            "connect this make or use this feature.",
            "Contact support to check what your account is set up for.",
            _SUPPORT,
            False,
        ),
        _entry(
            "VIN_UPLOAD_INVALID_FORMAT",
            "Vehicle details rejected",
            "One of the details sent with this vehicle (make, country, model year, tags...) "
            "was not accepted. The message shown with the error names the field.",
            "Correct that detail in your file and upload the vehicle again.",
            _CUSTOMER,
            False,
        ),
        _entry(
            "INVALID_VIN",
            "VIN not accepted",
            "The VIN was not accepted as a real VIN, usually because of a typo.",
            "Compare the VIN with the registration document, correct it and upload it again.",
            _CUSTOMER,
            False,
        ),
        _entry(
            "VIN_CHECK_NOT_SUPPORTED",
            "Eligibility check not available",
            "This make cannot be checked in advance for eligibility. This says nothing "
            "about whether the vehicle can be connected.",
            "Go ahead and connect the vehicle; the result will show whether it worked.",
            _PORTAL,
            False,
        ),
        _entry(
            "VEHICLE_ALREADY_ADDED_TO_ORGANIZATION",
            "Already connected",
            "This vehicle is already connected to your organisation, for example by an "
            "earlier upload or a retry after a network problem. Nothing has failed.",
            "Nothing to do: the portal tracks it as connected.",
            _PORTAL,
            False,
        ),
        _entry(
            "VEHICLE_ALREADY_ADDED_CONNECTION_REQUIRED",
            "Already added, owner consent needed",
            "This vehicle was added before and is still waiting for its owner to give consent.",
            "Send the owner a consent link from the vehicle's page; sending the VIN again "
            "will not help.",
            _CUSTOMER,
            False,
        ),
        _entry(
            "VEHICLE_ALREADY_ADDED_INCOMPATIBLE",
            "Already added, not compatible",
            "This vehicle was added before and was found to be incompatible. Nothing has "
            "changed since.",
            "Check the VIN and make. If they are right, the vehicle cannot be connected.",
            _CUSTOMER,
            False,
        ),
        _entry(
            "VEHICLE_ALREADY_ADDED_PENDING_CONNECTION",
            "Already added, connection in progress",
            "This vehicle was added before and its connection is still in progress. "
            "Nothing has failed.",
            "Nothing to do: the portal keeps tracking it until it is connected.",
            _PORTAL,
            False,
        ),
        _entry(
            "VIN_UPLOAD_NOT_SUPPORTED",
            "Make cannot be connected by VIN",
            "This manufacturer does not allow vehicles to be connected from a VIN list; "
            "the owner has to connect the vehicle themselves.",
            "Send the owner a consent link instead of uploading the VIN (Create a consent "
            "link on the VIN's page, or Create consent links in the fleet's list); the "
            "vehicle connects once they complete it.",
            _CUSTOMER,
            False,
            consent_link=True,
        ),
        _entry(
            "VIN_BLACKLISTED",
            "VIN blocked",
            "This VIN has been blocked and cannot be connected.",
            "Contact support if you believe the vehicle should be allowed.",
            _SUPPORT,
            False,
        ),
        _entry(
            "SUBJECTS_NOT_ASSIGNABLE",
            "Owner could not be assigned",
            "The vehicle was found, but the users or user groups meant to own it in "
            "Volteras could not be linked to it.",
            "Contact support with the VIN so they can check the user setup.",
            _SUPPORT,
            True,
        ),
        # Errors of API calls the portal makes.
        _entry(
            "SERVER_ERROR",
            "Temporary problem at Volteras",
            "Volteras had an internal problem handling the request.",
            "Nothing to do: the portal tries again by itself. If it keeps happening, "
            "contact support.",
            _PORTAL,
            True,
        ),
        _entry(
            "AUTHENTICATION_ERROR",
            "Portal could not sign in to Volteras",
            "Volteras did not accept the portal's credentials, so nothing could be sent or "
            "checked.",
            "Ask your portal administrator to check the Volteras client ID and secret.",
            _SUPPORT,
            True,
        ),
        _entry(
            "RESOURCE_NOT_FOUND",
            "Not found at Volteras",
            "Volteras does not know the vehicle, account or request the portal asked about. "
            "It may have been removed.",
            "Nothing to do: the portal refreshes its records. Contact support if the "
            "vehicle should exist.",
            _PORTAL,
            False,
        ),
        _entry(
            "REQUEST_VALIDATION_ERROR",
            "Request rejected",
            "Volteras rejected the request because some of its data was not in the expected form.",
            "Check the vehicle's details (VIN, make, country). If they look right, contact "
            "support.",
            _SUPPORT,
            False,
        ),
        _entry(
            "QUERY_PAGE_TOKEN_EXPIRED",
            "List expired while reading it",
            "A long list was being read page by page and the bookmark for the next page expired.",
            "Nothing to do: the portal starts reading the list again.",
            _PORTAL,
            True,
        ),
        _entry(
            "PAGINATED_QUERY_FILTER_CHANGED",
            "List changed while reading it",
            "A list was being read page by page with different filters between pages.",
            "Nothing to do: the portal starts reading the list again.",
            _PORTAL,
            True,
        ),
        _entry(
            "PAGE_SIZE_TOO_LARGE",
            "Asked for too much at once",
            "The portal asked Volteras for a larger page of results than it allows.",
            "Nothing to do: the portal asks again with smaller pages.",
            _PORTAL,
            True,
        ),
        _entry(
            "INTERNAL_RATE_LIMITED",
            "Too many requests",
            "Your organisation has sent more requests than Volteras allows for now.",
            "Nothing to do: the portal slows down and tries again. If it happens often, "
            "contact support about your limits.",
            _PORTAL,
            True,
        ),
    ]
)


# States with a next step but no error code (Volteras sends none with them).
STATUS_EXPLANATIONS: dict[str, Explanation] = dict(
    [
        _entry(
            "CONNECTION_REQUIRED",
            "The owner must consent",
            "This manufacturer only shares a vehicle's data once its owner has approved "
            "the connection in a consent flow.",
            "Send the owner a consent link (Create a consent link on the VIN's page, or "
            "Create consent links for several vehicles in the fleet's list), then wait for "
            "them to complete it: the VIN connects by itself.",
            _CUSTOMER,
            False,
            consent_link=True,
        ),
    ]
)


# The portal's own refusals: codes it records itself, never sent by Volteras.
VEHICLE_IN_ANOTHER_FLEET = "PORTAL_VEHICLE_IN_ANOTHER_FLEET"
PORTAL_EXPLANATIONS: dict[str, Explanation] = dict(
    [
        _entry(
            VEHICLE_IN_ANOTHER_FLEET,
            "Connected to another fleet",
            "This vehicle is connected to another fleet of your organisation, so the portal "
            "did not add it to this fleet and shows none of its data here.",
            "Ask support: they can see which fleet holds it and sort out where it belongs.",
            _SUPPORT,
            False,
        ),
    ]
)


def explain(code: str | None) -> Explanation:
    """Our explanation of an error code; a generic one for codes we don't know."""
    code = (code or "").strip().upper()
    known = EXPLANATIONS.get(code) or PORTAL_EXPLANATIONS.get(code)
    if known is not None:
        return known
    return Explanation(
        code=code or "UNKNOWN",
        title="Unexpected error",
        explanation=(
            "Volteras reported a problem the portal does not recognise"
            + (f" (code {code})." if code else ".")
        ),
        next_step=(
            "Read the message shown with it. If it does not say what to do, retry once; "
            "if the error comes back, contact support with the VIN and this code."
        ),
        who_acts=WhoActs.CONTACT_SUPPORT,
        retry_helps=True,
    )
