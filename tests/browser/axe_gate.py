"""The accessibility gate: axe-core (from the axe-playwright-python wheel, read
from disk, never fetched) runs in every document a watched browser shows and
reports every violation of impact serious or critical (WCAG 2.2 A and AA rules,
and axe's best practices of those impacts) through the same binding as the other
page gates (gates.QUALITY_BINDING), so any such violation on any page, the
Django admin's included, fails the journey.

It runs at three moments, the last two synchronously (the test waits for it):

- in the background, once the page is loaded and again after each change to it
  (an htmx swap, a live refresh);
- before the page is left (`watch_leaving`): the document checks itself on
  `beforeunload` while the context's route holds the navigation's request, so
  a journey that moves on before the background run is checked all the same;
- at the end of the test body, on every open page (`AXE_NOW_JS`, from the
  gate's final check).

Runs are chained, never concurrent (axe refuses a second run while one is on).
Axe's CSSOM preload is off: it copies @imported style sheets into <style>
elements, which the portal's Content-Security-Policy refuses (a console error
that is axe's, not the page's); only css-orientation-lock needs it."""

from __future__ import annotations

from contextlib import suppress
from importlib.resources import files

from playwright.sync_api import BrowserContext, ConsoleMessage, Error, Route

from tests.browser.gates import QUALITY_BINDING

AXE_SOURCE = (files("axe_playwright_python") / "axe.min.js").read_text(encoding="utf-8")

# Written to the console by a document that finished its run on being left.
LEFT_MARK = "axe checked on leaving: "

AXE_RUN_JS = """
(() => {
  if (window !== window.top || location.protocol === "about:") return;
  const reported = new Set();
  let chain = Promise.resolve([]);
  let pending = null;
  const once = () => {
    if (!window.axe || !document.body) return Promise.resolve([]);
    const options = {resultTypes: ["violations"], preload: false};
    return window.axe.run(document, options).then((results) => {
      const found = [];
      for (const v of results.violations) {
        if (v.impact !== "serious" && v.impact !== "critical") continue;
        for (const node of v.nodes) {
          found.push(`axe ${v.impact} ${v.id}: ${v.help} at ${node.target.join(" ")}`);
        }
      }
      const fresh = found.filter((problem) => !reported.has(problem));
      fresh.forEach((problem) => reported.add(problem));
      if (fresh.length) window.BINDING(location.href, fresh);
      window.__axeRuns = (window.__axeRuns || 0) + 1;
      return found;
    });
  };
  // Every serious or critical violation the page has now (a promise).
  const now = () => {
    chain = chain.catch(() => []).then(once);
    return chain;
  };
  const soon = () => {
    clearTimeout(pending);
    pending = setTimeout(() => now().catch(() => []), 250);
  };
  window.__axeNow = now;
  addEventListener("beforeunload", () => {
    now().catch(() => []).then(() => console.debug("LEFT_MARK" + location.href));
  });
  const start = () => {
    soon();
    new MutationObserver(soon).observe(document.documentElement, {
      subtree: true, childList: true, attributes: true, characterData: true,
    });
  };
  if (document.readyState === "complete") start();
  else addEventListener("load", start, { once: true });
})();
""".replace("BINDING", QUALITY_BINDING).replace("LEFT_MARK", LEFT_MARK)

# Run axe now and wait for it; every serious or critical violation of the page.
AXE_NOW_JS = "() => (window.__axeNow ? window.__axeNow() : [])"

# A document whose run has not finished by then is let go unchecked (never seen:
# a run takes well under a second).
LEAVE_WAIT_MS = 5_000


def watch_leaving(context: BrowserContext) -> None:
    """Before a top-level navigation leaves a document, wait until axe has
    checked it (its violations reach the test through the binding).

    The page starts that run itself on `beforeunload` and writes LEFT_MARK when
    done; the context's route holds the navigation's request until then. (The
    route cannot evaluate in the page: Playwright holds evaluations while a
    navigation is pending.)"""
    done: set[str] = set()

    def on_console(message: ConsoleMessage) -> None:
        if message.text.startswith(LEFT_MARK):
            done.add(message.text.removeprefix(LEFT_MARK))

    def is_mark(url: str):
        return lambda message: message.text == LEFT_MARK + url

    def hold(route: Route) -> None:
        request = route.request
        try:
            frame = request.frame if request.is_navigation_request() else None
        except Error:
            frame = None  # a request no frame made (a popup's first)
        if frame is not None and frame.parent_frame is None and frame.url.startswith("http"):
            leaving = frame.url
            if leaving not in done:
                with suppress(Error):
                    context.wait_for_event("console", is_mark(leaving), timeout=LEAVE_WAIT_MS)
            done.discard(leaving)
        route.fallback()

    context.on("console", on_console)
    context.route("**/*", hold)
