/* Suggestions for the search box (progressive enhancement: without this file the box is a plain
   GET form). The WAI-ARIA combobox pattern with a listbox popup: typing asks
   /search/suggest for titles and authors; Down/Up move through them (focus stays in the box,
   aria-activedescendant names the option), Enter takes the highlighted one and searches, Escape
   closes the list (a second Escape clears the box), Tab leaves. Typing through an input method
   (pinyin → 汉字) is left alone until the characters are committed. */
(function () {
  "use strict";
  var DELAY = 150;

  function setup(input) {
    var url = input.getAttribute("data-suggest-url");
    var form = input.form;
    if (!url || !form || !window.fetch) return;
    var wrap = input.parentNode;
    var listId = input.id + "-suggestions";
    var list = document.createElement("ul");
    list.id = listId;
    list.className = "suggestions";
    list.setAttribute("role", "listbox");
    list.setAttribute("aria-label", input.getAttribute("data-suggest-label") || "");
    list.hidden = true;
    wrap.appendChild(list);
    // Announces how many suggestions there are (a polite live region, not role=status: the
    // page's own status messages stay the only ones); the options themselves are read as they
    // get the highlight.
    var status = document.createElement("div");
    status.className = "visually-hidden";
    status.setAttribute("aria-live", "polite");
    status.setAttribute("aria-atomic", "true");
    wrap.appendChild(status);

    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("aria-controls", listId);

    var items = [];
    var active = -1;
    var timer = null;
    var asked = 0; // only the answer to the latest question is shown
    var composing = false;
    var lastAsked = null;

    function open() {
      list.hidden = items.length === 0;
      input.setAttribute("aria-expanded", items.length ? "true" : "false");
    }

    function close() {
      list.hidden = true;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
      active = -1;
      mark();
    }

    function mark() {
      var options = list.children;
      for (var i = 0; i < options.length; i++) {
        var on = i === active;
        options[i].setAttribute("aria-selected", on ? "true" : "false");
        options[i].classList.toggle("is-active", on);
      }
      if (active >= 0 && options[active]) {
        input.setAttribute("aria-activedescendant", options[active].id);
        options[active].scrollIntoView({ block: "nearest" });
      } else {
        input.removeAttribute("aria-activedescendant");
      }
    }

    function show(found) {
      items = found;
      active = -1;
      list.textContent = "";
      found.forEach(function (s, i) {
        var li = document.createElement("li");
        li.id = listId + "-" + i;
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", "false");
        li.className = "suggestion suggestion-" + s.kind;
        var label = document.createElement("span");
        label.className = "suggestion-label";
        label.textContent = s.label;
        li.appendChild(label);
        if (s.detail) {
          var detail = document.createElement("span");
          detail.className = "suggestion-detail";
          detail.textContent = s.detail;
          li.appendChild(detail);
        }
        var kind = document.createElement("span");
        kind.className = "suggestion-kind";
        kind.textContent = s.kind_label;
        li.appendChild(kind);
        // mousedown, not click: the box must not lose focus (and close the list) first.
        li.addEventListener("mousedown", function (event) {
          event.preventDefault();
          choose(i);
        });
        list.appendChild(li);
      });
      var template = found.length
        ? input.getAttribute("data-suggest-count") || ""
        : input.getAttribute("data-suggest-none") || "";
      status.textContent = template.replace("{count}", String(found.length));
      open();
    }

    function ask() {
      var text = input.value;
      if (text === lastAsked) return;
      lastAsked = text;
      if (!text.trim() || text.length > 100) {
        items = [];
        status.textContent = "";
        close();
        return;
      }
      var ticket = ++asked;
      fetch(url + "?q=" + encodeURIComponent(text), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      })
        .then(function (response) {
          if (!response.ok) throw new Error(String(response.status));
          return response.json();
        })
        .then(function (body) {
          if (ticket !== asked || document.activeElement !== input) return;
          show(body.suggestions || []);
        })
        .catch(function () {
          if (ticket === asked) close(); // suggestions are a help; the search still works
        });
    }

    function choose(i) {
      var s = items[i];
      if (!s) return;
      input.value = s.value;
      close();
      if (form.requestSubmit) form.requestSubmit();
      else form.submit();
    }

    input.addEventListener("input", function () {
      if (composing) return;
      window.clearTimeout(timer);
      timer = window.setTimeout(ask, DELAY);
    });
    input.addEventListener("compositionstart", function () {
      composing = true;
    });
    input.addEventListener("compositionend", function () {
      composing = false;
      window.clearTimeout(timer);
      timer = window.setTimeout(ask, DELAY);
    });
    input.addEventListener("keydown", function (event) {
      // Keys that an input method is using (Enter commits the characters) are not ours.
      if (event.isComposing || composing || event.keyCode === 229) return;
      var expanded = !list.hidden;
      switch (event.key) {
        case "ArrowDown":
        case "Down":
          if (!items.length) return;
          event.preventDefault();
          if (!expanded) open();
          active = active + 1 >= items.length ? 0 : active + 1;
          mark();
          break;
        case "ArrowUp":
        case "Up":
          if (!items.length) return;
          event.preventDefault();
          if (!expanded) open();
          active = active <= 0 ? items.length - 1 : active - 1;
          mark();
          break;
        case "Enter":
          if (expanded && active >= 0) {
            event.preventDefault();
            choose(active);
          }
          break; // otherwise the form submits what was typed
        case "Escape":
        case "Esc":
          if (expanded) {
            event.preventDefault();
            close();
          } else if (input.value) {
            event.preventDefault();
            input.value = "";
            lastAsked = "";
            items = [];
          }
          break;
        case "Tab":
          close();
          break;
        default:
          break;
      }
    });
    input.addEventListener("blur", function () {
      window.clearTimeout(timer);
      close();
    });
    input.addEventListener("focus", function () {
      if (items.length && input.value === lastAsked) open();
    });
  }

  function init() {
    var boxes = document.querySelectorAll("input[data-suggest-url]");
    for (var i = 0; i < boxes.length; i++) setup(boxes[i]);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
