// The few behaviours htmx does not cover, kept out of the pages so the
// Content-Security-Policy can forbid inline scripts and eval. Each is switched
// on by a data- attribute; every page works without them, only less handily.
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    const target = event.target;
    if (!(target instanceof Element)) return;

    // <button data-copy="text">: copy the text, then say so on the button.
    const copy = target.closest("[data-copy]");
    if (copy) {
      navigator.clipboard.writeText(copy.dataset.copy).then(function () {
        copy.textContent = copy.dataset.copied || "Copied";
      });
      return;
    }

    // <button data-print>: the browser's print dialog.
    if (target.closest("[data-print]")) {
      window.print();
      return;
    }

    // <input readonly data-select-on-click>: select the whole value.
    if (target.matches("[data-select-on-click]")) {
      target.select();
      return;
    }

    // <input type=checkbox data-select-all="name">: tick or untick every box of
    // that name in the same form (form.elements also holds the boxes tied to it
    // by a form attribute, as in a table outside the form).
    if (target.matches("input[type=checkbox][data-select-all]") && target.form) {
      const name = target.dataset.selectAll;
      for (const box of target.form.elements) {
        if (box.type === "checkbox" && box.name === name) box.checked = target.checked;
      }
    }
  });

  // <form data-confirm="question">: ask before submitting.
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });

  // After an action the page says what happened in its message banner
  // (base.html): focus goes there, not to the top of the page, so a keyboard or
  // screen-reader user lands on the outcome (and Tab goes on from it). A field
  // the page focuses itself (autofocus) wins.
  document.addEventListener("DOMContentLoaded", function () {
    const banner = document.getElementById("messages");
    if (!banner || (document.activeElement && document.activeElement !== document.body)) return;
    banner.focus();
  });

  // Polling slows down while the tab is hidden: an element with
  // hx-trigger="every Ns" and data-hidden-every="M" polls every N seconds while
  // the page is seen, and at most every M seconds ("never": not at all) while it
  // is hidden. (htmx's
  // own trigger filters, [!document.hidden], would need eval.)
  const lastPoll = new Map();
  document.addEventListener("htmx:beforeRequest", function (event) {
    const element = event.detail.elt;
    if (!(element instanceof Element) || !element.hasAttribute("data-hidden-every")) return;
    const key = element.id || element;
    const now = Date.now();
    const hiddenEvery = element.getAttribute("data-hidden-every");
    const tooSoon = hiddenEvery === "never" || now - (lastPoll.get(key) || 0) < 1000 * Number(hiddenEvery);
    if (document.hidden && tooSoon) {
      event.preventDefault();
      return;
    }
    lastPoll.set(key, now);
  });
})();
