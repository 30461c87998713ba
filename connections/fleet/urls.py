"""A fleet's vehicles: the list, its exports and bulk actions."""

from django.urls import path

from connections.fleet import views

urlpatterns = [
    path("fleets/<slug:slug>/vehicles/", views.fleet_vehicles, name="fleet_vehicles"),
    path("fleets/<slug:slug>/vehicles.csv", views.fleet_vehicles_csv, name="fleet_vehicles_csv"),
    path("fleets/<slug:slug>/vehicles.xlsx", views.fleet_vehicles_xlsx, name="fleet_vehicles_xlsx"),
    path(
        "fleets/<slug:slug>/vehicles/action/",
        views.fleet_vehicles_action,
        name="fleet_vehicles_action",
    ),
    path("vins/<int:entry_id>/act/", views.entry_act, name="entry_act"),
]
