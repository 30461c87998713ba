"""Feature routes; the foundation's own live in fleet_portal/urls.py."""

urlpatterns: list = []
