/* The copy button of an interactive-session (pycon) block copies only the code typed in it.
 *
 * A block such as
 *
 *     >>> x = 1
 *     >>> for i in range(2):
 *     ...     x += i
 *     >>> x
 *     2
 *
 * is copied as "x = 1\nfor i in range(2):\n    x += i\n\nx", ready to paste into a file or
 * an interpreter (the blank line closes the loop, as the interpreter needs). Material's copy
 * button copies the block's `innerText`, unless an element around the code carries a
 * `data-copy` attribute: then it copies that attribute instead.
 * Pygments marks every prompt (">>> " and "... ") as a `.gp` span at the start of its line, so
 * the typed lines are the lines that begin with one; outputs and tracebacks have none. Setting
 * `user-select: none` on the prompts would not help: `innerText` ignores it.
 *
 * Runs on every page load, also with instant navigation (Material's `document$`). No network.
 */
(function () {
  "use strict";

  var PROMPT = "\u0000"; // stands for a prompt while the lines are sorted; never in code

  /** The typed code of a Pygments-highlighted pycon `code` element, prompts removed. */
  function typedCode(code) {
    var clone = code.cloneNode(true);
    var prompts = clone.querySelectorAll(".gp");
    for (var i = 0; i < prompts.length; i++) {
      // Keep which prompt it was: "." for a continuation line, ">" for a new statement.
      prompts[i].textContent = PROMPT + prompts[i].textContent.trim().charAt(0);
    }
    var typed = [];
    var continued = false;
    var lines = clone.textContent.split("\n");
    for (var j = 0; j < lines.length; j++) {
      if (lines[j].charAt(0) !== PROMPT) {
        continue;
      }
      var isContinuation = lines[j].charAt(1) === ".";
      if (continued && !isContinuation) {
        typed.push(""); // ends the compound statement, as the interpreter needs when pasted
      }
      typed.push(lines[j].slice(2));
      continued = isContinuation;
    }
    return typed.join("\n");
  }

  /** Give each pycon block on the page a `data-copy` with its typed code. */
  function markPyconBlocks(root) {
    var blocks = root.querySelectorAll(".language-pycon code");
    for (var i = 0; i < blocks.length; i++) {
      var code = blocks[i];
      // A block whose first line is not a prompt is not a session; leave its copy alone.
      if (!code.querySelector(".gp")) {
        continue;
      }
      code.setAttribute("data-copy", typedCode(code));
    }
  }

  if (typeof document$ !== "undefined" && document$.subscribe) {
    document$.subscribe(function () { markPyconBlocks(document); });
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { markPyconBlocks(document); });
  } else {
    markPyconBlocks(document);
  }
})();
