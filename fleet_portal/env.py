"""Reading settings from the environment: each helper names the variable in the
ImproperlyConfigured it raises, so a typo fails at start-up. Shared by the
portal's settings and the sandbox's (`sandbox/settings.py`)."""

import base64
import binascii
import os
from urllib.parse import unquote, urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false (1/0, yes/no), got {raw!r}")


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_float(name: str, default: float, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_int_map(name: str, default: dict[str, int] | None = None) -> dict[str, int]:
    """`KEY=number,KEY=number` (keys upper-cased), e.g. SUPPORT_STUCK_HOURS_BY_MAKE=BMW=72."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return dict(default or {})
    result: dict[str, int] = {}
    for item in raw.split(","):
        key, sep, value = item.partition("=")
        if not item.strip():
            continue
        try:
            number = int(value)
        except ValueError:
            number = -1
        if not sep or not key.strip() or number < 1:
            raise ImproperlyConfigured(
                f"{name} must look like KEY=hours,KEY=hours (whole numbers of 1 or more), "
                f"got {item.strip()!r}"
            )
        result[key.strip().upper()] = number
    return result


def env_url(name: str, default: str) -> str:
    raw = os.environ.get(name, default).strip()
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ImproperlyConfigured(f"{name} must be an http(s) URL, got {raw!r}")
    return raw.rstrip("/")


def env_optional_url(name: str) -> str:
    """An http(s) URL kept exactly (a trailing slash matters to the receiver),
    or empty for "none"."""
    raw = os.environ.get(name, "").strip()
    parts = urlsplit(raw)
    if raw and (parts.scheme not in {"http", "https"} or not parts.netloc):
        raise ImproperlyConfigured(f"{name} must be an http(s) URL or empty, got {raw!r}")
    return raw


def env_webhook_secret(name: str) -> str:
    """A Svix signing secret, `whsec_` and base64, or empty for "not set".

    Checked here because svix itself only fails when a webhook arrives (every
    delivery refused as badly signed), and decodes leniently, skipping
    characters that are not base64.
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return ""
    prefix, _, key = raw.partition("_")
    try:
        decoded = base64.b64decode(key + "=" * (-len(key) % 4), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if prefix != "whsec" or not decoded:
        raise ImproperlyConfigured(
            f"{name} must be a Svix signing secret: whsec_ followed by base64, as the "
            "webhook endpoint's page shows it (the value is not repeated here)"
        )
    return raw


def env_database(name: str, default: str) -> dict:
    raw = os.environ.get(name) or default
    try:
        config = dj_database_url.parse(raw, conn_max_age=60, conn_health_checks=True)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is not a usable database URL: {exc}") from None
    if not config.get("ENGINE"):
        raise ImproperlyConfigured(f"{name} names an unsupported database: {raw!r}")
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # Several processes (portal, worker) share the file: wait for locks
        # instead of failing, and let readers run beside the writer.
        config["CONN_MAX_AGE"] = 0
        config["OPTIONS"] = {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    elif config["ENGINE"] == "django.db.backends.postgresql":
        # Parameters sent apart from the SQL, and a statement run five times on
        # one connection prepared by psycopg (Django turns that off by default,
        # for connection poolers in transaction mode, which this deployment
        # does not use): what every request repeats (its session and user, a
        # live table's poll) skips PostgreSQL's planning, 0.05-0.15 ms each.
        config.setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
    return config


def env_email_url(name: str) -> dict[str, object]:
    """`smtp://user:password@host:port` (`smtp+tls://` for STARTTLS, `smtps://` for
    TLS from the start), or `console://` / `locmem://`: Django's EMAIL_* settings."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return {}
    parts = urlsplit(raw)
    backends = {
        "smtp": "smtp",
        "smtp+tls": "smtp",
        "smtps": "smtp",
        "console": "console",
        "locmem": "locmem",
    }
    if parts.scheme not in backends or (backends[parts.scheme] == "smtp" and not parts.hostname):
        raise ImproperlyConfigured(
            f"{name} must look like smtp://user:password@host:port (or smtp+tls://, smtps://, "
            "console://), got a value of another form (not repeated here)"
        )
    config: dict[str, object] = {
        "EMAIL_BACKEND": f"django.core.mail.backends.{backends[parts.scheme]}.EmailBackend"
    }
    if backends[parts.scheme] == "smtp":
        config.update(
            EMAIL_HOST=parts.hostname,
            EMAIL_PORT=parts.port or (465 if parts.scheme == "smtps" else 25),
            EMAIL_HOST_USER=unquote(parts.username or ""),
            EMAIL_HOST_PASSWORD=unquote(parts.password or ""),
            EMAIL_USE_TLS=parts.scheme == "smtp+tls",
            EMAIL_USE_SSL=parts.scheme == "smtps",
        )
    return config
