from django.conf import settings
from django.core import checks

REQUIRED = ("VOLTERAS_CLIENT_ID", "VOLTERAS_CLIENT_SECRET", "VOLTERAS_WEBHOOK_SECRET")


@checks.register(checks.Tags.compatibility)
def volteras_settings(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Warn, rather than fail, so `migrate` and `seed_demo` still run on a bare machine."""
    missing = [name for name in REQUIRED if not getattr(settings, name, "")]
    if not missing:
        return []
    return [
        checks.Warning(
            f"{', '.join(missing)} not set: the portal cannot talk to Volteras"
            + (" or verify its webhooks." if "VOLTERAS_WEBHOOK_SECRET" in missing else "."),
            hint="Set them in the environment (see README.md, Configuration).",
            id="connections.W001",
        )
    ]
