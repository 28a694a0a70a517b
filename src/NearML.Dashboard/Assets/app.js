// NearML dashboard: applies each Server-Sent "status" event to the page in place (no reloads, no libraries).
// Every value from the server is set with textContent: worker ids and accounts are chosen by workers, never markup.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var $ = function (id) { return document.getElementById(id); };

  function fmtInt(n) { return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"); }
  function fmtNum(n, digits) { return n === null || n === undefined ? "–" : Number(n).toFixed(digits); }
  function fmtPct(n) { return n === null || n === undefined ? "–" : (100 * n).toFixed(2) + " %"; }
  function fmtBytes(n) {
    if (n === null || n === undefined) { return "–"; }
    var units = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0, v = Number(n);
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i === 0 ? v.toFixed(0) : v.toFixed(1)) + " " + units[i];
  }
  function fmtNear(yocto) {
    if (!yocto) { return "–"; }
    var v = BigInt(yocto), unit = 10n ** 24n, whole = v / unit, frac = (v % unit).toString().padStart(24, "0").slice(0, 6);
    return whole.toString() + "." + frac;
  }
  function setText(id, text) { var e = $(id); if (e.textContent !== text) { e.textContent = text; } }

  // Replaces a table body's rows with one row per item (cells: [text, className]).
  function fillRows(tbody, items, key, cells) {
    var rows = document.createDocumentFragment();
    items.forEach(function (item) {
      var tr = document.createElement("tr");
      tr.dataset.key = String(key(item));
      cells(item).forEach(function (c) {
        var td = document.createElement("td");
        td.textContent = c[0];
        if (c[1]) { td.className = c[1]; }
        tr.appendChild(td);
      });
      rows.appendChild(tr);
    });
    tbody.replaceChildren(rows);
  }

  function el(name, attrs, text) {
    var e = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  // A hand-written two-axis line chart: loss on the left axis, accuracy (0–100 %) on the right.
  function drawChart(rounds) {
    var svg = $("chart"), W = 640, H = 260, L = 48, R = 48, T = 12, B = 30;
    var pw = W - L - R, ph = H - T - B;
    svg.replaceChildren();
    var losses = rounds.filter(function (r) { return r.loss !== null; });
    var accs = rounds.filter(function (r) { return r.accuracy !== null; });
    var maxLoss = losses.reduce(function (m, r) { return Math.max(m, r.loss); }, 0) || 1;
    maxLoss = niceCeil(maxLoss);
    var first = rounds.length ? rounds[0].round : 0, last = rounds.length ? rounds[rounds.length - 1].round : 1;
    var span = Math.max(1, last - first);
    var x = function (round) { return L + (rounds.length === 1 ? pw / 2 : (round - first) / span * pw); };
    var yLoss = function (v) { return T + ph - v / maxLoss * ph; };
    var yAcc = function (v) { return T + ph - v * ph; };
    for (var i = 0; i <= 4; i++) {
      var gy = T + ph * i / 4;
      svg.appendChild(el("line", { x1: L, x2: L + pw, y1: gy, y2: gy, "class": "grid" }));
      svg.appendChild(el("text", { x: L - 6, y: gy + 4, "text-anchor": "end" }, (maxLoss * (4 - i) / 4).toFixed(2)));
      svg.appendChild(el("text", { x: L + pw + 6, y: gy + 4 }, (100 * (4 - i) / 4).toFixed(0) + "%"));
    }
    svg.appendChild(el("line", { x1: L, x2: L, y1: T, y2: T + ph, "class": "axis" }));
    svg.appendChild(el("line", { x1: L + pw, x2: L + pw, y1: T, y2: T + ph, "class": "axis" }));
    svg.appendChild(el("line", { x1: L, x2: L + pw, y1: T + ph, y2: T + ph, "class": "axis" }));
    var ticks = Math.min(rounds.length, 10);
    for (var t = 0; t < ticks; t++) {
      var r = rounds[Math.round(t * (rounds.length - 1) / Math.max(1, ticks - 1))];
      svg.appendChild(el("text", { x: x(r.round), y: H - 12, "text-anchor": "middle" }, String(r.round)));
    }
    svg.appendChild(el("text", { x: L + pw / 2, y: H - 1, "text-anchor": "middle" }, "round"));
    function series(points, y, cls, id) {
      if (!points.length) { return; }
      var d = points.map(function (p, k) { return (k ? "L" : "M") + x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1); }).join(" ");
      svg.appendChild(el("path", { d: d, "class": cls, id: id, "data-points": points.length }));
      points.forEach(function (p) { svg.appendChild(el("circle", { cx: x(p[0]).toFixed(1), cy: y(p[1]).toFixed(1), r: 3, "class": cls })); });
    }
    series(losses.map(function (r) { return [r.round, r.loss]; }), yLoss, "loss", "loss-line");
    series(accs.map(function (r) { return [r.round, r.accuracy]; }), yAcc, "acc", "accuracy-line");
    svg.setAttribute("data-points", String(rounds.length));
  }
  function niceCeil(v) {
    var p = Math.pow(10, Math.floor(Math.log10(v))), m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 2.5 ? 2.5 : m <= 5 ? 5 : 10) * p;
  }

  function apply(s) {
    setText("job", s.jobId ? "· " + s.jobId : "");
    var state = $("state");
    state.textContent = s.state;
    state.className = "badge " + s.state;
    setText("round", s.state === "completed" ? String(s.totalRounds) : String(s.round + 1));
    setText("total-rounds", String(s.totalRounds));
    setText("accuracy", fmtPct(s.accuracy));
    setText("parameters", fmtInt(s.parameterCount));
    setText("parameter-version", fmtInt(s.parameterVersion));

    setText("bytes-up", fmtBytes(s.bytesUp));
    setText("bytes-ddp", fmtBytes(s.ddpBytes));
    setText("bytes-down", fmtBytes(s.bytesDown));
    var max = Math.max(s.bytesUp, s.ddpBytes, 1);
    $("bar-actual").style.width = (100 * s.bytesUp / max).toFixed(2) + "%";
    $("bar-ddp").style.width = (100 * s.ddpBytes / max).toFixed(2) + "%";
    setText("bytes-ratio", s.bytesUp > 0 && s.ddpBytes > 0 ? (s.ddpBytes / s.bytesUp).toFixed(1) + "×" : "–");

    setText("ledger-entries", fmtInt(s.ledgerEntries));
    setText("ledger-root", s.ledgerRoot || "–");

    fillRows($("workers"), s.workers, function (w) { return w.id; }, function (w) {
      return [[w.id], [w.state], [w.attestation], [w.round < 0 ? "–" : String(w.round), "num"], [String(w.step), "num"],
        [fmtNum(w.loss, 4), "num"], [w.samplesPerSecond > 0 ? fmtNum(w.samplesPerSecond, 0) : "–", "num"], [fmtInt(w.receipts), "num"],
        [fmtBytes(w.bytesSent), "num"], [fmtBytes(w.bytesReceived), "num"]];
    });
    fillRows($("rounds"), s.rounds.slice().reverse(), function (r) { return r.round; }, function (r) {
      return [[String(r.round), "num"], [r.accepted + "/" + r.cohort, "num"], [String(r.rejected), "num"], [fmtNum(r.loss, 4), "num"],
        [fmtPct(r.accuracy), "num"], [(r.durationMs / 1000).toFixed(1) + " s", "num"], [fmtBytes(r.updateBytes), "num"], [fmtBytes(r.ddpBytes), "num"],
        [r.workers.join(", ")]];
    });
    setText("rounds-omitted", s.roundsOmitted > 0 ? "(the " + s.roundsOmitted + " oldest not shown)" : "");
    fillRows($("settlements"), s.settlements, function (t) { return t.hash; }, function (t) {
      return [[String(t.epoch), "num"], [t.receiver], [fmtNear(t.amount), "num"], [t.hash + (t.dryRun ? " (dry run: signed, not sent)" : ""), "mono"]];
    });
    fillRows($("payouts"), s.payouts, function (p) { return p.account; }, function (p) { return [[p.account], [fmtNear(p.amount), "num"]]; });
    drawChart(s.rounds);

    setText("updated", new Date(s.generatedAtMs).toISOString().replace("T", " ").slice(0, 19) + " UTC");
    document.body.dataset.version = String(s.version);
    document.body.dataset.events = String(Number(document.body.dataset.events) + 1);
    document.body.dataset.rounds = String(s.rounds.length);
  }

  function connect() {
    var live = $("live");
    var source = new EventSource("api/events");
    source.addEventListener("status", function (e) { apply(JSON.parse(e.data)); });
    source.onopen = function () { live.textContent = "live"; live.className = "badge on"; };
    source.onerror = function () { live.textContent = "reconnecting"; live.className = "badge off"; };
  }

  function verify() {
    var button = $("verify"), out = $("verify-result");
    button.disabled = true;
    out.textContent = "verifying…";
    out.dataset.valid = "";
    fetch("api/ledger/verify", { method: "POST", credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then(function (v) {
        out.dataset.valid = String(v.valid);
        out.textContent = v.valid
          ? "✓ verified: " + v.message + ", every receipt signature checks (" + v.elapsedMs + " ms)"
          : "✗ does not verify (" + v.problem + "): " + v.message + (v.signatureMessage ? "; signatures: " + v.signatureMessage : "");
      })
      .catch(function (err) { out.dataset.valid = "false"; out.textContent = "verification failed: " + err.message; })
      .finally(function () { button.disabled = false; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    $("verify").addEventListener("click", verify);
    connect();
  });
})();
