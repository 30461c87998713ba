from django.apps import AppConfig


class ConnectionsConfig(AppConfig):
    name = "connections"
    verbose_name = "Fleet connections"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
