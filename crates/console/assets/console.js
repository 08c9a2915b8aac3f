// strata console: the only script (served from /assets, as the Content-Security-Policy requires). The pages work
// without it; with it, every element marked data-refresh is replaced every 5 seconds by the same element of a fresh
// copy of the page, unless the tab is hidden or the reader is selecting text.
(function () {
  "use strict";
  var EVERY_MS = 5000;
  function refresh() {
    if (document.hidden || String(window.getSelection()).length > 0) return;
    var marked = document.querySelectorAll("[data-refresh][id]");
    if (marked.length === 0) return;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) {
        if (text === null) return;
        var fresh = new DOMParser().parseFromString(text, "text/html");
        marked.forEach(function (el) {
          var next = fresh.getElementById(el.id);
          if (next) el.replaceWith(document.importNode(next, true));
        });
      })
      .catch(function () { /* the next round tries again */ });
  }
  window.setInterval(refresh, EVERY_MS);
})();
