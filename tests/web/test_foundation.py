"""Settings, roles and visibility, login, dashboard, admin, seed_demo, /healthz."""

import ast
import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from connections.models import (
    ConsentLink,
    Fleet,
    LinkStatus,
    Membership,
    Upload,
    VinStatus,
    WorkerHeartbeat,
)
from tests.factories import add_entry, make_upload
from tests.flows import PRODUCTION_ENV, run_django
from tests.permissions import assert_access

ROOT = Path(__file__).resolve().parents[2]


class TestSettings:
    def test_check_deploy_is_clean_in_production(self, tmp_path):
        result = run_django(["check", "--deploy"], {**PRODUCTION_ENV, "DATA_DIR": str(tmp_path)})
        assert result.returncode == 0, result.stderr
        assert "no issues" in result.stdout, result.stdout + result.stderr

    def test_secret_key_is_required_without_debug(self, tmp_path):
        env = {**PRODUCTION_ENV, "SECRET_KEY": "", "DATA_DIR": str(tmp_path)}
        result = run_django(["check"], env)
        assert result.returncode != 0
        assert "ImproperlyConfigured: SECRET_KEY is required" in result.stderr

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("DEBUG", "maybe"),
            ("VOLTERAS_API_URL", "ftp://nowhere"),
            ("PORTAL_BASE_URL", "not a url"),
            ("UPLOAD_MAX_ROWS", "lots"),
            ("DATABASE_URL", "nosuchdb://x"),
            ("VOLTERAS_WEBHOOK_SECRET", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            ("VOLTERAS_WEBHOOK_SECRET", "whsec_not base64!"),
            ("VOLTERAS_WEBHOOK_SECRET", "whsec_"),
            # The sandbox's own settings, under which it runs.
            ("SANDBOX_SPEED", "-1"),
            ("SANDBOX_WEBHOOK_SECRET", "sandbox-secret"),
            ("SANDBOX_WEBHOOK_URL", "127.0.0.1:8000/webhooks/volteras/"),
        ],
    )
    def test_bad_values_name_the_variable(self, tmp_path, name, value):
        env = {**PRODUCTION_ENV, "DATA_DIR": str(tmp_path), name: value}
        if name.startswith("SANDBOX_"):
            env["DJANGO_SETTINGS_MODULE"] = "sandbox.settings"
        result = run_django(["check"], env)
        assert result.returncode != 0
        assert "ImproperlyConfigured" in result.stderr
        assert name in result.stderr.strip().splitlines()[-1]

    def test_webhook_settings_are_kept_as_given(self, tmp_path):
        env = {
            **PRODUCTION_ENV,
            "DATA_DIR": str(tmp_path),
            "SANDBOX_WEBHOOK_SECRET": "whsec_c2FuZGJveC13ZWJob29rLXNlY3JldA",  # unpadded
            "SANDBOX_WEBHOOK_URL": "http://127.0.0.1:8000/webhooks/volteras/",
        }
        portal = run_django(
            [
                "shell",
                "-c",
                "from django.conf import settings as s; print(s.VOLTERAS_WEBHOOK_SECRET)",
            ],
            env,
        )
        assert portal.returncode == 0, portal.stderr
        assert portal.stdout.strip().splitlines()[-1] == PRODUCTION_ENV["VOLTERAS_WEBHOOK_SECRET"]
        code = (
            "from django.conf import settings as s; "
            "print(s.SANDBOX_WEBHOOK_SECRET, s.SANDBOX_WEBHOOK_URL)"
        )
        sandbox = run_django(
            ["shell", "-c", code], {**env, "DJANGO_SETTINGS_MODULE": "sandbox.settings"}
        )
        assert sandbox.returncode == 0, sandbox.stderr
        assert sandbox.stdout.strip().splitlines()[-1].split() == [
            env["SANDBOX_WEBHOOK_SECRET"],
            env["SANDBOX_WEBHOOK_URL"],
        ]

    def test_missing_volteras_settings_warn(self, tmp_path):
        env = {
            "DEBUG": "true",
            "DATA_DIR": str(tmp_path),
            "VOLTERAS_CLIENT_ID": "",
            "VOLTERAS_CLIENT_SECRET": "",
            "VOLTERAS_WEBHOOK_SECRET": "",
        }
        result = run_django(["check"], env)
        assert result.returncode == 0
        assert "connections.W001" in result.stderr + result.stdout
        assert "VOLTERAS_CLIENT_ID" in result.stderr + result.stdout


class TestSeparation:
    def test_migrate_keeps_sandbox_tables_out_of_the_portal_database(self, tmp_path):
        env = {
            "DEBUG": "true",
            "DATA_DIR": str(tmp_path),
            # SQLite files whatever this run's DATABASE_URL, so each can be opened below.
            "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.sqlite3'}",
            "SANDBOX_DATABASE_URL": f"sqlite:///{tmp_path / 'sandbox.sqlite3'}",
        }
        for settings in ("fleet_portal.settings", "sandbox.settings"):
            result = run_django(
                ["migrate", "--no-input"], {**env, "DJANGO_SETTINGS_MODULE": settings}
            )
            assert result.returncode == 0, result.stderr

        def tables(name: str) -> set[str]:
            with sqlite3.connect(tmp_path / name) as db:
                rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                return {row[0] for row in rows}

        portal, sandbox = tables("portal.sqlite3"), tables("sandbox.sqlite3")
        assert "connections_fleet" in portal and "sandbox_vehicle" in sandbox
        assert {t for t in portal if t.startswith("sandbox_")} == set()
        assert {t for t in sandbox if t.startswith(("connections_", "auth_"))} == set()

    def test_the_portal_settings_know_no_sandbox(self, tmp_path):
        """The sandbox is a process of its own: the portal installs neither its app
        nor its database."""
        code = (
            "from django.conf import settings as s; "
            "print('sandbox' in s.INSTALLED_APPS, sorted(s.DATABASES), "
            "s.DATABASE_ROUTERS, s.ROOT_URLCONF)"
        )
        for env in (PRODUCTION_ENV, {"DEBUG": "true"}):
            result = run_django(["shell", "-c", code], {**env, "DATA_DIR": str(tmp_path)})
            assert result.returncode == 0, result.stderr
            assert (
                result.stdout.strip().splitlines()[-1] == "False ['default'] [] fleet_portal.urls"
            )

    def test_the_sandbox_runs_on_its_own_settings(self, tmp_path):
        code = (
            "from django.conf import settings as s; "
            "print(s.INSTALLED_APPS, sorted(s.DATABASES), s.ROOT_URLCONF, s.MIDDLEWARE[0], s.DEBUG)"
        )
        env = {"DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "sandbox.settings"}
        result = run_django(["shell", "-c", code], env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().splitlines()[-1] == (
            "['sandbox'] ['default'] sandbox.urls sandbox.faults.FaultMiddleware False"
        )

    def test_connections_never_imports_sandbox(self):
        """The portal reaches the sandbox only over HTTP, as it reaches Volteras."""
        found = []
        for path in sorted((ROOT / "connections").rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names = [node.module or ""]
                else:
                    continue
                found += [
                    f"{path.relative_to(ROOT)}:{node.lineno} {name}"
                    for name in names
                    if name == "sandbox" or name.startswith("sandbox.")
                ]
        assert found == []


class TestStaticFiles:
    def test_served_hashed_and_compressed_with_debug_off(self, tmp_path):
        env = {**PRODUCTION_ENV, "DATA_DIR": str(tmp_path)}
        result = run_django(["collectstatic", "--no-input", "-v", "0"], env)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "static" / "staticfiles.json").exists()
        code = (
            "from django.templatetags.static import static; from django.test import Client; "
            "url = static('css/portal.css'); "
            "r = Client(HTTP_HOST='fleet.example.com').get(url, secure=True, "
            "HTTP_ACCEPT_ENCODING='gzip'); "
            "print(url, r.status_code, r['Content-Type'], r.get('Content-Encoding'), "
            "r['Cache-Control'], sep='|')"
        )
        result = run_django(["shell", "-c", code], env)
        assert result.returncode == 0, result.stderr
        answer = result.stdout.strip().splitlines()[-1]
        url, status, content_type, encoding, cache_control = answer.split("|")
        assert url.startswith("/static/css/portal.") and url != "/static/css/portal.css"
        assert (status, encoding) == ("200", "gzip")
        assert content_type.startswith("text/css")
        assert "immutable" in cache_control


class TestVisibility:
    def test_manager_sees_only_own_fleets(self, manager, fleet, other_fleet):
        assert list(Fleet.objects.visible_to(manager)) == [fleet]

    def test_support_and_admin_see_all(self, support, admin_user, fleet, other_fleet):
        assert set(Fleet.objects.visible_to(support)) == {fleet, other_fleet}
        assert set(Fleet.objects.visible_to(admin_user)) == {fleet, other_fleet}

    def test_inactive_user_sees_nothing(self, manager):
        manager.is_active = False
        assert not Fleet.objects.visible_to(manager).exists()

    def test_manager_of_two_fleets(self, manager, fleet, other_fleet):
        Membership.objects.create(user=manager, fleet=other_fleet)
        assert Fleet.objects.visible_to(manager).count() == 2


class TestManaging:
    """Who may change a fleet (uploads, fleet consent links, accounts): members and
    admins. Support staff read every fleet but manage none."""

    def test_members_and_admins_manage(self, manager, admin_user, fleet, other_fleet):
        assert list(Fleet.objects.managed_by(manager)) == [fleet]
        assert set(Fleet.objects.managed_by(admin_user)) == {fleet, other_fleet}

    def test_support_manages_nothing(self, support, fleet, other_fleet):
        assert not Fleet.objects.managed_by(support).exists()

    def test_support_who_is_also_a_member_manages_that_fleet(self, support, fleet, other_fleet):
        Membership.objects.create(user=support, fleet=fleet)
        assert list(Fleet.objects.managed_by(support)) == [fleet]

    def test_fleet_page_offers_uploads_only_to_those_who_may_upload(
        self, client, manager, support, admin_user, fleet
    ):
        upload_url = reverse("upload_new", args=[fleet.slug])
        for user, offered in ((manager, True), (admin_user, True), (support, False)):
            client.force_login(user)
            body = client.get(reverse("fleet_detail", args=[fleet.slug])).content.decode()
            assert (upload_url in body) is offered, user.username

    def test_inactive_or_anonymous_manage_nothing(self, manager, fleet):
        from django.contrib.auth.models import AnonymousUser

        assert not Fleet.objects.managed_by(AnonymousUser()).exists()
        manager.is_active = False
        assert not Fleet.objects.managed_by(manager).exists()


class TestPages:
    def test_dashboard_matrix(self, client, users):
        assert_access(client, reverse("dashboard"), users, outsider=200)

    def test_fleet_detail_matrix(self, client, users, fleet):
        assert_access(client, reverse("fleet_detail", args=[fleet.slug]), users)

    def test_unknown_fleet_is_404(self, client, admin_user):
        client.force_login(admin_user)
        assert client.get("/fleets/no-such-fleet/").status_code == 404

    def test_dashboard_counts(self, client, manager, fleet, other_fleet):
        upload = make_upload(fleet, manager, state=Upload.State.DRAFT)
        for status in [
            VinStatus.CONNECTED,
            VinStatus.CONNECTED,
            VinStatus.PENDING,
            VinStatus.ERROR,
        ]:
            add_entry(upload, status)
        client.force_login(manager)
        page = client.get("/")
        assert page.status_code == 200
        rows = page.context["rows"]
        assert [f for f, _ in rows] == [fleet]
        counts = rows[0][1]
        assert (counts["connected"], counts["in_progress"], counts["needs_action"]) == (2, 1, 1)
        assert "Other Fleet" not in page.content.decode()

    def test_dashboard_counts_only_usable_consent_links(self, client, manager, fleet, other_fleet):
        now = timezone.now()
        week, past = now + timedelta(days=7), now - timedelta(minutes=1)
        for owner, status, expires_at in [
            (fleet, LinkStatus.ACTIVE, week),
            (fleet, LinkStatus.OPENED, week),
            (fleet, LinkStatus.ACTIVE, past),  # expired by its clock
            (fleet, LinkStatus.COMPLETED, week),
            (fleet, LinkStatus.REVOKED, week),
            (fleet, LinkStatus.EXPIRED, week),
            (other_fleet, LinkStatus.ACTIVE, week),
        ]:
            ConsentLink.objects.create(
                fleet=owner,
                status=status,
                expires_at=expires_at,
                authentication_url="https://connect.example/x",
            )
        client.force_login(manager)
        page = client.get("/")
        assert page.context["rows"][0][1]["active_links"] == 2
        assert '<td class="num">2</td>' in page.content.decode()

    def test_zero_state_explains_what_to_do(self, client, db):
        lonely = User.objects.create_user("lonely", password="x")
        client.force_login(lonely)
        body = client.get("/").content.decode()
        assert "not a member of any fleet" in body

    def test_navigation_by_role(self, client, manager, support, admin_user):
        client.force_login(manager)
        body = client.get("/").content.decode()
        assert 'href="/admin/"' not in body
        assert 'href="/support/"' not in body
        client.force_login(support)
        body = client.get("/").content.decode()
        assert 'href="/support/">Support</a>' in body
        assert 'href="/admin/"' not in body
        client.force_login(admin_user)
        assert 'href="/admin/"' in client.get("/").content.decode()


class TestLogin:
    def test_login_page_and_login(self, client, manager):
        assert client.get("/accounts/login/").status_code == 200
        response = client.post(
            "/accounts/login/", {"username": "manager", "password": "correct-horse-battery-staple"}
        )
        assert response.status_code == 302
        assert response["Location"] == "/"
        assert client.get("/").status_code == 200

    def test_wrong_password_is_refused(self, client, manager):
        response = client.post("/accounts/login/", {"username": "manager", "password": "nope"})
        assert response.status_code == 200
        assert "correct username and password" in response.content.decode()

    def test_logout_is_a_csrf_protected_post(self, manager):
        from django.test import Client

        strict = Client(enforce_csrf_checks=True)
        strict.force_login(manager)
        assert strict.post("/accounts/logout/").status_code == 403
        assert strict.get("/").status_code == 200

    def test_session_cookie_is_hardened(self, settings):
        assert settings.SESSION_COOKIE_HTTPONLY
        assert settings.SESSION_COOKIE_SAMESITE == "Lax"


class TestAdmin:
    def test_every_model_is_registered(self):
        ours = apps.get_app_config("connections").get_models()
        missing = [m.__name__ for m in ours if not admin.site.is_registered(m)]
        assert missing == []

    def test_admin_pages_load_for_admin(self, client, admin_user, fleet):
        client.force_login(admin_user)
        for model in apps.get_app_config("connections").get_models():
            meta = model._meta
            url = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
            assert client.get(url).status_code == 200, url
        assert client.get(f"/admin/connections/fleet/{fleet.pk}/change/").status_code == 200

    def test_support_and_managers_have_no_admin(self, client, support, manager):
        for user in (support, manager):
            client.force_login(user)
            response = client.get("/admin/")
            assert response.status_code == 302
            assert "/admin/login/" in response["Location"]


class TestSeedDemo:
    def test_idempotent_with_roles(self, db, settings, tmp_path, monkeypatch, capsys):
        settings.DATA_DIR = tmp_path
        monkeypatch.delenv("DEMO_PASSWORD", raising=False)
        call_command("seed_demo")
        first = capsys.readouterr().out
        password = (tmp_path / "demo-password.txt").read_text().strip()
        assert password in first
        call_command("seed_demo")
        assert capsys.readouterr().out.count(password) == 4
        assert Fleet.objects.count() == 2
        assert User.objects.count() == 4
        demo = Fleet.objects.get(name="Demo Fleet")
        manager = User.objects.get(username="manager")
        assert list(Fleet.objects.visible_to(manager)) == [demo]
        assert Fleet.objects.visible_to(User.objects.get(username="support")).count() == 2
        assert User.objects.get(username="admin").is_superuser
        assert not User.objects.get(username="support").is_staff
        assert manager.check_password(password)

    def test_a_deleted_password_file_gives_a_new_password_that_works(
        self, db, settings, tmp_path, monkeypatch, capsys
    ):
        settings.DATA_DIR = tmp_path
        monkeypatch.delenv("DEMO_PASSWORD", raising=False)
        call_command("seed_demo")
        saved = tmp_path / "demo-password.txt"
        first = saved.read_text().strip()
        saved.unlink()
        capsys.readouterr()

        call_command("seed_demo")
        second = saved.read_text().strip()
        assert second != first
        assert second in capsys.readouterr().out
        for username in ("admin", "support", "manager", "outsider"):
            assert User.objects.get(username=username).check_password(second), username

    def test_demo_password_from_environment(self, db, settings, tmp_path, monkeypatch):
        settings.DATA_DIR = tmp_path
        monkeypatch.setenv("DEMO_PASSWORD", "chosen-pass-123")
        call_command("seed_demo")
        assert User.objects.get(username="outsider").check_password("chosen-pass-123")


class TestHealthz:
    def test_healthy(self, client, db, fake_volteras):
        WorkerHeartbeat.beat("w1")
        response = client.get("/healthz")
        body = json.loads(response.content)
        assert response.status_code == 200, body
        assert body["database"]["ok"] and body["worker"]["ok"] and body["volteras"]["ok"]
        assert body["worker"]["heartbeat_age_seconds"] < 5

    def test_no_worker_is_unhealthy(self, client, db, fake_volteras):
        response = client.get("/healthz")
        assert response.status_code == 503
        assert json.loads(response.content)["worker"] == {
            "ok": False,
            "heartbeat_age_seconds": None,
        }

    def test_stale_worker_is_unhealthy(self, client, db, fake_volteras):
        WorkerHeartbeat.objects.create(worker_id="old", seen_at=timezone.now() - timedelta(hours=1))
        assert client.get("/healthz").status_code == 503

    def test_database_unreachable(self, tmp_path):
        with socket_closed_port() as db_port, socket_closed_port() as api_port:
            env = {
                "DEBUG": "true",
                "DATA_DIR": str(tmp_path),
                "ALLOWED_HOSTS": "testserver",
                "DATABASE_URL": f"postgres://fleet:x@127.0.0.1:{db_port}/fleet",
                "VOLTERAS_API_URL": f"http://127.0.0.1:{api_port}",
            }
            code = (
                "from django.test import Client; r = Client().get('/healthz'); "
                "print(r.status_code, r.content.decode())"
            )
            result = run_django(["shell", "-c", code], env)
        assert result.returncode == 0, result.stderr
        status, _, body = result.stdout.strip().splitlines()[-1].partition(" ")
        assert status == "503"
        assert json.loads(body)["database"] == {"ok": False, "error": "OperationalError"}

    def test_volteras_unreachable(self, client, db, settings):
        WorkerHeartbeat.beat("w1")
        with socket_closed_port() as port:
            settings.VOLTERAS_API_URL = f"http://127.0.0.1:{port}"
            cache.clear()
            response = client.get("/healthz")
        cache.clear()
        assert response.status_code == 503
        assert json.loads(response.content)["volteras"]["ok"] is False


class socket_closed_port:
    """A loopback port nothing listens on."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def __exit__(self, *exc) -> None:
        return None
