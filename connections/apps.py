from django.apps import AppConfig


class ConnectionsConfig(AppConfig):
    name = "connections"
    verbose_name = "Fleet connections"

    def ready(self) -> None:
        # Imported for their side effects: system checks, webhook tasks and sweepers.
        from . import checks, reconcile, webhooks  # noqa: F401
