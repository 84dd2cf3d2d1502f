/* Kanban board: drag a card to a stage, or onto Won / Lost.
   The server decides (strict pipelines, entry fields, stale moves); a refused move snaps
   back with the reason, missing entry fields are asked for in a dialog. */
(function () {
  "use strict";
  var board = document.getElementById("board");
  if (!board || typeof Sortable === "undefined") return;
  var message = document.getElementById("board-message");
  var reqDialog = document.getElementById("req-dialog");
  var loseDialog = document.getElementById("lose-dialog");
  var csrf = (JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"]) || "";

  function url(kind, id) {
    var query = board.dataset.query;
    return board.dataset[kind + "Url"].replace("/0/", "/" + id + "/") + (query ? "?" + query : "");
  }
  function say(text, bad) {
    message.textContent = text;
    message.hidden = !text;
    message.classList.toggle("bad", !!bad);
  }
  function snapBack(evt) {
    var ref = evt.from.children[evt.oldIndex] || null;
    evt.from.insertBefore(evt.item, ref);
  }
  function updateColumns(columns) {
    Object.keys(columns || {}).forEach(function (stageId) {
      var col = board.querySelector('.column[data-stage="' + stageId + '"]');
      if (!col) return;
      col.querySelector(".col-count").textContent = columns[stageId].count;
      col.querySelector(".col-total").textContent = columns[stageId].total;
    });
  }
  function post(target, data) {
    var body = new URLSearchParams(data);
    return fetch(target, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrf, "Accept": "application/json", "HX-Request": "true" }
    }).then(function (r) {
      return r.json().catch(function () { return { ok: false, message: r.statusText }; });
    });
  }
  function settle(evt, answer, onNeedFields) {
    if (answer.ok) {
      say("");
      if (answer.card) {
        var holder = document.createElement("div");
        holder.innerHTML = answer.card.trim();
        evt.item.replaceWith(holder.firstElementChild);
      } else {
        evt.item.remove();
      }
      updateColumns(answer.columns);
      return;
    }
    if (answer.code === "stage_requirements" && onNeedFields) {
      onNeedFields(answer);
      return;
    }
    snapBack(evt);
    say(answer.message || "", true);
  }
  function move(evt, stageId, extra) {
    var card = evt.item;
    var data = Object.assign({ stage_id: stageId, version: card.dataset.version }, extra || {});
    post(url("move", card.dataset.deal), data).then(function (answer) {
      settle(evt, answer, function (a) { askFields(evt, stageId, a); });
    });
  }
  function askFields(evt, stageId, answer) {
    reqDialog.innerHTML = answer.dialog;
    var form = reqDialog.querySelector("form");
    var cancelled = true;
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var extra = Object.fromEntries(new FormData(form).entries());
      var card = evt.item;
      post(url("move", card.dataset.deal), Object.assign({ stage_id: stageId, version: card.dataset.version }, extra))
        .then(function (a) {
          if (!a.ok && a.code !== "stale" && a.code !== "refused") {
            form.querySelector(".req-error").textContent = a.message || "";
            return;
          }
          cancelled = false;
          reqDialog.close();
          settle(evt, a, null);
        });
    });
    form.querySelector("[data-cancel]").addEventListener("click", function () { reqDialog.close(); });
    reqDialog.addEventListener("close", function onClose() {
      reqDialog.removeEventListener("close", onClose);
      if (cancelled) { snapBack(evt); say(answer.message, true); }
    });
    reqDialog.showModal();
  }
  function lose(evt) {
    var form = document.getElementById("lose-form");
    form.reset();
    form.querySelector(".lose-error").textContent = "";
    var cancelled = true;
    function onSubmit(e) {
      e.preventDefault();
      var data = Object.fromEntries(new FormData(form).entries());
      data.version = evt.item.dataset.version;
      post(url("lose", evt.item.dataset.deal), data).then(function (a) {
        if (!a.ok && a.code === "refused" && !data.loss_reason_id) {
          form.querySelector(".lose-error").textContent = a.message || "";
          return;
        }
        cancelled = false;
        loseDialog.close();
        settle(evt, a, null);
      });
    }
    form.addEventListener("submit", onSubmit);
    form.querySelector("[data-cancel]").onclick = function () { loseDialog.close(); };
    loseDialog.addEventListener("close", function onClose() {
      loseDialog.removeEventListener("close", onClose);
      form.removeEventListener("submit", onSubmit);
      if (cancelled) snapBack(evt);
    });
    loseDialog.showModal();
  }
  function onEnd(evt) {
    var zone = evt.to.dataset.zone;
    if (zone === "won") {
      post(url("win", evt.item.dataset.deal), { version: evt.item.dataset.version })
        .then(function (a) { settle(evt, a, null); });
    } else if (zone === "lost") {
      lose(evt);
    } else if (evt.from !== evt.to) {
      move(evt, evt.to.dataset.stage);
    }
  }
  var lists = document.querySelectorAll("#board .cards, #dropzones .cards");
  lists.forEach(function (el) {
    var isZone = !!el.dataset.zone;
    Sortable.create(el, {
      group: { name: "deals", pull: !isZone, put: true },
      sort: !isZone,
      draggable: ".kcard",
      filter: ".more",
      preventOnFilter: false,
      forceFallback: true,
      fallbackTolerance: 3,
      animation: 120,
      onEnd: onEnd
    });
  });
})();
