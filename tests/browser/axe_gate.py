"""The accessibility gate: axe-core (from the axe-playwright-python wheel, read
from disk, never fetched) runs in every document a watched browser shows, once
the page is styled and again after each change to it (an htmx swap, a live
refresh), and reports every violation of impact serious or critical (WCAG 2.2 A
and AA rules, and axe's best practices of those impacts) through the same
binding as the other page gates (gates.QUALITY_BINDING), so any such violation
on any page fails the journey."""

from __future__ import annotations

from importlib.resources import files

from tests.browser.gates import QUALITY_BINDING

AXE_SOURCE = (files("axe_playwright_python") / "axe.min.js").read_text(encoding="utf-8")

AXE_RUN_JS = """
(() => {
  if (window !== window.top || location.protocol === "about:") return;
  const reported = new Set();
  let running = false, again = false, pending = null;
  const run = () => {
    if (!window.axe || !document.body) return;
    if (running) { again = true; return; }
    running = true;
    window.axe.run(document, {resultTypes: ["violations"]}).then((results) => {
      const fresh = [];
      for (const v of results.violations) {
        if (v.impact !== "serious" && v.impact !== "critical") continue;
        for (const node of v.nodes) {
          const problem = `axe ${v.impact} ${v.id}: ${v.help} at ${node.target.join(" ")}`;
          if (!reported.has(problem)) { reported.add(problem); fresh.push(problem); }
        }
      }
      if (fresh.length) window.BINDING(location.href, fresh);
    }).catch(() => {}).finally(() => {
      running = false;
      window.__axeRuns = (window.__axeRuns || 0) + 1;
      if (again) { again = false; soon(); }
    });
  };
  const soon = () => {
    clearTimeout(pending);
    pending = setTimeout(run, 250);
  };
  window.__axeNow = run;
  const start = () => {
    soon();
    new MutationObserver(soon).observe(document.documentElement, {
      subtree: true, childList: true, attributes: true, characterData: true,
    });
  };
  if (document.readyState === "complete") start();
  else addEventListener("load", start, { once: true });
})();
""".replace("BINDING", QUALITY_BINDING)
