/* Load progress without reloading the page: polls GET /api/v1/catalog/uploads/{id} while the load
   runs and updates the status, the progress bar and the counts. Without scripts the page reloads
   itself instead (a <noscript> meta refresh), so this file only makes that smoother. When the
   load ends the page is reloaded once to show the server's final view (links, errors). */
(function () {
  "use strict";
  var box = document.querySelector(".load-progress[data-batch-url]");
  if (!box || box.getAttribute("data-running") !== "true") {
    return;
  }
  var url = box.getAttribute("data-batch-url");
  var statusEl = box.querySelector("[data-field=status]");
  var progress = box.querySelector("[data-field=progress]");
  var doneEl = box.querySelector("[data-field=bytes_done]");
  var percentEl = box.querySelector("[data-field=percent]");
  var format = new Intl.NumberFormat("en-US");
  var lastStatus = statusEl ? statusEl.getAttribute("data-status") : null;
  var failures = 0;

  function show(batch) {
    var total = batch.bytes_total || 0;
    var done = batch.status === "done" ? total : Math.min(batch.bytes_done || 0, total);
    var percent = total ? Math.floor((done * 100) / total) : 0;
    if (progress) {
      progress.max = total || 1;
      progress.value = done;
      progress.textContent = percent + "%";
    }
    if (doneEl) doneEl.textContent = format.format(done);
    if (percentEl) percentEl.textContent = "(" + percent + "%)";
    var counts = batch.counts || {};
    box.querySelectorAll("[data-count]").forEach(function (el) {
      el.textContent = format.format(counts[el.getAttribute("data-count")] || 0);
    });
    if (statusEl && batch.status !== lastStatus) {
      // Only a change of status is announced (the element is role=status), not every byte.
      var label = box.getAttribute("data-label-" + batch.status);
      if (label) statusEl.textContent = label;
      statusEl.className = "batch-status status-" + batch.status;
      lastStatus = batch.status;
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error(String(response.status));
        return response.json();
      })
      .then(function (batch) {
        failures = 0;
        show(batch);
        if (batch.status === "done" || batch.status === "failed") {
          window.location.reload();
        } else {
          window.setTimeout(poll, 1000);
        }
      })
      .catch(function () {
        // A lost connection: keep trying, more slowly; a reload then shows the server's view.
        failures += 1;
        if (failures > 5) {
          window.location.reload();
        } else {
          window.setTimeout(poll, 2000 * failures);
        }
      });
  }

  window.setTimeout(poll, 500);
})();
