"""Fleet Portal settings: one file, driven by environment variables.

Every variable is documented in README.md. A malformed value raises
ImproperlyConfigured naming the variable, so a typo fails at start-up rather
than hours later in a worker.
"""

import base64
import binascii
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

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
    return config


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off")
    SECRET_KEY = "insecure-development-key-set-SECRET_KEY-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])

DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "var"))).resolve()

PORTAL_BASE_URL = env_url("PORTAL_BASE_URL", "http://127.0.0.1:8000")

# Volteras. The default API URL is the offline sandbox `make run` starts.
VOLTERAS_API_URL = env_url("VOLTERAS_API_URL", "http://127.0.0.1:8001")
VOLTERAS_CLIENT_ID = env_str("VOLTERAS_CLIENT_ID")
VOLTERAS_CLIENT_SECRET = env_str("VOLTERAS_CLIENT_SECRET")
VOLTERAS_WEBHOOK_SECRET = env_webhook_secret("VOLTERAS_WEBHOOK_SECRET")
VOLTERAS_TIMEOUT = env_float("VOLTERAS_TIMEOUT", 15.0, minimum=0.1)
VOLTERAS_MAX_RETRIES = env_int("VOLTERAS_MAX_RETRIES", 4, minimum=0)

# Uploads and tracking.
UPLOAD_MAX_ROWS = env_int("UPLOAD_MAX_ROWS", 50_000, minimum=1)
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 10 * 1024 * 1024, minimum=1)
STALE_AFTER_DAYS = env_int("STALE_AFTER_DAYS", 14, minimum=1)
RECONCILE_INTERVAL_SECONDS = env_int("RECONCILE_INTERVAL_SECONDS", 900, minimum=10)
# Reads one reconciliation run makes beyond the vehicle list; the next run
# resumes where this one stopped.
RECONCILE_MAX_VEHICLE_READS = env_int("RECONCILE_MAX_VEHICLE_READS", 500, minimum=1)
RECONCILE_MAX_GROUP_READS = env_int("RECONCILE_MAX_GROUP_READS", 200, minimum=1)
# Refused webhook deliveries are kept this long, then pruned by the sweep.
WEBHOOK_REFUSED_RETENTION_DAYS = env_int("WEBHOOK_REFUSED_RETENTION_DAYS", 30, minimum=1)
WORKER_SWEEP_SECONDS = env_float("WORKER_SWEEP_SECONDS", 5.0, minimum=0.1)

# The support workspace: when an in-progress VIN counts as stuck (hours since
# its last status change, per make where a manufacturer is known to be slow),
# and when failures of one code on one make look like a manufacturer incident.
SUPPORT_STUCK_HOURS = env_int("SUPPORT_STUCK_HOURS", 48, minimum=1)
SUPPORT_STUCK_HOURS_BY_MAKE = env_int_map("SUPPORT_STUCK_HOURS_BY_MAKE")
INCIDENT_MIN_VINS = env_int("INCIDENT_MIN_VINS", 10, minimum=2)
INCIDENT_WINDOW_HOURS = env_int("INCIDENT_WINDOW_HOURS", 6, minimum=1)

# The offline Volteras sandbox (the `sandbox` app, run by `manage.py run_sandbox`).
SANDBOX_CLIENT_ID = env_str("SANDBOX_CLIENT_ID", "sandbox-client")
SANDBOX_CLIENT_SECRET = env_str("SANDBOX_CLIENT_SECRET", "sandbox-secret")
SANDBOX_WEBHOOK_SECRET = env_webhook_secret("SANDBOX_WEBHOOK_SECRET")
SANDBOX_WEBHOOK_URL = env_optional_url("SANDBOX_WEBHOOK_URL")
SANDBOX_TOKEN_TTL = env_int("SANDBOX_TOKEN_TTL", 3600, minimum=1)
SANDBOX_SPEED = env_float("SANDBOX_SPEED", 1.0, minimum=0.0)
SANDBOX_VEHICLE_LIMIT = env_int("SANDBOX_VEHICLE_LIMIT", 10_000, minimum=1)
SANDBOX_BASE_URL = env_url("SANDBOX_BASE_URL", VOLTERAS_API_URL)

# E-mail: sent by the worker through Django's SMTP backend (README "Configuration").
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 20, minimum=1)
globals().update(env_email_url("EMAIL_URL"))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Fleet Portal <portal@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Where `make run`'s local SMTP server keeps every message it receives.
MAIL_DIR = DATA_DIR / "mail"
MAIL_MAX_ATTEMPTS = env_int("MAIL_MAX_ATTEMPTS", 8, minimum=1)
# Hours before a consent link expires at which its recipient is reminded (at most two).
CONSENT_REMINDER_HOURS = sorted(
    (int(h) for h in env_list("CONSENT_REMINDER_HOURS", ["48", "24"]) if h.isdigit()),
    reverse=True,
)[:2]
# The hour (UTC) after which the daily digest goes out.
DIGEST_HOUR = env_int("DIGEST_HOUR", 7, minimum=0)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "django_tasks",
    "django_tasks_db",
    "connections",
    "sandbox",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "fleet_portal.urls"
WSGI_APPLICATION = "fleet_portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "connections.web.context_processors.navigation",
            ],
        },
    },
]

DATABASES = {
    "default": env_database("DATABASE_URL", f"sqlite:///{DATA_DIR / 'portal.sqlite3'}"),
    "sandbox": env_database("SANDBOX_DATABASE_URL", f"sqlite:///{DATA_DIR / 'sandbox.sqlite3'}"),
}
DATABASE_ROUTERS = ["sandbox.routers.SandboxRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TASKS = {
    "default": {
        "BACKEND": env_str("TASKS_BACKEND", "django_tasks_db.DatabaseBackend"),
        "QUEUES": ["default"],
    }
}

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
# The owner's pages and e-mails speak these (locale/*.po, compiled by `make`);
# the staff pages stay in English (no LocaleMiddleware).
LANGUAGES = [
    ("en", "English"),
    ("de", "Deutsch"),
    ("fr", "Français"),
    ("es", "Español"),
    ("it", "Italiano"),
    ("nl", "Nederlands"),
]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
if not DEBUG:
    # Tests and `make run` serve straight from the source folders.
    WHITENOISE_USE_FINDERS = env_bool("WHITENOISE_USE_FINDERS", False)

DATA_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_MAX_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# Hardened sessions and cookies; HTTPS settings apply behind a TLS proxy.
SECURE_HTTPS = env_bool("SECURE_HTTPS", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 12 * 3600, minimum=60)
SESSION_COOKIE_SECURE = SECURE_HTTPS
CSRF_COOKIE_SECURE = SECURE_HTTPS
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
SECURE_SSL_REDIRECT = SECURE_HTTPS and env_bool("SECURE_SSL_REDIRECT", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if SECURE_HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "httpx": {"level": "WARNING"},
        "django.db.backends": {"level": "WARNING"},
    },
}
