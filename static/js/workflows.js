/* Chaosplane portal: the live parts of the schedules and workflows pages. Plain JavaScript, no
 * dependencies; each part starts only when its page has the element it works on, and every page
 * works without it (the server renders the same content once).
 *
 * 1. A workflow run's page ([data-workflow-run-live]): asks the live endpoint every second and
 *    updates each node ([data-path]) in place, until the run has ended.
 * 2. The schedule form ([data-cron-preview]): the cron in words and its next fire times, as you type.
 * 3. The step-by-step workflow form ([data-steps]): an "Add a step" button.
 */
(function () {
  "use strict";

  var STATES = ["pending", "running", "succeeded", "failed", "aborted", "skipped", "stopped", "finished",
    "refused", "injecting", "recovering", "pausing", "paused"];

  function setState(element, phase) {
    STATES.forEach(function (state) { element.classList.remove("state-" + state); });
    element.classList.add("state-" + phase);
  }

  /* "2026-01-31T10:00:05.123+00:00" -> "10:00:05"; every time the server sends is UTC. */
  function clock(iso) { return iso ? iso.substring(11, 19) : ""; }
  function stamp(iso) { return iso ? iso.substring(0, 10) + " " + iso.substring(11, 19) : ""; }

  function setTime(holder, iso, format) {
    if (!holder) { return; }
    holder.hidden = !iso;
    var time = holder.querySelector("time");
    if (iso && time) {
      time.setAttribute("datetime", iso);
      time.textContent = format(iso);
    }
  }

  // 1. A workflow run, live ----------------------------------------------------------------------

  function updateNode(element, node) {
    var box = element.querySelector(":scope > .wf-box");
    if (!box) { return; }
    setState(element, node.phase);
    box.querySelector(".wf-phase").textContent = node.phase;
    setTime(box.querySelector(".wf-started"), node.started_at, clock);
    setTime(box.querySelector(".wf-until"), node.finished_at ? null : node.deadline, clock);
    setTime(box.querySelector(".wf-finished"), node.finished_at, clock);
    var message = box.querySelector(".wf-message");
    message.textContent = node.message || "";
    message.hidden = !node.message;

    var runs = box.querySelector(".wf-runs");
    runs.replaceChildren.apply(runs, node.runs.map(function (run) {
      var item = document.createElement("li");
      var link = document.createElement("a");
      link.href = run.url;
      link.textContent = "run " + run.id.substring(0, 8);
      var phase = document.createElement("span");
      phase.className = "wf-chip state-" + run.phase;
      phase.textContent = run.phase;
      item.append(link, " ", phase);
      return item;
    }));
    runs.hidden = node.runs.length === 0;

    var checks = box.querySelector(".wf-checks");
    checks.replaceChildren.apply(checks, node.checks.map(function (check) {
      var line = document.createElement("span");
      line.textContent = "check " + check.phase + ": " + check.probes + " probes, " + check.failures +
        " failing in a row";
      return line;
    }));
    checks.hidden = node.checks.length === 0;
  }

  function followWorkflowRun(root) {
    var url = root.getAttribute("data-workflow-run-live");
    var elements = {};
    root.querySelectorAll("[data-path]").forEach(function (element) {
      elements[element.getAttribute("data-path")] = element;
    });

    function ended(state) {
      root.setAttribute("data-ended", "true");
      root.querySelectorAll("[data-hide-when-ended]").forEach(function (e) { e.hidden = true; });
      var live = root.querySelector("[data-live-note]");
      if (live) { live.hidden = true; }
      var note = root.querySelector("[data-ended-note]");
      if (note && state) { note.hidden = false; }
    }

    function apply(state) {
      state.nodes.forEach(function (node) {
        if (elements[node.path]) { updateNode(elements[node.path], node); }
      });
      var phase = root.querySelector("[data-wr-phase]");
      if (phase) {
        setState(phase, state.phase);
        phase.textContent = state.phase;
      }
      var message = root.querySelector("[data-wr-message]");
      if (message) { message.textContent = state.message || "—"; }
      var finished = root.querySelector("[data-wr-finished]");
      if (finished && state.finished_at) {
        var time = document.createElement("time");
        time.setAttribute("datetime", state.finished_at);
        time.textContent = stamp(state.finished_at);
        finished.replaceChildren(time);
      }
      if (state.ended) { ended(state); }
    }

    function poll() {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
        .then(function (response) {
          if (response.status === 404 || response.status === 403) { throw new Error("gone"); }
          return response.ok ? response.json() : null;
        })
        .then(function (state) {
          if (state) { apply(state); }
          if (!state || !state.ended) { window.setTimeout(poll, 1000); }
        })
        .catch(function (error) {
          if (error.message !== "gone") { window.setTimeout(poll, 3000); }
        });
    }

    if (root.getAttribute("data-ended") !== "true") { window.setTimeout(poll, 1000); }
  }

  // 2. The cron preview ----------------------------------------------------------------------------

  function previewCron(box) {
    var form = box.closest("form");
    var cron = form.querySelector("[name=cron]");
    var zone = form.querySelector("[name=time_zone]");
    var words = box.querySelector(".cron-words");
    var error = box.querySelector(".cron-error");
    var list = box.querySelector(".cron-next");
    var timer = null;
    var asked = 0;

    function show(body) {
      var zoneText = zone && zone.value && zone.value !== "UTC" ? " (" + zone.value + ")" : "";
      words.replaceChildren();
      if (body.description) {
        var strong = document.createElement("strong");
        strong.textContent = body.description;
        words.append("Fires ", strong, zoneText + ".");
      }
      var problems = body.errors ? [].concat(body.errors.cron || [], body.errors.time_zone || []) : [];
      error.textContent = problems.join(" ");
      error.hidden = problems.length === 0;
      list.replaceChildren.apply(list, (body.next || []).map(function (iso, index) {
        var item = document.createElement("li");
        var time = document.createElement("time");
        time.setAttribute("datetime", iso);
        time.textContent = body.next_text[index];
        item.append(time);
        return item;
      }));
      list.hidden = !(body.next || []).length;
    }

    function ask() {
      var expression = cron.value.trim();
      if (!expression) {
        show({});
        return;
      }
      var number = ++asked;
      var query = new URLSearchParams({ cron: expression, time_zone: zone ? zone.value.trim() : "UTC" });
      fetch(box.getAttribute("data-url") + "?" + query.toString(), { credentials: "same-origin" })
        .then(function (response) { return response.json(); })
        .then(function (body) { if (number === asked) { show(body); } })
        .catch(function () { /* offline: the server checks the cron on submit anyway */ });
    }

    function soon() {
      window.clearTimeout(timer);
      timer = window.setTimeout(ask, 200);
    }

    cron.addEventListener("input", soon);
    if (zone) {
      zone.addEventListener("input", soon);
      zone.addEventListener("change", soon);
    }
  }

  // 3. Adding steps ----------------------------------------------------------------------------------

  function addSteps(list) {
    var form = list.closest("form");
    var prefix = list.getAttribute("data-prefix");
    var total = form.querySelector("[name=" + prefix + "-TOTAL_FORMS]");
    var template = form.querySelector("template[data-step-template]");
    var button = form.querySelector("[data-add-step]");
    if (!total || !template || !button) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      var index = parseInt(total.value, 10);
      var html = template.innerHTML.replace(/__prefix__/g, String(index));
      list.insertAdjacentHTML("beforeend", html);
      total.value = String(index + 1);
      var added = list.lastElementChild.querySelector("select, input");
      if (added) { added.focus(); }
    });
  }

  function start() {
    document.querySelectorAll("[data-workflow-run-live]").forEach(followWorkflowRun);
    document.querySelectorAll("[data-cron-preview]").forEach(previewCron);
    document.querySelectorAll("[data-steps]").forEach(addSteps);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
