// Environments: "Copy" buttons for the cluster manifest and the agent install command.
// Progressive: the buttons are hidden until this script runs; without it the text is still there to select.
(function () {
  "use strict";

  function selectText(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    return selection;
  }

  function legacyCopy(element) {
    // The fallback: select the text (so Ctrl+C / Cmd+C works whatever happens) and try the old command.
    selectText(element);
    try {
      return document.execCommand("copy");
    } catch (error) {
      return false;
    }
  }

  function say(button, text) {
    var status = button.parentElement.querySelector(".copy-status");
    if (status) status.textContent = text;
  }

  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var target = document.getElementById(button.dataset.copy);
    if (!target) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      var text = target.textContent;
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(
          function () { say(button, "Copied."); },
          function () {
            say(button, legacyCopy(target) ? "Copied." : "Selected: press Ctrl+C (⌘C) to copy.");
          }
        );
      } else {
        say(button, legacyCopy(target) ? "Copied." : "Selected: press Ctrl+C (⌘C) to copy.");
      }
    });
  });
})();
