"""The portal's settings plus the bench URLconf (trivial baseline views).

Only the URLconf and the static storage differ from production: the manifest
storage needs `collectstatic`, which nothing measured here depends on.
"""

from fleet_portal.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
