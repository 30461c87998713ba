"""Uploads: the form, the live table, its actions and exports, the VIN page."""

from django.urls import path

from connections.uploads import drafts, fix_views, views, vin_views

urlpatterns = [
    path("fleets/<slug:slug>/uploads/new/", views.upload_new, name="upload_new"),
    path("uploads/<int:upload_id>/", views.upload_detail, name="upload_detail"),
    path("uploads/<int:upload_id>/rows/", views.upload_rows, name="upload_rows"),
    path("uploads/<int:upload_id>/submit/", views.upload_submit, name="upload_submit"),
    path(
        "uploads/<int:upload_id>/eligibility/",
        views.upload_check_eligibility,
        name="upload_check_eligibility",
    ),
    path("uploads/<int:upload_id>/delete/", drafts.upload_delete, name="upload_delete"),
    path(
        "uploads/<int:upload_id>/replace/<int:draft_id>/",
        drafts.upload_replace_draft,
        name="upload_replace_draft",
    ),
    path("uploads/<int:upload_id>/export.csv", views.upload_export, name="upload_export"),
    path(
        "uploads/<int:upload_id>/invalid.csv", views.upload_invalid_csv, name="upload_invalid_csv"
    ),
    path(
        "uploads/<int:upload_id>/entries/<int:entry_id>/remove/",
        views.entry_remove,
        name="entry_remove",
    ),
    path(
        "uploads/<int:upload_id>/entries/<int:entry_id>/retry/",
        views.entry_retry,
        name="entry_retry",
    ),
    path(
        "uploads/<int:upload_id>/entries/<int:entry_id>/edit/",
        fix_views.entry_edit,
        name="entry_edit",
    ),
    path("vins/<int:entry_id>/", vin_views.entry_detail, name="entry_detail"),
]
