"""The sandbox's whole URLconf: `run_sandbox` serves this and nothing else."""

from django.urls import include, path, re_path

from sandbox import consent, views
from sandbox.api import accounts, auth, connect, vehicles
from sandbox.api.responses import unknown_endpoint

_patterns = [
    path("v1/oauth2/token", auth.token),
    path("v1/oauth2/test-token", auth.test_token),
    path("v1/accounts", accounts.accounts),
    path("v1/accounts:connect", accounts.account_connect),
    path("v1/accounts/<str:account_id>:disconnect", accounts.account_disconnect),
    path("v1/accounts/<str:account_id>", accounts.account),
    path("v1/vehicles", vehicles.vehicles),
    path("v1/vehicles/connect", connect.connect),
    path("v1/vehicles/connect/<str:group_id>", connect.group_status),
    path("v1/vehicles/connect/<str:group_id>/results", connect.group_results),
    path("v1/vehicles/eligibility", connect.eligibility),
    path("v1/vehicles/eligibility/<str:check_id>/results", connect.eligibility_results),
    path("v1/vehicles/<str:vehicle_id>", vehicles.vehicle),
    re_path(r"^v1/(?P<rest>.*)$", unknown_endpoint),
    path("consent/<str:token>", consent.consent, name="consent"),
    path("_sandbox/", views.home, name="home"),
    path("_sandbox/control", views.control_view, name="control"),
    path("_sandbox/reset", views.reset, name="reset"),
    path("_sandbox/connect-pending", views.connect_pending, name="connect_pending"),
    path("_sandbox/expire-links", views.expire_links, name="expire_links"),
    path("_sandbox/webhooks", views.webhook_log, name="webhooks"),
    path("_sandbox/webhooks.json", views.webhook_log_json, name="webhooks_json"),
    path("", views.home),
]

# Namespaced even as the root URLconf, so `reverse("sandbox:...")` works.
urlpatterns = [path("", include((_patterns, "sandbox"), namespace="sandbox"))]
