from django.apps import AppConfig

from fleet_portal import timestamps


class ConnectionsConfig(AppConfig):
    name = "connections"
    verbose_name = "Fleet connections"

    def ready(self) -> None:
        # System checks register themselves on import; Django's own convention
        # is to import them here, once the app registry is ready.
        from connections import checks  # noqa: F401

        timestamps.install()
