"""Fixtures for the three roles (fleet manager, support, admin) and an outsider."""

import os

import pytest
from django.contrib.auth.models import Group, User

from connections.models import SUPPORT_GROUP, Fleet, Membership

pytest_plugins = ["tests.fixtures_sandbox"]

PASSWORD = "correct-horse-battery-staple"


def require_all() -> bool:
    """Under CI_REQUIRE_ALL=1 a missing server or browser fails instead of skipping."""
    return os.environ.get("CI_REQUIRE_ALL", "") in {"1", "true", "yes"}


@pytest.fixture
def fleet(db) -> Fleet:
    return Fleet.objects.create(name="Demo Fleet", slug="demo-fleet", default_country_code="GB")


@pytest.fixture
def other_fleet(db) -> Fleet:
    return Fleet.objects.create(name="Other Fleet", slug="other-fleet", default_country_code="DE")


@pytest.fixture
def manager(db, fleet) -> User:
    user = User.objects.create_user("manager", password=PASSWORD)
    Membership.objects.create(user=user, fleet=fleet)
    return user


@pytest.fixture
def outsider(db, other_fleet) -> User:
    user = User.objects.create_user("outsider", password=PASSWORD)
    Membership.objects.create(user=user, fleet=other_fleet)
    return user


@pytest.fixture
def support(db) -> User:
    user = User.objects.create_user("support", password=PASSWORD)
    group, _ = Group.objects.get_or_create(name=SUPPORT_GROUP)
    user.groups.add(group)
    return user


@pytest.fixture
def admin_user(db) -> User:
    return User.objects.create_superuser("admin", "admin@example.com", PASSWORD)


@pytest.fixture
def users(manager, outsider, support, admin_user) -> dict[str, User]:
    return {"manager": manager, "outsider": outsider, "support": support, "admin": admin_user}


def pytest_collection_modifyitems(config, items) -> None:
    """`postgres_only` tests need real row locks; the SQLite run (an in-memory
    shared-cache database) leaves them to the PostgreSQL run of `make test`."""
    from django.conf import settings

    if "postgresql" in settings.DATABASES["default"]["ENGINE"]:
        return
    deselected = [item for item in items if item.get_closest_marker("postgres_only")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("postgres_only")]
