"""The support workspace: support staff and admins only."""

from django.urls import path

from connections.support import views

urlpatterns = [
    path("support/", views.support_home, name="support_home"),
    path("support/export.csv", views.support_export, name="support_export"),
    path("support/actions/", views.support_action, name="support_action"),
    path("support/codes/", views.support_codes, name="support_codes"),
]
