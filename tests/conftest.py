"""Fixtures for the three roles (fleet manager, support, admin) and an outsider."""

import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group, User

from connections import volteras
from connections.models import SUPPORT_GROUP, Fleet, Membership, Upload
from fleet_portal.translations import compile_all as compile_translations
from tests.contract import ContractWatch
from tests.factories import make_upload

pytest_plugins = ["tests.fixtures_sandbox"]

PASSWORD = "correct-horse-battery-staple"


def pytest_configure(config: pytest.Config) -> None:
    """A cheap password hasher for every test (and the live server, which runs in
    this process): PBKDF2's million rounds would cost a second per user created."""
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The owner's languages, compiled as `make` does (a no-op when up to date).
    compile_translations()


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
def upload(fleet) -> Upload:
    """A submitted upload of `fleet`, with no rows yet (`add_entry` adds them)."""
    return make_upload(fleet)


@pytest.fixture
def users(manager, outsider, support, admin_user) -> dict[str, User]:
    return {"manager": manager, "outsider": outsider, "support": support, "admin": admin_user}


@pytest.fixture(autouse=True)
def contract_watch(monkeypatch: pytest.MonkeyPatch) -> Iterator[ContractWatch]:
    """Every client `get_client()` builds during a test checks each exchange
    against the Volteras contract, so the requests the portal really sends and
    the sandbox's answers to them are validated in every test, not only in
    the client's own. A mismatch fails the test, whichever thread saw it."""
    watch = ContractWatch()
    real = volteras.VolterasClient

    class Watched(real):
        # A subclass, not a factory function, so tests can still patch the
        # client's methods on `volteras.VolterasClient`.
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, event_hooks=watch.hooks(), **kwargs)

    _drop_cached_clients()
    monkeypatch.setattr(volteras, "VolterasClient", Watched)
    yield watch
    _drop_cached_clients()
    late = watch.take_failures()
    if late:
        pytest.fail("Volteras contract broken after the test body:\n" + "\n".join(late))


def _drop_cached_clients() -> None:
    with volteras._clients_lock:
        clients = list(volteras._clients.values())
        volteras._clients.clear()
    for client in clients:
        client.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Fail the test itself (not its teardown) for contract mismatches seen
    while it ran, including those a server or worker thread swallowed."""
    result = yield
    watch = item.funcargs.get("contract_watch")
    if isinstance(watch, ContractWatch):
        failures = watch.take_failures()
        if failures:
            raise AssertionError("Volteras contract broken:\n" + "\n".join(failures))
    return result


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
