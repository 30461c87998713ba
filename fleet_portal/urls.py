from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from connections.views import fleets, health

urlpatterns = [
    path("", fleets.dashboard, name="dashboard"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("fleets/<slug:slug>/", fleets.fleet_detail, name="fleet_detail"),
    path("healthz", health.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("", include("connections.urls")),
]
