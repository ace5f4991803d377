// The Bridgehead agent's health page: reads /status.json every few seconds and updates the
// page in place (rows are kept, so a focused button keeps its focus); the two actions POST
// with the session's CSRF token. Text goes in with textContent only, never as HTML.
import {
  ago, bars, cells, el, facts, labelCells, ms, pill, setCell, setServerTime, showResult,
  sparkline, syncRows, when,
} from "/dom.js";
import { renderEvents } from "/events.js";

(function () {
  const REFRESH_MS = 3000;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const byId = (id) => document.getElementById(id);
  const testResults = new Map(); // source name -> {ok, text}
  const reconnectResults = new Map(); // connection number -> {ok, text}
  let paused = false;
  let timer = null;

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
    setCell(td[2], s.dbms ? s.dbms + (s.dbms_version ? " " + s.dbms_version : "") :
      "not connected yet");
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

  // Jobs -------------------------------------------------------------------------------------

  function makeJobRow(job) {
    const tr = el("tr");
    const td = cells(tr, 9);
    const th = el("th", job.name);
    th.scope = "row";
    tr.replaceChild(th, td[0]);
    return tr;
  }

  const RUN_KIND = { succeeded: "up", failed: "down" };

  function updateJobRow(tr, job) {
    const td = tr.cells;
    const last = job.runs[0];
    setCell(td[1], job.kind);
    setCell(td[2], job.schedule || "on request only");
    setCell(td[3], job.running ? "running now" : job.next_run ? ago(job.next_run) : "–");
    td[3].title = job.next_run || "";
    if (last) {
      const text = last.status + (last.dry_run ? " (dry run)" : "");
      if (!td[4].firstElementChild) td[4].replaceChildren(); // drop "no runs yet"
      pill(td[4], text, RUN_KIND[last.status] || "other");
      td[4].title = "run " + last.id + ", " + (last.finished ? "ended " + ago(last.finished) :
        "started " + ago(last.started));
    } else {
      td[4].replaceChildren();
      setCell(td[4], "no runs yet");
      td[4].title = "";
    }
    setCell(td[5], last ? last.written : null, "num");
    td[5].title = last ? "read " + last.read + ", written " + last.written : "";
    setCell(td[6], last ? last.rejected : null, last && last.rejected ? "num error" : "num");
    setCell(td[7], last ? last.error || "none" : null, last && last.error ? "error" : "");
    const runs = job.runs.slice().reverse().map((r) => ({
      rows: r.written, failed: r.status === "failed",
      title: "run " + r.id + ": " + r.status + (r.dry_run ? " (dry run)" : "") + ", " +
        r.written + " rows" + (r.rejected ? ", " + r.rejected + " rejected" : ""),
    }));
    const total = runs.reduce((a, r) => a + r.rows, 0);
    td[8].replaceChildren(bars(runs, runs.length + " runs of job " + job.name + ", " + total +
      " rows in all, at most " + Math.max(0, ...runs.map((r) => r.rows)) + " in one run"));
  }

  function renderJobs(jobs) {
    syncRows(byId("jobs").tBodies[0], jobs, (j) => j.name, makeJobRow, updateJobRow);
    byId("jobs-empty").hidden = jobs.length > 0;
    byId("jobs-body").hidden = jobs.length === 0;
  }

  // Certificate, agent, errors ---------------------------------------------------------------

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

  function render(doc) {
    setServerTime(doc.time);
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
    renderJobs(doc.jobs || []);
    renderEvents(doc.events || null, doc.warnings || []);
    renderCertificate(doc.certificate);
    renderAbout(doc);
    renderErrors(doc.errors);
    for (const id of ["sources", "tunnel", "requests", "jobs", "errors"]) labelCells(byId(id));
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
