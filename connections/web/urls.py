"""The dashboard, a fleet's page and the health check."""

from django.urls import path

from connections.web import accounts, health, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("fleets/<slug:slug>/", views.fleet_detail, name="fleet_detail"),
    path("fleets/<slug:slug>/stats/", views.fleet_stats, name="fleet_stats"),
    path("fleets/<slug:slug>/invite/", accounts.invite, name="fleet_invite"),
    path("healthz", health.healthz, name="healthz"),
]
