"""Demo fleets and users for `make run`. Safe to run again: it only fills gaps."""

import os
import secrets

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand
from django.db import transaction

from connections.models import SUPPORT_GROUP, Fleet, Membership, Region

FLEETS = [
    ("Demo Fleet", "demo-fleet", "GB"),
    ("Other Fleet", "other-fleet", "DE"),
]
# username, what they are, fleet slug they manage
USERS = [
    ("admin", "superuser: everything, including /admin/", None),
    ("support", "support staff: every fleet, troubleshooting, no admin", None),
    ("manager", "fleet manager of Demo Fleet", "demo-fleet"),
    ("outsider", "fleet manager of Other Fleet (cannot see Demo Fleet)", "other-fleet"),
]


def demo_password() -> tuple[str, bool]:
    """DEMO_PASSWORD when set; otherwise one generated on first use and kept in DATA_DIR."""
    if os.environ.get("DEMO_PASSWORD"):
        return os.environ["DEMO_PASSWORD"], False
    path = settings.DATA_DIR / "demo-password.txt"
    if path.exists():
        return path.read_text().strip(), False
    password = secrets.token_urlsafe(9)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(password + "\n")
    path.chmod(0o600)
    return password, True


class Command(BaseCommand):
    help = "Create the demo fleets and users (idempotent)."

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        password, generated = demo_password()
        fleets = {}
        for name, slug, country in FLEETS:
            fleets[slug], _ = Fleet.objects.get_or_create(
                slug=slug,
                defaults={
                    "name": name,
                    "default_country_code": country,
                    "default_region": Region.EUROPE,
                },
            )
        support_group, _ = Group.objects.get_or_create(name=SUPPORT_GROUP)
        for username, _what, fleet_slug in USERS:
            user, created = User.objects.get_or_create(username=username)
            # A newly generated password (the saved one was deleted) must be
            # the one that works, or the logins printed below would not.
            if created or generated or os.environ.get("DEMO_PASSWORD"):
                user.set_password(password)
            if username == "admin":
                user.is_staff = user.is_superuser = True
                user.email = user.email or "admin@example.com"
            user.save()
            if username == "support":
                user.groups.add(support_group)
            if fleet_slug:
                Membership.objects.get_or_create(user=user, fleet=fleets[fleet_slug])

        self.stdout.write("Demo logins (username / password):")
        for username, what, _ in USERS:
            self.stdout.write(f"  {username:<9} / {password}   {what}")
        if generated:
            self.stdout.write(
                f"The password was generated and saved in {settings.DATA_DIR}/demo-password.txt;"
                " set DEMO_PASSWORD to choose your own."
            )
