/* Chaosplane portal: the live parts of the experiment form. Plain JavaScript, no dependencies; the form
 * works without it (its buttons ask the server for the same things, and the page comes back whole).
 *
 * 1. Tabs: Form and YAML.
 * 2. Choosing another kind or action asks the server for that part of the form ([data-xp-kind-part]);
 *    what was entered keeps its place by name.
 * 3. As you edit, the YAML tab shows the manifest of the form (or what must be fixed first), and the
 *    preview lists the targets the selector would pick in the chosen environment.
 * 4. "Add a row" adds a key = value row without a round trip.
 */
(function () {
  "use strict";

  function debounce(fn, ms) {
    var timer = null;
    return function () {
      clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  // 1. Tabs ------------------------------------------------------------------------------------------

  function setupTabs(editor) {
    var tablist = editor.querySelector("[data-xp-tabs]");
    if (!tablist) { return; }
    var tabs = Array.prototype.slice.call(tablist.querySelectorAll("[data-xp-tab]"));
    function show(name) {
      tabs.forEach(function (tab) {
        var on = tab.getAttribute("data-xp-tab") === name;
        tab.setAttribute("aria-selected", on ? "true" : "false");
        tab.tabIndex = on ? 0 : -1;
      });
      editor.querySelectorAll("[data-xp-panel]").forEach(function (panel) {
        panel.hidden = panel.getAttribute("data-xp-panel") !== name;
      });
    }
    tablist.hidden = false;
    tablist.addEventListener("click", function (event) {
      var tab = event.target.closest("[data-xp-tab]");
      if (tab) { show(tab.getAttribute("data-xp-tab")); }
    });
    tablist.addEventListener("keydown", function (event) {
      if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") { return; }
      var index = tabs.indexOf(document.activeElement);
      if (index < 0) { return; }
      var next = tabs[(index + (event.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
      show(next.getAttribute("data-xp-tab"));
      next.focus();
    });
    var hash = window.location.hash;
    show(editor.getAttribute("data-tab") === "yaml" || hash === "#yaml" || hash === "#import" ? "yaml" : "form");
  }

  // Errors by field name, as the endpoints send them: {"params.delay.latency": ["is required"]} --------

  function labelOf(form, name) {
    if (!name) { return ""; }
    var holder = null;
    form.querySelectorAll("[data-field]").forEach(function (node) {
      if (!holder && node.getAttribute("data-field") === name) { holder = node; }
    });
    var label = holder && holder.querySelector("label, legend, summary .xp-group-label");
    return label ? label.firstChild.textContent.trim() : name;
  }

  function errorList(form, errors) {
    var list = element("ul", "errorlist");
    Object.keys(errors).forEach(function (name) {
      errors[name].forEach(function (message) {
        var item = element("li");
        if (name) {
          var where = element("code", "", labelOf(form, name));
          where.title = name;
          item.append(where, ": ");
        }
        item.append(message);
        list.append(item);
      });
    });
    return list;
  }

  // 2-4. The form -----------------------------------------------------------------------------------

  function setupForm(form) {
    form.classList.add("xp-live");
    var part = form.querySelector("[data-xp-kind-part]");
    var environment = form.querySelector("[data-xp-environment]");
    var result = form.querySelector("[data-xp-preview-result]");
    var yaml = document.querySelector("[data-xp-yaml]");
    var yamlErrors = document.querySelector("[data-xp-yaml-errors]");
    var latest = { part: 0, yaml: 0, preview: 0 };

    function post(url, extra) {
      var data = new FormData(form);
      Object.keys(extra || {}).forEach(function (key) { data.append(key, extra[key]); });
      return fetch(url, {
        method: "POST", body: data, credentials: "same-origin", headers: { "X-Requested-With": "fetch" }
      });
    }

    function json(response) {
      return response.json().catch(function () {
        return { errors: { "": ["the server answered " + response.status] } };
      });
    }

    function updateYaml() {
      if (!yaml || !form.getAttribute("data-yaml-url")) { return; }
      var mine = ++latest.yaml;
      post(form.getAttribute("data-yaml-url")).then(json).then(function (body) {
        if (mine !== latest.yaml) { return; }
        if (typeof body.yaml === "string") {
          yaml.textContent = body.yaml;
          yaml.hidden = false;
          yamlErrors.replaceChildren();
        } else {
          yaml.hidden = true;
          yamlErrors.replaceChildren(element("p", "error", "The manifest needs these fixed first:"),
            errorList(form, body.errors || {}));
        }
      }).catch(function () { /* offline: the tab keeps what it shows */ });
    }

    function previewNodes(body) {
      if (body.errors) { return [errorList(form, body.errors)]; }
      var nodes = [];
      var summary = element("p");
      summary.append(element("strong", "", String(body.selected)), " of " + body.candidates + " candidate" +
        (body.candidates === 1 ? "" : "s") + " in " + body.environment + " would be picked" +
        (body.selected ? ":" : "."));
      nodes.push(summary);
      if (body.targets.length) {
        var list = element("ul", "xp-targets");
        body.targets.forEach(function (name) { list.append(element("li", "", name)); });
        nodes.push(list);
      }
      if (body.more) { nodes.push(element("p", "muted", "… and " + body.more + " more.")); }
      if (body.random) {
        nodes.push(element("p", "muted", "The mode picks at random: every run draws again, so this is one possible pick."));
      }
      return nodes;
    }

    function updatePreview() {
      if (!environment || !result) { return; }
      var mine = ++latest.preview;
      if (!environment.value) {
        result.replaceChildren(element("p", "muted", "Choose an environment to see which targets would be picked."));
        return;
      }
      result.setAttribute("aria-busy", "true");
      post(form.getAttribute("data-preview-url")).then(json).then(function (body) {
        if (mine !== latest.preview) { return; }
        result.removeAttribute("aria-busy");
        result.replaceChildren.apply(result, previewNodes(body));
      }).catch(function () { result.removeAttribute("aria-busy"); });
    }

    var laterYaml = debounce(updateYaml, 300);
    var laterPreview = debounce(updatePreview, 700);

    function switchPart() {
      var mine = ++latest.part;
      post(form.getAttribute("action"), { "switch": "1", partial: "1" }).then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.text();
      }).then(function (html) {
        if (mine !== latest.part) { return; }
        part.innerHTML = html;
        ["kind", "action"].forEach(function (name) {  // a manifest pasted in the YAML tab comes back here
          var back = document.querySelector('[data-xp-back="' + name + '"]');
          var chosen = form.querySelector('[name="' + name + '"]');
          if (back && chosen) { back.value = chosen.value; }
        });
        updateYaml();
        updatePreview();
      }).catch(function () {
        // Without an answer, let the server show the whole page for the new choice.
        var flag = element("input");
        flag.type = "hidden";
        flag.name = "switch";
        flag.value = "1";
        form.append(flag);
        form.submit();
      });
    }

    function addRow(button) {
      var rows = button.parentElement.querySelector(".xp-rows");
      var last = rows && rows.lastElementChild;
      if (!last) { return; }
      var row = last.cloneNode(true);
      row.querySelectorAll("input").forEach(function (input) { input.value = ""; });
      rows.append(row);
      row.querySelector("input").focus();
    }

    form.addEventListener("change", function (event) {
      var name = event.target.name;
      if (name === "kind" || name === "action") {
        switchPart();
      } else if (event.target === environment) {
        updatePreview();
      } else {
        laterYaml();
        laterPreview();
      }
    });
    form.addEventListener("input", function (event) {
      if (event.target.tagName === "SELECT") { return; }  // selects are handled on change
      laterYaml();
      laterPreview();
    });
    form.addEventListener("click", function (event) {
      var button = event.target.closest("button");
      if (!button) { return; }
      if (button.name === "add_row") {
        event.preventDefault();
        addRow(button);
      } else if (button.name === "preview") {
        event.preventDefault();
        updatePreview();
      }
    });
    if (environment && environment.value) { updatePreview(); }
  }

  document.querySelectorAll("[data-xp-editor]").forEach(setupTabs);
  document.querySelectorAll("form[data-xp-form]").forEach(setupForm);
}());
