// Wardgate console: the little behaviour htmx does not cover. No inline script anywhere (CSP).
//
// Live lists: an element with data-sse="<url>" opens an EventSource on that URL; every event
// triggers "refresh" on the element named by data-sse-target, which re-fetches its rows
// from the server (hx-trigger="refresh"), so the HTML is always rendered (and escaped) by the
// server. Events arriving while a refresh is in flight are coalesced into one more refresh.
(function () {
  "use strict";

  function live(el) {
    var target = document.querySelector(el.getAttribute("data-sse-target"));
    if (!target || !window.EventSource) { return; }
    var source = new EventSource(el.getAttribute("data-sse"));
    var busy = false, again = false;
    function refresh() {
      if (busy) { again = true; return; }
      busy = true;
      window.htmx.trigger(target, "refresh");
    }
    var count = document.querySelector(el.getAttribute("data-sse-count"));
    target.addEventListener("htmx:afterRequest", function () {
      busy = false;
      if (again) { again = false; refresh(); }
    });
    // The live count (a polite status region): the rows carry the total in data-total.
    target.addEventListener("htmx:afterSwap", function () {
      var total = target.querySelector("[data-total]");
      if (count && total) {
        count.textContent = total.getAttribute("data-total") + " " + count.getAttribute("data-suffix");
      }
    });
    source.addEventListener("changed", refresh);
    source.addEventListener("open", function () { el.setAttribute("data-live", "on"); });
    source.addEventListener("error", function () { el.setAttribute("data-live", "reconnecting"); });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  function start() {
    document.querySelectorAll("[data-sse]").forEach(live);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }

  // An htmx request that failed (403 CSRF, 409 already decided): show the server's message
  // (an escaped HTML fragment) in the element named by hx-target's data-errors, or an alert.
  document.addEventListener("htmx:responseError", function (event) {
    var box = document.getElementById("errors");
    if (box && event.detail.xhr) {
      box.innerHTML = event.detail.xhr.responseText;
      box.focus();
    }
  });
})();
