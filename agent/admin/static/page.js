// The Bridgehead agent's health page: reads /status.json every few seconds and updates the
// page in place (rows are kept, so a focused button keeps its focus); the two actions POST
// with the session's CSRF token. Text goes in with textContent only, never as HTML.
"use strict";

(function () {
  const REFRESH_MS = 3000;
  const SVG = "http://www.w3.org/2000/svg";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const byId = (id) => document.getElementById(id);
  const testResults = new Map(); // source name -> {ok, text}
  const reconnectResults = new Map(); // connection number -> {ok, text}
  let paused = false;
  let timer = null;
  let lastTime = null;

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function ms(value) {
    if (value === null || value === undefined) return "–";
    return value < 10 ? value.toFixed(2) + " ms" : Math.round(value) + " ms";
  }

  function ago(iso) {
    if (!iso) return "–";
    const then = Date.parse(iso);
    const now = lastTime ? Date.parse(lastTime) : Date.now();
    const s = Math.round((now - then) / 1000);
    return s < 0 ? "in " + span(-s) : span(s) + " ago";
  }

  function span(s) {
    if (s < 90) return s + " s";
    if (s < 5400) return Math.round(s / 60) + " min";
    if (s < 172800) return Math.round(s / 3600) + " h";
    return Math.round(s / 86400) + " days";
  }

  function when(iso) {
    if (!iso) return "–";
    return new Date(iso).toLocaleString() + " (" + ago(iso) + ")";
  }

  // Keep one <tr> per key: create the missing, drop the gone, update the rest in place.
  function syncRows(tbody, items, key, make, update) {
    const rows = new Map();
    for (const tr of tbody.rows) rows.set(tr.dataset.key, tr);
    const wanted = new Set();
    items.forEach((item, index) => {
      const k = String(key(item));
      wanted.add(k);
      let tr = rows.get(k);
      if (!tr) {
        tr = make(item);
        tr.dataset.key = k;
      }
      if (tbody.rows[index] !== tr) tbody.insertBefore(tr, tbody.rows[index] || null);
      update(tr, item);
    });
    for (const [k, tr] of rows) if (!wanted.has(k)) tr.remove();
  }

  function cells(tr, count) {
    for (let i = 0; i < count; i++) tr.appendChild(el("td"));
    return tr.cells;
  }

  function setCell(td, text, className) {
    const value = text === null || text === undefined || text === "" ? "–" : String(text);
    if (td.textContent !== value) td.textContent = value;
    td.className = className || "";
  }

  function pill(td, text, kind) {
    let span = td.firstElementChild;
    if (!span) span = td.appendChild(el("span"));
    span.textContent = text;
    span.className = "pill " + kind;
  }

  function showResult(output, result) {
    output.textContent = result ? result.text : "";
    output.className = result ? (result.ok ? "ok" : "failed") : "";
  }

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, "Content-Type": "application/json" },
      body: body === undefined ? "" : JSON.stringify(body),
    });
    let doc = null;
    try { doc = await response.json(); } catch (e) { doc = null; }
    return { status: response.status, doc: doc };
  }

  // Sources ----------------------------------------------------------------------------------

  function makeSourceRow(source) {
    const tr = el("tr");
    const td = cells(tr, 8);
    const th = el("th", source.name);
    th.scope = "row";
    tr.replaceChild(th, td[0]);
    const button = el("button", "Test connection");
    button.type = "button";
    button.setAttribute("aria-label", "Test connection to source " + source.name);
    button.addEventListener("click", () => testSource(source.name, button));
    td[7].appendChild(button);
    const output = el("output");
    output.setAttribute("aria-live", "polite");
    td[7].appendChild(output);
    return tr;
  }

  function updateSourceRow(tr, s) {
    const td = tr.cells;
    pill(td[1], s.up ? "up" : "down", s.up ? "up" : "down");
    setCell(td[2], s.dbms || "not connected yet");
    setCell(td[3], s.driver);
    setCell(td[4], ms(s.probe_latency_ms), "num");
    const pool = s.pool;
    setCell(td[5], pool ? pool.in_use + " of " + pool.size +
      (pool.waiting ? ", " + pool.waiting + " waiting" : "") : "–");
    setCell(td[6], s.error || s.last_error || "none", s.error ? "error" : "");
    showResult(td[7].querySelector("output"), testResults.get(s.name));
  }

  // A busy button stays focusable (a disabled one would drop the keyboard's focus).
  function busy(button, text) {
    if (button.getAttribute("aria-disabled") === "true") return false;
    button.setAttribute("aria-disabled", "true");
    button.dataset.idle = button.textContent;
    button.textContent = text;
    return true;
  }

  function done(button) {
    button.removeAttribute("aria-disabled");
    button.textContent = button.dataset.idle;
  }

  async function testSource(name, button) {
    if (!busy(button, "Testing…")) return;
    try {
      const { status, doc } = await post("/actions/sources/" + encodeURIComponent(name) + "/test");
      if (status === 200 && doc) {
        testResults.set(name, doc.up
          ? { ok: true, text: "Answered in " + ms(doc.latency_ms) }
          : { ok: false, text: "Failed: " + doc.error });
      } else {
        testResults.set(name, { ok: false, text: "Refused (" + status + "): " + detail(doc) });
      }
    } catch (e) {
      testResults.set(name, { ok: false, text: "Cannot reach the agent" });
    } finally {
      done(button);
      showResult(button.parentNode.querySelector("output"), testResults.get(name));
    }
  }

  function detail(doc) {
    return doc && (doc.detail || doc.title) ? doc.detail || doc.title : "no details";
  }

  // Tunnel -----------------------------------------------------------------------------------

  function makeConnectionRow(c) {
    const tr = el("tr");
    const td = cells(tr, 8);
    const th = el("th", "#" + c.number);
    th.scope = "row";
    tr.replaceChild(th, td[0]);
    const button = el("button", "Reconnect");
    button.type = "button";
    button.setAttribute("aria-label", "Reconnect tunnel connection " + c.number);
    button.addEventListener("click", () => reconnect(c.number, button));
    td[7].appendChild(button);
    td[7].appendChild(el("output"));
    return tr;
  }

  function updateConnectionRow(tr, c) {
    const td = tr.cells;
    const kind = c.state === "up" ? "up" : c.state === "down" ? "down" : "other";
    pill(td[1], c.state, kind);
    setCell(td[2], ago(c.since));
    td[2].title = c.since || "";
    setCell(td[3], ms(c.rtt_ms), "num");
    setCell(td[4], c.reconnects, "num");
    setCell(td[5], c.streams, "num");
    setCell(td[6], c.last_error || "none", c.last_error ? "error" : "");
    showResult(td[7].querySelector("output"), reconnectResults.get(c.number));
  }

  async function reconnect(number, button) {
    const all = number === null;
    if (!busy(button, "Reconnecting…")) return;
    let result;
    try {
      const { status, doc } = await post("/actions/tunnel/reconnect",
        all ? undefined : { connection: number });
      if (status === 200) result = { ok: true, text: "Reconnected " + doc.reconnected };
      else if (status === 202) result = { ok: true, text: "Still reconnecting" };
      else result = { ok: false, text: "Refused (" + status + "): " + detail(doc) };
    } catch (e) {
      result = { ok: false, text: "Cannot reach the agent" };
    } finally {
      done(button);
    }
    if (all) showResult(byId("tunnel-result"), result);
    else reconnectResults.set(number, result);
    refreshNow();
  }

  function renderTunnel(tunnel) {
    const summary = byId("tunnel-summary");
    byId("tunnel-body").hidden = !tunnel;
    if (!tunnel) {
      summary.textContent = "No tunnel is configured (add tunnel: to agent.yaml to reach a relay).";
      return;
    }
    summary.textContent = tunnel.up + " of " + tunnel.connections.length +
      " connections up to the relay " + tunnel.relay + ".";
    syncRows(byId("tunnel").tBodies[0], tunnel.connections, (c) => c.number,
      makeConnectionRow, updateConnectionRow);
  }

  // Requests ---------------------------------------------------------------------------------

  function sparkline(counts, errors) {
    const width = 120, height = 26, top = Math.max(1, ...counts);
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("role", "img");
    const total = counts.reduce((a, b) => a + b, 0);
    const failed = errors.reduce((a, b) => a + b, 0);
    svg.setAttribute("aria-label", total + " requests and " + failed +
      " errors in the last 30 minutes, at most " + Math.max(...counts, 0) + " a minute");
    const step = width / Math.max(1, counts.length - 1);
    const points = (values) => values.map((v, i) =>
      (i * step).toFixed(1) + "," + (height - 1 - (v / top) * (height - 3)).toFixed(1)).join(" ");
    const base = document.createElementNS(SVG, "line");
    base.setAttribute("class", "base");
    base.setAttribute("x1", 0); base.setAttribute("x2", width);
    base.setAttribute("y1", height - 0.5); base.setAttribute("y2", height - 0.5);
    svg.appendChild(base);
    for (const [values, name] of [[counts, "count"], [errors, "errors"]]) {
      if (name === "errors" && failed === 0) continue;
      const line = document.createElementNS(SVG, "polyline");
      line.setAttribute("class", name);
      line.setAttribute("points", points(values));
      svg.appendChild(line);
    }
    return svg;
  }

  function renderRequests(requests) {
    const tbody = byId("requests").tBodies[0];
    tbody.replaceChildren(...requests.map((r) => {
      const tr = el("tr");
      const th = el("th", r.target);
      th.scope = "row";
      tr.appendChild(th);
      tr.appendChild(el("td", r.operation));
      tr.appendChild(el("td", r.requests, "num"));
      tr.appendChild(el("td", r.errors, r.errors ? "num error" : "num"));
      tr.appendChild(el("td", ms(r.p50_ms), "num"));
      tr.appendChild(el("td", ms(r.p95_ms), "num"));
      const td = el("td");
      td.appendChild(sparkline(r.per_minute || [], r.errors_per_minute || []));
      tr.appendChild(td);
      return tr;
    }));
    byId("requests-empty").hidden = requests.length > 0;
    byId("requests").hidden = requests.length === 0;
  }

  // Certificate, agent, errors ---------------------------------------------------------------

  function facts(dl, pairs) {
    dl.replaceChildren();
    for (const [name, value, className] of pairs) {
      dl.appendChild(el("dt", name));
      dl.appendChild(el("dd", value === null || value === undefined ? "–" : value, className));
    }
  }

  function renderCertificate(cert) {
    const dl = byId("certificate");
    if (!cert) {
      facts(dl, [["Certificate", "none: no tunnel is configured"]]);
      return;
    }
    const renewal = cert.renewal || {};
    const days = cert.days_to_expiry;
    facts(dl, [
      ["Subject", cert.subject],
      ["Agent id", cert.agent_id],
      ["Expires", cert.not_after ? new Date(cert.not_after).toLocaleString() +
        " (in " + days.toFixed(1) + " days)" : null, days !== null && days < 7 ? "error" : ""],
      ["Renewal due", renewal.due ? when(renewal.due) : "not yet known"],
      ["Renewal", renewal.failed_attempts ? renewal.failed_attempts + " failed attempt(s): " +
        (renewal.last_error || "") : "no failed attempts", renewal.failed_attempts ? "error" : ""],
      ["Next attempt", renewal.next_attempt ? when(renewal.next_attempt) : null],
      ["Problem", cert.error || "none", cert.error ? "error" : ""],
    ]);
  }

  function renderAbout(doc) {
    facts(byId("about"), [
      ["Version", doc.version],
      ["Config file", doc.config.file || "(given in-process, no file)"],
      ["Config loaded", when(doc.config.loaded_at)],
      ["Started", when(doc.started_at)],
      ["Audit log", doc.audit.ok ? "writing" : "stopped: " + doc.audit.failure,
        doc.audit.ok ? "" : "error"],
      ["Idempotency store", doc.idempotency.ok ? "writing" : "failing: " +
        doc.idempotency.failure, doc.idempotency.ok ? "" : "error"],
    ]);
  }

  function renderErrors(errors) {
    const tbody = byId("errors").tBodies[0];
    tbody.replaceChildren(...errors.map((e) => {
      const tr = el("tr");
      const time = el("td", new Date(e.time).toLocaleTimeString());
      time.title = e.time;
      tr.appendChild(time);
      tr.appendChild(el("td", e.request_id, "mono"));
      tr.appendChild(el("td", e.target));
      tr.appendChild(el("td", e.operation));
      tr.appendChild(el("td", e.status, "num"));
      tr.appendChild(el("td", e.reason || "–", "error"));
      return tr;
    }));
    byId("errors-empty").hidden = errors.length > 0;
    byId("errors").hidden = errors.length === 0;
  }

  // The whole page ---------------------------------------------------------------------------

  // Each cell names its column (data-label), for the stacked layout of narrow screens.
  function labelCells(table) {
    const names = Array.from(table.tHead.rows[0].cells, (th) => th.textContent);
    for (const tr of table.tBodies[0].rows) {
      Array.from(tr.cells).forEach((cell, i) => {
        if (cell.dataset.label !== names[i]) cell.dataset.label = names[i];
      });
    }
  }

  function render(doc) {
    lastTime = doc.time;
    const overall = byId("overall");
    overall.className = "overall state-" + doc.state;
    const stateText = { ok: "OK", degraded: "Degraded", down: "Down" }[doc.state] || doc.state;
    if (byId("state").textContent !== stateText) byId("state").textContent = stateText;
    if (byId("reason").textContent !== doc.reason) byId("reason").textContent = doc.reason;
    document.title = stateText + ": Bridgehead agent";
    syncRows(byId("sources").tBodies[0], doc.sources, (s) => s.name,
      makeSourceRow, updateSourceRow);
    renderTunnel(doc.tunnel);
    renderRequests(doc.requests);
    renderCertificate(doc.certificate);
    renderAbout(doc);
    renderErrors(doc.errors);
    for (const id of ["sources", "tunnel", "requests", "errors"]) labelCells(byId(id));
    byId("updated").textContent = "Updated " + new Date(doc.time).toLocaleTimeString();
  }

  function fetchFailed(text) {
    const banner = byId("fetch-error");
    banner.hidden = !text;
    banner.textContent = text || "";
  }

  async function refresh() {
    try {
      const response = await fetch("/status.json", {
        credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" },
      });
      if (response.status === 401) {
        fetchFailed("The session has ended: reload the page to sign in again.");
        return;
      }
      render(await response.json());
      fetchFailed(null);
    } catch (e) {
      fetchFailed("Cannot reach the agent (" + e.message + "); still trying every " +
        REFRESH_MS / 1000 + " s.");
    }
  }

  function schedule() {
    clearTimeout(timer);
    if (!paused) timer = setTimeout(refreshNow, REFRESH_MS);
  }

  async function refreshNow() {
    clearTimeout(timer);
    await refresh();
    schedule();
  }

  function start() {
    byId("refresh").addEventListener("click", refreshNow);
    byId("pause").addEventListener("click", (event) => {
      paused = !paused;
      event.target.setAttribute("aria-pressed", String(paused));
      event.target.textContent = paused ? "Resume updates" : "Pause updates";
      if (paused) clearTimeout(timer); else refreshNow();
    });
    byId("reconnect-all").addEventListener("click", (event) => reconnect(null, event.target));
    const signout = byId("signout");
    signout.hidden = document.body.dataset.login !== "yes";
    signout.addEventListener("click", async () => {
      await post("/logout");
      window.location.assign("/");
    });
    refreshNow();
  }

  start();
})();
