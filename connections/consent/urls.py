"""Consent links, connected accounts, and the owner's public pages."""

from django.urls import path

from connections.consent import public, views

urlpatterns = [
    path(
        "fleets/<slug:slug>/consent-links/",
        views.link_list,
        name="consent_link_list",
    ),
    path(
        "fleets/<slug:slug>/consent-links/new/",
        views.link_new,
        name="consent_link_new",
    ),
    path(
        "fleets/<slug:slug>/consent-links/reissue-expiring/",
        views.link_reissue_expiring,
        name="consent_link_reissue_expiring",
    ),
    path(
        "fleets/<slug:slug>/consent-links/<int:pk>/",
        views.link_detail,
        name="consent_link_detail",
    ),
    path(
        "fleets/<slug:slug>/consent-links/<int:pk>/print/",
        views.link_print,
        name="consent_link_print",
    ),
    path(
        "fleets/<slug:slug>/consent-links/<int:pk>/revoke/",
        views.link_revoke,
        name="consent_link_revoke",
    ),
    path(
        "fleets/<slug:slug>/consent-links/<int:pk>/reissue/",
        views.link_reissue,
        name="consent_link_reissue",
    ),
    path(
        "fleets/<slug:slug>/accounts/",
        views.account_list,
        name="consent_account_list",
    ),
    path(
        "fleets/<slug:slug>/accounts/refresh/",
        views.account_refresh,
        name="consent_account_refresh",
    ),
    path(
        "fleets/<slug:slug>/accounts/<int:pk>/disconnect/",
        views.account_disconnect,
        name="consent_account_disconnect",
    ),
    path(
        "uploads/<int:upload_id>/consent-links/",
        views.upload_links,
        name="upload_consent_links",
    ),
    path(
        "uploads/<int:upload_id>/consent-links.csv",
        views.upload_links_csv,
        name="upload_consent_links_csv",
    ),
    path(
        "fleets/<slug:slug>/consent-links/<int:pk>/send/",
        views.link_send,
        name="consent_link_send",
    ),
    path(
        "uploads/<int:upload_id>/consent-mail/",
        views.upload_mail,
        name="upload_consent_mail",
    ),
    path(
        "uploads/<int:upload_id>/consent-mail/retry/",
        views.upload_mail_retry,
        name="upload_consent_mail_retry",
    ),
    path("l/<str:token>", public.public_open, name="consent_open"),
    path("l/<str:token>/continue", public.public_continue, name="consent_continue"),
    path("consent/return/<str:token>", public.public_return, name="consent_return"),
]
