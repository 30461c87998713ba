"""The sandbox's own settings: `DJANGO_SETTINGS_MODULE=sandbox.settings` (what
`python -m sandbox` sets). The sandbox is a process of its own, an imitation of
Volteras: its database is its `default`, its URLconf is the whole site, and it
shares nothing with the portal but the environment helpers.

Every variable is documented in sandbox/README.md.
"""

from pathlib import Path

from fleet_portal.env import (
    env_database,
    env_float,
    env_int,
    env_list,
    env_optional_url,
    env_str,
    env_url,
    env_webhook_secret,
)

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "var"))).resolve()

# Never a debug page: a failure answers the API's SERVER_ERROR envelope.
DEBUG = False
# The sandbox signs nothing with it (no sessions, no cookies), but Django wants one.
SECRET_KEY = env_str("SANDBOX_SECRET_KEY", "the-offline-volteras-sandbox-keeps-no-secrets")
ALLOWED_HOSTS = env_list("SANDBOX_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])

SANDBOX_CLIENT_ID = env_str("SANDBOX_CLIENT_ID", "sandbox-client")
SANDBOX_CLIENT_SECRET = env_str("SANDBOX_CLIENT_SECRET", "sandbox-secret")
SANDBOX_WEBHOOK_SECRET = env_webhook_secret("SANDBOX_WEBHOOK_SECRET")
SANDBOX_WEBHOOK_URL = env_optional_url("SANDBOX_WEBHOOK_URL")
SANDBOX_TOKEN_TTL = env_int("SANDBOX_TOKEN_TTL", 3600, minimum=1)
SANDBOX_SPEED = env_float("SANDBOX_SPEED", 1.0, minimum=0.0)
SANDBOX_VEHICLE_LIMIT = env_int("SANDBOX_VEHICLE_LIMIT", 10_000, minimum=1)
SANDBOX_BASE_URL = env_url("SANDBOX_BASE_URL", env_url("VOLTERAS_API_URL", "http://127.0.0.1:8001"))

INSTALLED_APPS = ["sandbox"]
MIDDLEWARE = [
    "sandbox.faults.FaultMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "sandbox.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    },
]

DATABASES = {
    "default": env_database("SANDBOX_DATABASE_URL", f"sqlite:///{DATA_DIR / 'sandbox.sqlite3'}"),
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "httpx": {"level": "WARNING"},
        "django.db.backends": {"level": "WARNING"},
        # One access-log line per request is enough; skip the 4xx echo.
        "django.request": {"level": "ERROR"},
    },
}
