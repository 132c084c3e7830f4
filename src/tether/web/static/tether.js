// tether's progressive JavaScript: every page works without it; it adds local times, live
// durations, the live log, live fragments, copy buttons, confirmations and a friendlier
// script editor.
(function () {
  "use strict";
  var LOG_POLL_MS = 1000, REFRESH_MS = 2000, RETRY_MS = 5000;

  function getJson(url) {
    return fetch(url, { credentials: "same-origin", headers: { accept: "application/json" } })
      .then(function (r) { if (!r.ok || r.redirected) throw new Error(r.status); return r.json(); });
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  // One format everywhere: the page writes UTC; the reader sees local time, UTC on hover.
  function localText(date) {
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) +
      " " + pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
  }

  function localize(root) {
    root.querySelectorAll("time[datetime]").forEach(function (element) {
      var date = new Date(element.getAttribute("datetime"));
      if (!isNaN(date.getTime())) element.textContent = localText(date);
    });
  }

  // The same words as tether.web.pages.times.span.
  function span(seconds) {
    seconds = Math.max(0, seconds);
    if (seconds < 10) return seconds.toFixed(1) + " s";
    var whole = Math.floor(seconds);
    if (whole < 60) return whole + " s";
    if (whole < 3600) return Math.floor(whole / 60) + " min " + pad(whole % 60) + " s";
    if (whole < 86400) return Math.floor(whole / 3600) + " h " + pad(Math.floor(whole % 3600 / 60)) + " min";
    return Math.floor(whole / 86400) + " d " + Math.floor(whole % 86400 / 3600) + " h";
  }

  // A running execution's duration counts on from what the server measured (data-elapsed),
  // by the browser's monotonic clock, so that a skewed clock on either side cannot show.
  var seen = new WeakMap();
  function tickDurations() {
    document.querySelectorAll("[data-elapsed]").forEach(function (element) {
      if (!seen.has(element)) seen.set(element, performance.now());
      var since = (performance.now() - seen.get(element)) / 1000;
      element.textContent = span(Number(element.dataset.elapsed) + since);
    });
  }
  localize(document);
  setInterval(tickDurations, 1000);

  // A time range typed in local time reaches the server with the browser's offset from UTC.
  document.querySelectorAll("input[data-timezone-offset]").forEach(function (input) {
    input.value = new Date().getTimezoneOffset();
  });

  function timeElement(iso, utc) {
    var element = document.createElement("time");
    element.setAttribute("datetime", iso);
    element.title = utc + " UTC";
    element.textContent = localText(new Date(iso));
    return element;
  }

  function cell(row, text, tag) {
    var td = row.insertCell(), inner = document.createElement(tag || "span");
    inner.textContent = text;
    td.appendChild(inner);
    return td;
  }

  // The log of a running execution: append new entries every second until it ends.
  document.querySelectorAll("[data-live-log]").forEach(function (table) {
    var offset = Number(table.dataset.offset), body = table.tBodies[0];
    var badge = document.getElementById("ex-status");
    function tick() {
      getJson(table.dataset.liveLog + "?offset=" + offset).then(function (data) {
        data.entries.forEach(function (entry) {
          var row = body.insertRow();
          var when = row.insertCell();
          when.className = "time";
          when.appendChild(timeElement(entry.time, entry.utc));
          cell(row, entry.message, "pre");
          var fields = Object.keys(entry.fields).length ? JSON.stringify(entry.fields) : "";
          cell(row, fields, "code");
          offset = entry.seq + 1;
        });
        if (badge && badge.textContent !== data.status) {
          badge.textContent = data.status;
          badge.className = "status s-" + data.status.toLowerCase();
        }
        // An ended execution's outputs and message are final: show them by reloading once.
        if (data.is_ended) { location.reload(); } else { setTimeout(tick, LOG_POLL_MS); }
      }).catch(function () { setTimeout(tick, RETRY_MS); });
    }
    setTimeout(tick, LOG_POLL_MS);
  });

  // A fragment kept live (execution lists and summaries, link states): its HTML is fetched
  // again every two seconds.
  document.querySelectorAll("[data-refresh]").forEach(function (box) {
    function tick() {
      fetch(box.dataset.refresh, { credentials: "same-origin" })
        .then(function (r) { if (!r.ok || r.redirected) throw new Error(r.status); return r.text(); })
        .then(function (html) {
          box.innerHTML = html;
          localize(box);
          tickDurations();
          setTimeout(tick, REFRESH_MS);
        })
        .catch(function () { setTimeout(tick, RETRY_MS); });
    }
    setTimeout(tick, REFRESH_MS);
  });

  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = document.querySelector(button.dataset.copy);
      var text = source.value !== undefined ? source.value : source.textContent;
      navigator.clipboard.writeText(text).then(function () { button.textContent = "Copied"; });
    });
  });

  // Forms and buttons with data-confirm ask before they act.
  document.querySelectorAll("[data-confirm]").forEach(function (element) {
    var kind = element.tagName === "FORM" ? "submit" : "click";
    element.addEventListener(kind, function (event) {
      if (!confirm(element.dataset.confirm)) event.preventDefault();
    });
  });

  // The script editor: Tab indents by four spaces; a compile error selects its line.
  document.querySelectorAll("textarea[data-editor]").forEach(function (area) {
    area.addEventListener("keydown", function (event) {
      if (event.key !== "Tab" || event.shiftKey) return;
      event.preventDefault();
      area.setRangeText("    ", area.selectionStart, area.selectionEnd, "end");
    });
    var line = Number(area.dataset.errorLine);
    if (line > 0) {
      var lines = area.value.split("\n"), start = 0;
      for (var i = 0; i < line - 1 && i < lines.length; i++) start += lines[i].length + 1;
      area.focus();
      area.setSelectionRange(start, start + (lines[line - 1] || "").length);
    }
  });
})();
