"""Feature routes; the foundation's own live in fleet_portal/urls.py."""

from django.urls import path

from connections.views import fleets, uploads

urlpatterns = [
    path("fleets/<slug:slug>/stats/", fleets.fleet_stats, name="fleet_stats"),
    path("fleets/<slug:slug>/uploads/new/", uploads.upload_new, name="upload_new"),
    path("uploads/<int:upload_id>/", uploads.upload_detail, name="upload_detail"),
    path("uploads/<int:upload_id>/rows/", uploads.upload_rows, name="upload_rows"),
    path("uploads/<int:upload_id>/submit/", uploads.upload_submit, name="upload_submit"),
    path(
        "uploads/<int:upload_id>/eligibility/",
        uploads.upload_check_eligibility,
        name="upload_check_eligibility",
    ),
    path("uploads/<int:upload_id>/export.csv", uploads.upload_export, name="upload_export"),
    path(
        "uploads/<int:upload_id>/invalid.csv", uploads.upload_invalid_csv, name="upload_invalid_csv"
    ),
    path(
        "uploads/<int:upload_id>/entries/<int:entry_id>/remove/",
        uploads.entry_remove,
        name="entry_remove",
    ),
    path(
        "uploads/<int:upload_id>/entries/<int:entry_id>/retry/",
        uploads.entry_retry,
        name="entry_retry",
    ),
    path("vins/<int:entry_id>/", uploads.entry_detail, name="entry_detail"),
]

from connections.views import webhooks as webhook_views  # noqa: E402

urlpatterns += [
    path("webhooks/volteras/", webhook_views.receive, name="volteras_webhook"),
    path("support/webhooks/", webhook_views.event_list, name="webhook_events"),
    path("support/webhooks/refused/", webhook_views.refused_list, name="webhook_refused"),
    path("support/webhooks/unmatched/", webhook_views.unmatched_list, name="webhook_unmatched"),
    path("support/webhooks/<int:event_id>/", webhook_views.event_detail, name="webhook_event"),
    path(
        "support/webhooks/<int:event_id>/process/",
        webhook_views.event_process_again,
        name="webhook_event_process",
    ),
]

# Consent Flow links and connected accounts (connections/views/consent.py).
from connections.views import consent as consent_views  # noqa: E402

urlpatterns += [
    path(
        "fleets/<slug:slug>/consent-links/",
        consent_views.link_list,
        name="consent_link_list",
    ),
    path(
        "fleets/<slug:slug>/consent-links/new/",
        consent_views.link_new,
        name="consent_link_new",
    ),
    path(
        "fleets/<slug:slug>/consent-links/reissue-expiring/",
        consent_views.link_reissue_expiring,
        name="consent_link_reissue_expiring",
    ),
    path(
        "fleets/<slug:slug>/consent-links/<int:pk>/",
        consent_views.link_detail,
        name="consent_link_detail",
    ),
    path(
        "fleets/<slug:slug>/consent-links/<int:pk>/print/",
        consent_views.link_print,
        name="consent_link_print",
    ),
    path(
        "fleets/<slug:slug>/consent-links/<int:pk>/revoke/",
        consent_views.link_revoke,
        name="consent_link_revoke",
    ),
    path(
        "fleets/<slug:slug>/consent-links/<int:pk>/reissue/",
        consent_views.link_reissue,
        name="consent_link_reissue",
    ),
    path(
        "fleets/<slug:slug>/accounts/",
        consent_views.account_list,
        name="consent_account_list",
    ),
    path(
        "fleets/<slug:slug>/accounts/refresh/",
        consent_views.account_refresh,
        name="consent_account_refresh",
    ),
    path(
        "fleets/<slug:slug>/accounts/<int:pk>/disconnect/",
        consent_views.account_disconnect,
        name="consent_account_disconnect",
    ),
    path(
        "uploads/<int:upload_id>/consent-links/",
        consent_views.upload_links,
        name="upload_consent_links",
    ),
    path(
        "uploads/<int:upload_id>/consent-links.csv",
        consent_views.upload_links_csv,
        name="upload_consent_links_csv",
    ),
    path("l/<str:token>", consent_views.public_open, name="consent_open"),
    path("consent/return/<str:token>", consent_views.public_return, name="consent_return"),
]

# The support workspace (connections/views/support.py): support staff and admins only.
from connections.views import support as support_views  # noqa: E402

urlpatterns += [
    path("support/", support_views.support_home, name="support_home"),
    path("support/export.csv", support_views.support_export, name="support_export"),
    path("support/actions/", support_views.support_action, name="support_action"),
    path("support/codes/", support_views.support_codes, name="support_codes"),
]
