// The health page's "Change events" section: each named consumer of the agent's event log
// (the relay's webhook deliverers among them) with its position, backlog, oldest event not
// processed and what its report says of its deliveries, and the warning for one too far
// behind. Shown only when the agent captures events. Text goes in with textContent only.
import { cells, el, labelCells, pill, setCell, span, syncRows } from "/dom.js";

const byId = (id) => document.getElementById(id);

function size(bytes) {
  if (bytes < 1048576) return Math.ceil(bytes / 1024) + " KiB";
  return (bytes / 1048576).toFixed(1) + " MiB";
}

function makeRow(consumer) {
  const tr = el("tr");
  const td = cells(tr, 9);
  const th = el("th", consumer.name);
  th.scope = "row";
  tr.replaceChild(th, td[0]);
  return tr;
}

function state(c) {
  if (c.disabled === true) return ["disabled", "down"];
  if (c.disabled === false) return ["delivering", "up"];
  return ["reading", "other"];
}

function updateRow(tr, c) {
  const td = tr.cells;
  setCell(td[1], c.position + " of " + c.last_seq, "num");
  setCell(td[2], c.backlog, c.behind ? "num error" : "num");
  setCell(td[3], c.oldest_unprocessed ? span(Math.round(c.oldest_unprocessed_seconds)) + " old"
    : "none");
  td[3].title = c.oldest_unprocessed || "";
  setCell(td[4], c.delivered, "num");
  setCell(td[5], c.failures, c.failures ? "num error" : "num");
  setCell(td[6], c.last_error || "none", c.last_error ? "error" : "");
  const [text, kind] = state(c);
  pill(td[7], text, kind);
  setCell(td[8], c.dead_letters, c.dead_letters ? "num error" : "num");
}

/** Render `events` (/status.json's, null when none are captured) and the warnings of it. */
export function renderEvents(events, warnings) {
  const section = byId("events-section");
  section.hidden = !events;
  if (!events) return;
  byId("events-summary").textContent = "The agent's event log holds events up to sequence " +
    events.last_seq + " (" + size(events.log_bytes) + "); a consumer " +
    "more than " + events.backlog_warning + " events behind is warned of.";
  const mine = warnings.filter((w) => w.name.startsWith("events:"));
  byId("events-warnings").replaceChildren(...mine.map((w) => el("li", w.reason)));
  syncRows(byId("events").tBodies[0], events.consumers, (c) => c.name, makeRow, updateRow);
  byId("events-empty").hidden = events.consumers.length > 0;
  byId("events").hidden = events.consumers.length === 0;
  labelCells(byId("events"));
}
