"""What every browser journey checks and keeps: logging in, the quality gates
(labelled fields, table headers, keyboard reach) and screenshots.

Plain functions taking a Playwright page, so a journey reads as a list of steps.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from tests.conftest import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
COMMITTED = ROOT / "docs" / "screenshots"

# Far more presses than any page of ours needs; a bound keeps a trap from hanging.
MAX_TABS = 80

# The accessible name a field gets from a <label>, aria-label or aria-labelledby
# (placeholders do not count: they vanish as soon as the user types).
_UNLABELLED_FIELDS_JS = """
() => {
  const skip = new Set(["hidden", "submit", "button", "reset", "image"]);
  const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length)
    && getComputedStyle(el).visibility !== "hidden";
  const text = (el) => (el ? el.textContent : "").trim();
  const named = (el) => {
    if ((el.getAttribute("aria-label") || "").trim()) return true;
    const ids = (el.getAttribute("aria-labelledby") || "").split(/\\s+/).filter(Boolean);
    if (ids.some((id) => text(document.getElementById(id)))) return true;
    if (Array.from(el.labels || []).some((label) => text(label))) return true;
    return !!(el.getAttribute("title") || "").trim();
  };
  return Array.from(document.querySelectorAll("input, select, textarea"))
    .filter((el) => !skip.has((el.getAttribute("type") || "").toLowerCase()))
    .filter(visible)
    .filter((el) => !named(el))
    .map((el) => el.outerHTML.slice(0, 200));
}
"""

_TABLE_PROBLEMS_JS = """
() => {
  const problems = [];
  document.querySelectorAll("table").forEach((table, i) => {
    const where = `table #${i + 1} (${(table.className || table.id || "no class")})`;
    const headers = table.querySelectorAll("thead th, th[scope=col]");
    if (!headers.length) problems.push(`${where} has no column header cells`);
    table.querySelectorAll("th").forEach((th) => {
      // A header whose content is a labelled control (a "select all" box) is named by it.
      const control = th.querySelector("[aria-label]");
      const name = th.textContent.trim() || (th.getAttribute("aria-label") || "").trim()
        || (control ? control.getAttribute("aria-label").trim() : "");
      if (!name) problems.push(`${where} has an empty header cell: ${th.outerHTML.slice(0, 120)}`);
    });
  });
  return problems;
}
"""

# Installed in every watched browser context (see BrowserProblems.watch_context),
# so the label and table gates run on every document a journey visits without
# the journey remembering to ask: once the page is parsed, and again after each
# change to the DOM (an htmx swap brings new rows and fields). New problems go to
# the test through the binding; `check()` returns them all, for a last look when
# the test body ends.
QUALITY_BINDING = "__reportPageQuality"
QUALITY_INIT_JS = (
    """
(() => {
  if (window !== window.top) return;
  const unlabelled = UNLABELLED;
  const tables = TABLES;
  const reported = new Set();
  const check = () => {
    if (!document.body) return [];
    const found = [
      ...unlabelled().map((field) => `field without a label: ${field}`),
      ...tables(),
    ];
    const fresh = found.filter((problem) => !reported.has(problem));
    fresh.forEach((problem) => reported.add(problem));
    if (fresh.length) window.BINDING(location.href, fresh);
    return found;
  };
  let pending = null;
  const soon = () => {
    if (pending === null) pending = setTimeout(() => { pending = null; check(); }, 50);
  };
  window.__pageQuality = { check };
  const start = () => {
    check();
    new MutationObserver(soon).observe(document.documentElement, {
      subtree: true, childList: true, attributes: true,
    });
  };
  // As soon as the document is parsed and styled (what is visible depends on
  // the CSS), so a page the journey leaves before its images load is checked too.
  document.addEventListener("DOMContentLoaded", () => {
    const styled = Array.from(document.querySelectorAll("link[rel~=stylesheet]"))
      .every((link) => link.sheet);
    if (styled) start();
    else addEventListener("load", start, { once: true });
  });
})();
""".replace("UNLABELLED", _UNLABELLED_FIELDS_JS.strip())
    .replace("TABLES", _TABLE_PROBLEMS_JS.strip())
    .replace("BINDING", QUALITY_BINDING)
)

# Every problem the page has now (none on a page the init script never ran in).
QUALITY_CHECK_NOW_JS = "() => (window.__pageQuality ? window.__pageQuality.check() : [])"

# Focus the document itself, so the next Tab starts from the top of the page.
_FOCUS_TOP_JS = """
() => {
  if (document.activeElement) document.activeElement.blur();
  window.__tabStart = null;
  const body = document.body;
  body.setAttribute("tabindex", "-1");
  body.focus();
  body.removeAttribute("tabindex");
  window.scrollTo(0, 0);
}
"""


# After each Tab: is the target focused, or has focus come back to where it started?
_FOCUS_STEP_JS = """
(target) => {
  const el = document.activeElement;
  if (el === target) return {hit: true, wrapped: false, focused: ""};
  const focused = el ? el.outerHTML.slice(0, 80) : "(none)";
  if (!window.__tabStart) {
    if (el && el !== document.body) window.__tabStart = el;
    return {hit: false, wrapped: false, focused};
  }
  return {hit: false, wrapped: el === window.__tabStart, focused};
}
"""


def login(page: Page, username: str, password: str = PASSWORD) -> None:
    """Log in through the real form (found by its labels) and land on the dashboard."""
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your fleets")


def logout(page: Page) -> None:
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))


def assert_fields_labelled(page: Page) -> None:
    """Every visible input, select and textarea has an accessible label."""
    unlabelled = page.evaluate(_UNLABELLED_FIELDS_JS)
    assert not unlabelled, f"fields without a label on {page.url}: {unlabelled}"


def assert_tables_have_headers(page: Page) -> None:
    """Every table has column header cells, and no header cell is empty."""
    problems = page.evaluate(_TABLE_PROBLEMS_JS)
    assert not problems, f"tables on {page.url}: {problems}"


def assert_keyboard_reachable(page: Page, selector: str | Locator) -> int:
    """Press Tab from the top of the page until `selector` (CSS, or a locator
    found by role or label) has focus; return the number of presses. Fails when
    it is not reached within MAX_TABS presses."""
    target = page.locator(selector).first if isinstance(selector, str) else selector.first
    expect(target).to_be_visible()
    page.evaluate(_FOCUS_TOP_JS)
    handle = target.element_handle()
    focused = []
    for presses in range(1, MAX_TABS + 1):
        page.keyboard.press("Tab")
        now = page.evaluate(_FOCUS_STEP_JS, handle)
        if now["hit"]:
            return presses
        if now["wrapped"]:
            break  # focus went round the whole page without reaching it
        focused.append(now["focused"])
    raise AssertionError(
        f"{selector!r} not reached by Tab on {page.url}; focus went through: {focused[:25]}"
    )


def choose_by_keyboard(page: Page, select: Locator, label: str) -> None:
    """Choose the option starting with `label` in the focused, closed `select`
    from the keyboard: its
    first letter, pressed until chosen (the browser's type-ahead goes round the
    options that start with it). One key at a time: a word typed on a slow
    machine can arrive as separate searches ("Retry" ending on "y…")."""
    for _ in range(select.locator("option").count()):
        page.keyboard.press(label[0])
        if select.evaluate("s => s.options[s.selectedIndex].text.trim()").startswith(label):
            return
    raise AssertionError(f"{label!r} not chosen by keyboard on {page.url}")


def press_on(page: Page, target: str | Locator, key: str) -> None:
    """Operate `target` from the keyboard alone: reach it by Tab, then press
    `key` (Enter follows a link or presses a button, Space ticks a box)."""
    assert_keyboard_reachable(page, target)
    page.keyboard.press(key)


def assert_page_quality(page: Page) -> None:
    """The gates that need no argument, now. The page fixture runs them on every
    page by itself (QUALITY_INIT_JS); this is for a journey that wants the
    answer at one step, with the page's URL in the message."""
    assert_fields_labelled(page)
    assert_tables_have_headers(page)


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page PNG as a test artifact; with UPDATE_SCREENSHOTS=1 also
    replace the committed copy in docs/screenshots/ that the README shows."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True, animations="disabled")
    if os.environ.get("UPDATE_SCREENSHOTS", "") in {"1", "true", "yes"}:
        COMMITTED.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, COMMITTED / path.name)
    return path
