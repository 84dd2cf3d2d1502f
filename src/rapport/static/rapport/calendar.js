/* Calendar: drag an item to another slot to reschedule; click an empty slot to plan a meeting. */
(function () {
  "use strict";
  var cal = document.getElementById("calendar");
  if (!cal) return;
  var message = document.getElementById("cal-message");
  var csrf = (JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"]) || "";
  function say(text) { message.textContent = text; message.hidden = !text; message.classList.toggle("bad", !!text); }
  function onEnd(evt) {
    if (evt.from === evt.to) return;
    var item = evt.item;
    var at = evt.to.dataset.at;
    if (evt.to.dataset.keepTime) {
      var time = (item.querySelector(".ctime") || {}).textContent || "09:00";
      at = at.slice(0, 11) + time.trim();
    }
    var body = new URLSearchParams({ kind: item.dataset.kind, id: item.dataset.id, at: at });
    fetch(cal.dataset.moveUrl, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-CSRFToken": csrf, "Accept": "application/json" }
    }).then(function (r) { return r.json(); }).then(function (a) {
      if (a.ok) {
        say("");
        var t = item.querySelector(".ctime");
        if (t && !evt.to.dataset.keepTime) t.textContent = at.slice(11, 16);
      } else {
        evt.from.insertBefore(item, evt.from.children[evt.oldIndex] || null);
        say(a.message || "");
      }
    });
  }
  cal.querySelectorAll(".slot").forEach(function (slot) {
    Sortable.create(slot, { group: "calendar", forceFallback: true, fallbackTolerance: 3, animation: 100, draggable: ".citem", onEnd: onEnd });
    slot.addEventListener("click", function (e) {
      if (e.target !== slot) return;
      var dialog = document.getElementById("plan-dialog");
      document.getElementById("plan-at").value = slot.dataset.at;
      dialog.showModal();
      document.getElementById("plan-subject").focus();
    });
  });
  var planDialog = document.getElementById("plan-dialog");
  planDialog.querySelector("[data-cancel]").addEventListener("click", function () { planDialog.close(); });
})();
