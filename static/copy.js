// Copy buttons: <button type="button" class="copy" data-copy-target="ID" hidden>Copy</button>
// copies the text of the element with id ID. The buttons ship hidden so that nothing
// useless shows without JavaScript; this script reveals them. No dependencies.
(function () {
  "use strict";

  // One polite live region so screen readers hear the result.
  var status = document.createElement("p");
  status.className = "visually-hidden";
  status.setAttribute("role", "status");
  document.body.appendChild(status);

  function selectText(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  // Without the Clipboard API (older browsers, or plain HTTP away from localhost): select the
  // text, try the legacy copy command, and otherwise leave the selection for Ctrl+C.
  function fallback(element) {
    selectText(element);
    try {
      return document.execCommand("copy");
    } catch (e) {
      return false;
    }
  }

  function report(button, copied) {
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    button.textContent = copied ? "Copied" : "Selected";
    status.textContent = copied ? "Copied to the clipboard." : "Text selected: press Ctrl+C to copy.";
    clearTimeout(button.copyTimer);
    button.copyTimer = setTimeout(function () {
      button.textContent = label;
      status.textContent = "";
    }, 2000);
  }

  document.querySelectorAll("button.copy[data-copy-target]").forEach(function (button) {
    var target = document.getElementById(button.getAttribute("data-copy-target"));
    if (!target) {
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      var text = target.textContent.trim();
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(
          function () { report(button, true); },
          function () { report(button, fallback(target)); }
        );
      } else {
        report(button, fallback(target));
      }
    });
  });
})();
