// Live regions: parts of a page that refresh themselves without disturbing the
// person using the page. An htmx extension ("live"), loaded on every page.
//
// How a page opts in (see README, "Live regions"):
//   <div id="live" hx-ext="live" data-live-noun="VIN"> ... </div>
// with the include connections/web/live_poller.html inside it, which adds the
// poller (hx-get ... hx-trigger="every Ns" hx-swap="live" hx-target="#live").
//
// The swap ("live") keeps every element of the region that did not change:
// - an element with an id and a data-key is kept as it is when the answer has
//   the same id with the same key (the server sends a bare placeholder for rows
//   the browser already has: see the Live-Keys header below); replaced otherwise;
// - an element with an id and no data-key is a container: its attributes are
//   updated and its children merged the same way;
// - anything else (text, elements without id) is replaced.
// Nothing that stays is moved, so focus, caret, scroll position, open menus and
// ticked boxes survive. When the focused element itself was replaced, focus
// moves to its counterpart in the new version (same id, or the same position
// among the focusable elements of the nearest replaced ancestor with an id).
// Ticked boxes with an id keep their state across a replacement.
//
// Each request a live region makes carries the header Live-Keys: "id=key ..."
// of its keyed elements, so the server renders only what the browser lacks.
//
// After a refresh from the poller, one polite announcement sums up what
// changed: "3 VINs changed: 2 Connected, 1 Needs action" (each replaced element's
// data-live-state; the region's data-live-noun), in the page's one
// <p id="live-status" aria-live="polite"> in base.html (never one per row).
(function () {
  "use strict";

  const FOCUSABLE = "a[href], button, input, select, textarea, summary, [tabindex]";

  function keysOf(region) {
    const keys = [];
    for (const element of region.querySelectorAll("[id][data-key]")) {
      keys.push(element.id + "=" + element.dataset.key);
    }
    return keys.join(" ");
  }

  function focusPath(region) {
    const active = document.activeElement;
    if (!active || active === document.body || !region.contains(active)) return null;
    const anchor = active.closest("[id]");
    const within = anchor && region.contains(anchor) ? anchor : region;
    return {
      element: active,
      id: active.id,
      anchorId: within.id,
      index: Array.from(within.querySelectorAll(FOCUSABLE)).indexOf(active),
      start: "selectionStart" in active ? active.selectionStart : null,
      end: "selectionEnd" in active ? active.selectionEnd : null,
    };
  }

  function restoreFocus(path) {
    if (!path || document.contains(path.element)) return;
    let next = path.id ? document.getElementById(path.id) : null;
    if (!next && path.anchorId) {
      const anchor = document.getElementById(path.anchorId);
      const candidates = anchor ? anchor.querySelectorAll(FOCUSABLE) : [];
      next = candidates[Math.min(path.index, candidates.length - 1)] || anchor;
    }
    if (!next) return;
    if (!next.matches(FOCUSABLE)) next.setAttribute("tabindex", "-1");
    next.focus({ preventScroll: true });
    if (path.start !== null && "setSelectionRange" in next) {
      try {
        next.setSelectionRange(path.start, path.end);
      } catch (error) {
        // not a text field: nothing to restore
      }
    }
  }

  function carryTicks(from, to) {
    for (const box of from.querySelectorAll("input[type=checkbox][id]")) {
      const twin = to.querySelector("#" + CSS.escape(box.id));
      if (twin) twin.checked = box.checked;
    }
  }

  function syncAttributes(from, to) {
    for (const attribute of Array.from(to.attributes)) {
      if (!from.hasAttribute(attribute.name)) to.removeAttribute(attribute.name);
    }
    for (const attribute of Array.from(from.attributes)) {
      if (to.getAttribute(attribute.name) !== attribute.value) {
        to.setAttribute(attribute.name, attribute.value);
      }
    }
  }

  // Merge `fresh`'s children into `current`; return what was inserted.
  function merge(current, fresh, inserted) {
    const existing = new Map();
    for (const child of current.children) if (child.id) existing.set(child.id, child);
    const wanted = [];
    for (const node of Array.from(fresh.childNodes)) {
      const old = node.nodeType === Node.ELEMENT_NODE && node.id ? existing.get(node.id) : null;
      if (old && old.tagName === node.tagName) {
        if (node.hasAttribute("data-key")) {
          if (old.dataset.key === node.dataset.key) {
            wanted.push(old);
            continue;
          }
        } else {
          syncAttributes(node, old);
          merge(old, node, inserted);
          wanted.push(old);
          continue;
        }
      }
      if (node.nodeType === Node.ELEMENT_NODE && node.hasAttribute("data-live-keep")) {
        // The server thought we had it; we do not: ask again without keys.
        inserted.stale = true;
        continue;
      }
      if (old) carryTicks(old, node);
      wanted.push(node);
      if (node.nodeType === Node.ELEMENT_NODE) inserted.push(node);
    }
    const keep = new Set(wanted);
    for (const node of Array.from(current.childNodes)) if (!keep.has(node)) node.remove();
    wanted.forEach(function (node, position) {
      const there = current.childNodes[position];
      if (there !== node) current.insertBefore(node, there || null);
    });
  }

  function announce(region, inserted) {
    const status = document.getElementById("live-status");
    const noun = region.dataset.liveNoun;
    if (!status || !noun) return;
    const states = new Map();
    for (const element of inserted) {
      for (const row of [element, ...element.querySelectorAll("[data-live-state]")]) {
        const state = row.dataset ? row.dataset.liveState : "";
        if (state) states.set(state, (states.get(state) || 0) + 1);
      }
    }
    const total = Array.from(states.values()).reduce((a, b) => a + b, 0);
    if (!total) return;
    const parts = Array.from(states, ([state, n]) => n + " " + state);
    status.textContent = total + " " + noun + (total === 1 ? "" : "s") + " changed: " + parts.join(", ");
  }

  htmx.defineExtension("live", {
    onEvent: function (name, event) {
      if (name !== "htmx:configRequest") return;
      const target = event.detail.target;
      const region = target && target.closest ? target.closest("[hx-ext~=live]") : null;
      if (region && !region.hasAttribute("data-live-fresh")) {
        event.detail.headers["Live-Keys"] = keysOf(region);
      }
      if (region) {
        region.removeAttribute("data-live-fresh");
        // A poll's changes are announced; the answer to the user's own action
        // (a filter) is not: its result is in the page where they look.
        const poll = event.detail.elt && event.detail.elt.hasAttribute("data-live-poller");
        region.dataset.liveLastRequester = poll ? "poll" : "user";
      }
    },
    isInlineSwap: function (style) {
      return style === "live";
    },
    handleSwap: function (style, target, fragment) {
      if (style !== "live") return false;
      let fresh = fragment.querySelector ? fragment.querySelector("#" + CSS.escape(target.id)) : null;
      if (!fresh) {
        // The answer is the region's content: wrap it so it merges the same way.
        fresh = document.createElement(target.tagName);
        fresh.append(...Array.from(fragment.childNodes));
        for (const attribute of Array.from(target.attributes)) fresh.setAttribute(attribute.name, attribute.value);
      }
      const path = focusPath(target);
      const inserted = [];
      const requester = target.dataset.liveLastRequester;
      syncAttributes(fresh, target);
      merge(target, fresh, inserted);
      restoreFocus(path);
      if (inserted.stale) {
        target.setAttribute("data-live-fresh", "");
        const poller = target.querySelector("[data-live-poller]");
        if (poller) {
          htmx.ajax("GET", poller.getAttribute("hx-get"), { source: poller, target: target, swap: "live" });
        }
      }
      if (requester === "poll") announce(target, inserted);
      return inserted;
    },
  });

})();
