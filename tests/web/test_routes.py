"""Every named URL the portal serves has a row in one access table: what a GET
answers to anonymous, the fleet's manager, a manager of another fleet, support
and an admin. A new URL without a row fails here, by name.

The rows follow the roles' rules in `tests/permissions.py`: anonymous is sent
to the login page, an outsider gets 404, a manager on a support page gets 404;
actions that only take a POST answer a GET with 405 to whoever may use them
(and still 404 to whoever may not see them). The public routes are public on
purpose. Django's admin and its login/logout views are Django's own and are
left out (`IGNORED`).
"""

from urllib.parse import urlsplit

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from connections.models import (
    ConnectedAccount,
    MailMessage,
    VinStatus,
    WebhookEvent,
    WorkerHeartbeat,
)
from connections.notifications.sending import unsubscribe_token
from tests.factories import add_entry, make_upload, stored_link
from tests.permissions import assert_access

# Django's own views: the admin site (its own permission checks), login/logout and
# the password reset's confirmation (a link with a signed token, Django's own checks).
IGNORED_PREFIXES = ("admin/",)
IGNORED_NAMES = {"login", "logout", "password_reset_confirm"}

LOGIN = None  # anonymous: redirected to the login page
# (anonymous, manager, outsider, support, admin); LOGIN = redirected to log in.
FLEET_PAGE = (LOGIN, 200, 404, 200, 200)
FLEET_WRITE_FORM = (LOGIN, 200, 404, 403, 200)  # support reads a fleet, does not change it
POST_ONLY = (LOGIN, 405, 404, 405, 405)
SUPPORT_PAGE = (LOGIN, 404, 404, 200, 200)  # a manager never sees it
SUPPORT_POST_ONLY = (LOGIN, 404, 404, 405, 405)

# The captured mail: admins only, and only with DEBUG on (`make run`); tests run
# with DEBUG off, so here it is 404 for everyone (tests/mail cover the admin).
ADMIN_IN_DEBUG = (LOGIN, 404, 404, 404, 404)
PUBLIC = (200, 200, 200, 200, 200)

ACCESS: dict[str, tuple] = {
    # accounts: password reset (Django's views) and notifications
    "password_reset": PUBLIC,
    "password_reset_done": PUBLIC,
    "password_reset_complete": PUBLIC,
    "notification_settings": (LOGIN, 200, 200, 200, 200),
    "notifications_unsubscribe": PUBLIC,  # one click from an e-mail, no login
    "fleet_invite": (LOGIN, 403, 404, 403, 200),  # admins invite managers
    # mail
    "mail_outbox": ADMIN_IN_DEBUG,
    "mail_outbox_detail": ADMIN_IN_DEBUG,
    "mail_outbox_html": ADMIN_IN_DEBUG,
    "mail_outbox_retry": (LOGIN, 405, 405, 405, 405),
    "consent_link_send": POST_ONLY,
    "upload_consent_mail": FLEET_PAGE,
    "upload_consent_mail_retry": POST_ONLY,
    # foundation
    "dashboard": (LOGIN, 200, 200, 200, 200),
    "favicon": (302, 302, 302, 302, 302),  # to the static icon, for anyone
    "healthz": (200, 200, 200, 200, 200),  # healthy: a worker beats, Volteras answers
    "fleet_detail": FLEET_PAGE,
    "fleet_stats": FLEET_PAGE,
    # uploads
    "upload_new": FLEET_WRITE_FORM,
    "upload_detail": FLEET_PAGE,
    "upload_rows": (LOGIN, 286, 404, 286, 286),  # htmx: every VIN final, stop polling
    "upload_submit": POST_ONLY,
    "upload_check_eligibility": POST_ONLY,
    "upload_delete": FLEET_WRITE_FORM,  # GET: the confirmation page
    "upload_replace_draft": POST_ONLY,
    "upload_export": FLEET_PAGE,
    "upload_invalid_csv": FLEET_PAGE,
    "entry_remove": POST_ONLY,
    "entry_retry": POST_ONLY,
    "entry_edit": FLEET_WRITE_FORM,  # GET: the form (a sent row: why it cannot be edited)
    "entry_detail": FLEET_PAGE,
    "entry_act": POST_ONLY,
    # the fleet's vehicles
    "fleet_vehicles": FLEET_PAGE,
    "fleet_vehicles_csv": FLEET_PAGE,
    "fleet_vehicles_xlsx": FLEET_PAGE,
    "fleet_vehicles_action": POST_ONLY,
    # consent
    "consent_link_list": FLEET_PAGE,
    "consent_link_new": FLEET_WRITE_FORM,
    "consent_link_reissue_expiring": POST_ONLY,
    "consent_link_detail": FLEET_PAGE,
    "consent_link_print": FLEET_PAGE,
    "consent_link_revoke": POST_ONLY,
    "consent_link_reissue": POST_ONLY,
    "consent_account_list": FLEET_PAGE,
    "consent_account_refresh": POST_ONLY,
    "consent_account_disconnect": FLEET_WRITE_FORM,  # GET: the confirmation page
    "upload_consent_links": POST_ONLY,
    "upload_consent_links_csv": FLEET_PAGE,
    # public: the consent link's short URL and return, Volteras' webhooks
    "consent_open": (200, 200, 200, 200, 200),  # the owner's page
    "consent_continue": (302, 302, 302, 302, 302),  # on to Volteras
    "consent_return": (200, 200, 200, 200, 200),
    "volteras_webhook": (405, 405, 405, 405, 405),
    # webhooks' delivery log (support)
    "webhook_events": SUPPORT_PAGE,
    "webhook_refused": SUPPORT_PAGE,
    "webhook_unmatched": SUPPORT_PAGE,
    "webhook_event": SUPPORT_PAGE,
    "webhook_event_process": SUPPORT_POST_ONLY,
    # support workspace
    "support_home": SUPPORT_PAGE,
    "support_export": SUPPORT_PAGE,
    "support_action": SUPPORT_POST_ONLY,
    "support_codes": SUPPORT_PAGE,
}


def named_routes(resolver: URLResolver | None = None, prefix: str = "") -> dict[str, str]:
    """{name: route} of every named URL pattern, through every include."""
    found: dict[str, str] = {}
    for pattern in (resolver or get_resolver()).url_patterns:
        route = prefix + str(pattern.pattern)
        if route.startswith(IGNORED_PREFIXES):
            continue
        if isinstance(pattern, URLResolver):
            found.update(named_routes(pattern, route))
        elif isinstance(pattern, URLPattern):
            assert pattern.name, f"/{route} has no name, so it cannot have an access row"
            if pattern.name not in IGNORED_NAMES:
                found[pattern.name] = route
    return found


@pytest.fixture
def urls(fleet, manager, fake_volteras) -> dict[str, str]:
    """A real URL for each route, on real objects of the manager's fleet (and
    a healthy portal: a worker beats, Volteras answers)."""
    WorkerHeartbeat.beat("w1")
    upload = make_upload(fleet, manager)
    entry = add_entry(upload, VinStatus.ERROR, codes=["OEM_VEHICLE_OFFLINE"], can_retry=True)
    link = stored_link(fleet)
    account = ConnectedAccount.objects.create(fleet=fleet, volteras_id="acc-1", username="j")
    event = WebhookEvent.objects.create(
        svix_id="msg_1", event_type="device.connected", vehicle_id="veh-1", body="{}"
    )
    message = MailMessage.objects.create(
        key="route-matrix", kind="consent_link", to="jane@example.com", subject="s", text="t"
    )
    args = {
        "slug": [fleet.slug],
        "upload_id": [upload.pk],
        "entry": [upload.pk, entry.pk],
        "entry_id": [entry.pk],
        "link": [fleet.slug, link.pk],
        "account": [fleet.slug, account.pk],
        "event_id": [event.pk],
    }
    special = {
        "entry_remove": args["entry"],
        "entry_retry": args["entry"],
        "entry_edit": args["entry"],
        "upload_replace_draft": [upload.pk, upload.pk],
        "consent_link_detail": args["link"],
        "consent_link_print": args["link"],
        "consent_link_revoke": args["link"],
        "consent_link_reissue": args["link"],
        "consent_account_disconnect": args["account"],
        "consent_link_send": args["link"],
        "mail_outbox_detail": [message.pk],
        "mail_outbox_html": [message.pk],
        "mail_outbox_retry": [message.pk],
        "notifications_unsubscribe": [unsubscribe_token(manager, "upload_settled")],
    }
    urls = {
        "consent_continue": reverse("consent_continue", args=[link.token]),
        "consent_open": urlsplit(link.short_url).path,
        "consent_return": urlsplit(link.return_url).path,
    }
    for name, route in named_routes().items():
        if name in urls:
            continue
        if name in special:
            urls[name] = reverse(name, args=special[name])
            continue
        params = [p for p in args if f":{p}>" in route]
        urls[name] = reverse(name, args=[a for p in params for a in args[p]])
    return urls


def test_every_route_has_an_access_row():
    missing = sorted(set(named_routes()) - set(ACCESS))
    assert not missing, (
        f"routes without an access row in tests/web/test_routes.py: {missing}; "
        "add one saying what a GET answers to each role"
    )
    gone = sorted(set(ACCESS) - set(named_routes()))
    assert not gone, f"access rows for routes that no longer exist: {gone}"


@pytest.mark.parametrize("name", sorted(ACCESS))
def test_route_access(name, client, users, urls):
    anonymous, member, outsider, support, admin = ACCESS[name]
    assert_access(
        client,
        urls[name],
        users,
        anonymous=anonymous,
        member=member,
        outsider=outsider,
        support=support,
        admin=admin,
    )
