import ipaddress
from urllib.parse import urlsplit

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


# The sandbox's own address as `make run` starts it (SANDBOX_PORT); its API speaks plain http.
SANDBOX_DEFAULT_PORT = 8001


@checks.register(checks.Tags.security, deploy=True)
def volteras_is_not_the_sandbox(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """`check --deploy` with DEBUG off warns when VOLTERAS_API_URL still looks like
    the offline sandbox: a production portal would send nothing to Volteras.

    SANDBOX_BASE_URL is not compared: it defaults to VOLTERAS_API_URL, so
    they are equal in every deployment that does not run the sandbox.
    """
    if settings.DEBUG:
        return []
    url = urlsplit(settings.VOLTERAS_API_URL)
    host = url.hostname or ""
    reasons = []
    if host == "localhost" or host.endswith(".localhost") or _is_loopback(host):
        reasons.append("a loopback address")
    if url.port == SANDBOX_DEFAULT_PORT:
        reasons.append(f"the sandbox's port {SANDBOX_DEFAULT_PORT}")
    if url.scheme != "https":
        reasons.append("plain http")
    if not reasons:
        return []
    return [
        checks.Warning(
            f"VOLTERAS_API_URL is {settings.VOLTERAS_API_URL} ({', '.join(reasons)}): "
            "that looks like the offline sandbox, not Volteras.",
            hint="Set VOLTERAS_API_URL=https://api.volteras.com in production "
            "(see README.md, Configuration).",
            id="connections.W002",
        )
    ]


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
