"""Django's admin finds this module; each package registers its own models."""

# Imported for their registrations (`@admin.register`), the admin's own convention.
from connections.consent import admin as consent_admin  # noqa: F401
from connections.mail import admin as mail_admin  # noqa: F401
from connections.sending import admin as sending_admin  # noqa: F401
from connections.support import admin as support_admin  # noqa: F401
from connections.uploads import admin as uploads_admin  # noqa: F401
from connections.vehicles import admin as vehicles_admin  # noqa: F401
from connections.web import admin as web_admin  # noqa: F401
from connections.webhooks import admin as webhooks_admin  # noqa: F401
