"""Security headers: a Content-Security-Policy every page works under (no inline
script or style, no eval for htmx) and a Permissions-Policy."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# E-mail templates are read by mail programs, not browsers: no CSP applies, and
# most mail programs read only inline styles.
TEMPLATES = sorted(
    path
    for path in (ROOT / "templates").rglob("*.html")
    if path.relative_to(ROOT / "templates").parts[0] != "mail"
)

# What a policy without 'unsafe-inline' and 'unsafe-eval' refuses: inline
# <script> and <style>, on...= handlers, style= attributes, javascript: URLs,
# and the htmx features that evaluate code (hx-on, hx-vars, js: values, trigger filters).
FORBIDDEN = {
    "inline script": re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I),
    "style element": re.compile(r"<style\b", re.I),
    "event handler attribute": re.compile(r"\son[a-z]+\s*=", re.I),
    "style attribute": re.compile(r"\sstyle\s*=", re.I),
    "javascript: URL": re.compile(r"javascript:", re.I),
    "hx-on (eval)": re.compile(r"\s(hx|data-hx)-on", re.I),
    "hx-vars (eval)": re.compile(r"\s(hx|data-hx)-vars", re.I),
    "js: value (eval)": re.compile(r"""(hx-vals|hx-headers)=['"]\s*js:""", re.I),
    "trigger filter (eval)": re.compile(r"""hx-trigger=["'][^"']*\[""", re.I),
}


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_templates_need_no_unsafe_inline_or_eval(template):
    text = template.read_text()
    found = [
        f"{what}: {match.group(0)!r}"
        for what, pattern in FORBIDDEN.items()
        for match in pattern.finditer(text)
    ]
    assert found == []


def test_the_scan_catches_what_it_is_there_to_catch():
    bad = (
        '<script>alert(1)</script> <b onclick="x()"></b> <i style="color: red"></i> '
        '<div hx-trigger="every 2s [!document.hidden]"></div> <p hx-on:click="x"></p>'
    )
    caught = {what for what, pattern in FORBIDDEN.items() if pattern.search(bad)}
    assert {
        "inline script",
        "event handler attribute",
        "style attribute",
        "trigger filter (eval)",
        "hx-on (eval)",
    } <= caught
    assert not FORBIDDEN["inline script"].search('<script src="/static/js/portal.js" defer>')


class TestHeaders:
    def test_pages_carry_a_strict_content_security_policy(self, client, manager, fleet):
        for url in ("/accounts/login/", "/", f"/fleets/{fleet.slug}/"):
            if url != "/accounts/login/":
                client.force_login(manager)
            response = client.get(url)
            assert response.status_code == 200, url
            policy = response["Content-Security-Policy"]
            directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
            assert directives["default-src"] == "'self'"
            assert directives["script-src"] == "'self'"
            assert directives["style-src"] == "'self'"
            assert directives["frame-ancestors"] == "'none'"
            assert directives["object-src"] == "'none'"
            assert "unsafe" not in policy

    def test_htmx_is_told_to_add_no_style_and_evaluate_nothing(self, client, manager):
        client.force_login(manager)
        body = client.get("/").content.decode()
        assert '"includeIndicatorStyles": false' in body
        assert '"allowEval": false' in body

    def test_permissions_policy(self, client, db):
        header = client.get("/accounts/login/")["Permissions-Policy"]
        for feature in ("camera", "microphone", "geolocation", "payment", "usb"):
            assert f"{feature}=()" in header
