/* Chaosplane portal: a run's page follows the run while it is active. Plain JavaScript, no libraries.
 *
 * The page is complete without this script. With it, the page asks its live endpoint
 * (data-rn-live, experiments:run-live) every second; the answer carries the page's live parts
 * (phase and facts, buttons, timeline, targets, events) rendered by the server with the page's own
 * templates, and each part that changed replaces its [data-rn-part] box in place. Once the run has
 * ended (the answer says `ended`) the parts are final and the polling stops. A hidden tab polls less
 * often; an answer of 403 or 404 (signed out, access removed) stops it too.
 */
(function () {
  "use strict";

  var INTERVAL = 1000;
  var HIDDEN_INTERVAL = 5000;
  var RETRY_INTERVAL = 3000;

  function follow(root) {
    var url = root.getAttribute("data-rn-live");
    var status = root.querySelector("[data-rn-live-status]");
    var shown = {};  // the last HTML put in each part
    var timer = null;

    function say(text) {
      if (status) { status.textContent = text; }
    }

    function stop(text) {
      root.setAttribute("data-rn-polling", "stopped");
      if (timer !== null) { window.clearTimeout(timer); timer = null; }
      say(text);
    }

    function later(delay) {
      timer = window.setTimeout(poll, document.hidden ? Math.max(delay, HIDDEN_INTERVAL) : delay);
    }

    function apply(state) {
      var html = state.html || {};
      Object.keys(html).forEach(function (name) {
        var box = root.querySelector('[data-rn-part="' + name + '"]');
        if (box && shown[name] !== html[name]) {
          box.innerHTML = html[name];
          shown[name] = html[name];
        }
      });
      root.setAttribute("data-rn-phase", state.phase);
      root.setAttribute("data-rn-ended", state.ended ? "true" : "false");
    }

    function poll() {
      timer = null;
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
        .then(function (response) {
          // Signed out: the login page answers (after a redirect) instead of the JSON.
          if (response.status === 403 || response.status === 404 || response.redirected) {
            var gone = new Error("gone");
            gone.status = response.redirected ? "signed out" : response.status;
            throw gone;
          }
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        })
        .then(function (state) {
          apply(state);
          root.setAttribute("data-rn-polls", String(Number(root.getAttribute("data-rn-polls") || "0") + 1));
          if (state.ended) {
            stop("This run has ended (" + state.phase + "): what is below is final.");
          } else {
            say("Following this run: it updates every second.");
            later(INTERVAL);
          }
        })
        .catch(function (error) {
          if (error.message === "gone") {
            stop("This run can no longer be followed (" + error.status + "): reload the page.");
          } else {
            say("Lost touch with the server; trying again…");
            later(RETRY_INTERVAL);
          }
        });
    }

    if (!url || root.getAttribute("data-rn-ended") === "true") {
      root.setAttribute("data-rn-polling", "stopped");
      return;
    }
    root.setAttribute("data-rn-polling", "on");
    say("Following this run: it updates every second.");
    later(INTERVAL);
  }

  function start() {
    document.querySelectorAll("[data-rn-live]").forEach(follow);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
