"""`check --deploy`: production settings stay clean, a sandbox API URL warns;
static files without collectstatic; /favicon.ico."""

import pytest

from connections.checks import volteras_is_not_the_sandbox
from tests.flows import PRODUCTION_ENV, run_django


class TestSandboxCheck:
    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1:8001",
            "http://localhost:9000",
            "https://[::1]",
            "https://sandbox.internal:8001",
            "http://api.volteras.com",
        ],
    )
    def test_a_sandbox_url_warns_with_debug_off(self, settings, url):
        settings.DEBUG = False
        settings.VOLTERAS_API_URL = url
        (warning,) = volteras_is_not_the_sandbox(None)
        assert warning.id == "connections.W002"
        assert url in warning.msg

    def test_the_real_api_is_clean(self, settings):
        settings.DEBUG = False
        settings.VOLTERAS_API_URL = "https://api.volteras.com"
        assert volteras_is_not_the_sandbox(None) == []

    def test_debug_on_is_not_a_deployment(self, settings):
        settings.DEBUG = True
        settings.VOLTERAS_API_URL = "http://127.0.0.1:8001"
        assert volteras_is_not_the_sandbox(None) == []

    def test_check_deploy_warns_on_the_sandbox_default(self, tmp_path):
        sandbox = "http://127.0.0.1:8001"  # the default, and what `make run` sets
        env = {**PRODUCTION_ENV, "DATA_DIR": str(tmp_path), "VOLTERAS_API_URL": sandbox}
        result = run_django(["check", "--deploy"], env)
        assert result.returncode == 0, result.stderr
        output = result.stderr + result.stdout
        assert "connections.W002" in output and "1 issue" in output, output

    def test_check_without_deploy_stays_quiet(self, tmp_path):
        sandbox = "http://127.0.0.1:8001"
        env = {**PRODUCTION_ENV, "DATA_DIR": str(tmp_path), "VOLTERAS_API_URL": sandbox}
        result = run_django(["check"], env)
        assert result.returncode == 0, result.stderr
        assert "connections.W002" not in result.stderr + result.stdout


class TestStaticWithoutCollectstatic:
    def test_finders_serve_pages_and_files_with_debug_off(self, tmp_path):
        """WHITENOISE_USE_FINDERS=true: no collectstatic, no manifest, and still
        every page renders and links files that are served."""
        env = {**PRODUCTION_ENV, "DATA_DIR": str(tmp_path), "WHITENOISE_USE_FINDERS": "true"}
        code = (
            "import re; from django.test import Client; "
            "c = Client(HTTP_HOST='fleet.example.com'); "
            "page = c.get('/accounts/login/', secure=True); "
            'css = re.search(r\'href="(/static/css/[^"]+)"\', page.content.decode()).group(1); '
            "r = c.get(css, secure=True); "
            "print(page.status_code, css, r.status_code, r['Content-Type'], sep='|')"
        )
        result = run_django(["shell", "-c", code], env)
        assert result.returncode == 0, result.stderr
        assert not (tmp_path / "static").exists()
        status, css, css_status, content_type = result.stdout.strip().splitlines()[-1].split("|")
        assert (status, css, css_status) == ("200", "/static/css/portal.css", "200")
        assert content_type.startswith("text/css")


class TestFavicon:
    def test_favicon_ico_leads_anyone_to_the_icon(self, client, db):
        response = client.get("/favicon.ico")
        assert response.status_code == 302
        assert response["Location"] == "/static/img/favicon.svg"
        icon = client.get(response["Location"])
        assert icon.status_code == 200
        assert icon["Content-Type"] == "image/svg+xml"

    def test_admin_pages_link_the_icon(self, client, admin_user):
        client.force_login(admin_user)
        for url in ("/admin/", "/admin/connections/fleet/", "/admin/login/"):
            body = client.get(url, follow=True).content.decode()
            assert '<link rel="icon" href="/static/img/favicon.svg"' in body, url
