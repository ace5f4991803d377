// The health page's DOM helpers: elements with text (textContent only, never HTML), rows
// kept in place by key, times relative to the agent's clock, the inline SVG sparkline and
// bar chart.

const SVG = "http://www.w3.org/2000/svg";
let serverTime = null;

/** The agent's time of the last status document: "ago" is measured from it. */
export function setServerTime(iso) {
  serverTime = iso;
}

export function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

export function ms(value) {
  if (value === null || value === undefined) return "–";
  return value < 10 ? value.toFixed(2) + " ms" : Math.round(value) + " ms";
}

export function ago(iso) {
  if (!iso) return "–";
  const then = Date.parse(iso);
  const now = serverTime ? Date.parse(serverTime) : Date.now();
  const s = Math.round((now - then) / 1000);
  return s < 0 ? "in " + span(-s) : span(s) + " ago";
}

export function span(s) {
  if (s < 90) return s + " s";
  if (s < 5400) return Math.round(s / 60) + " min";
  if (s < 172800) return Math.round(s / 3600) + " h";
  return Math.round(s / 86400) + " days";
}

export function when(iso) {
  if (!iso) return "–";
  return new Date(iso).toLocaleString() + " (" + ago(iso) + ")";
}

// Keep one <tr> per key: create the missing, drop the gone, update the rest in place.
export function syncRows(tbody, items, key, make, update) {
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

export function cells(tr, count) {
  for (let i = 0; i < count; i++) tr.appendChild(el("td"));
  return tr.cells;
}

export function setCell(td, text, className) {
  const value = text === null || text === undefined || text === "" ? "–" : String(text);
  if (td.textContent !== value) td.textContent = value;
  td.className = className || "";
}

export function pill(td, text, kind) {
  let span = td.firstElementChild;
  if (!span) span = td.appendChild(el("span"));
  span.textContent = text;
  span.className = "pill " + kind;
}

export function showResult(output, result) {
  output.textContent = result ? result.text : "";
  output.className = result ? (result.ok ? "ok" : "failed") : "";
}

export function sparkline(counts, errors) {
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

// One bar per run, oldest on the left: its height the rows it wrote, a failed run in red.
// Each bar has a title (its tooltip) naming the run, its status and its rows.
export function bars(runs, label) {
  const width = 120, height = 26, gap = 1, slots = 20;
  const top = Math.max(1, ...runs.map((r) => r.rows));
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "bars");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("viewBox", "0 0 " + width + " " + height);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const step = width / Math.max(slots, runs.length);
  const base = document.createElementNS(SVG, "line");
  base.setAttribute("class", "base");
  base.setAttribute("x1", 0); base.setAttribute("x2", width);
  base.setAttribute("y1", height - 0.5); base.setAttribute("y2", height - 0.5);
  svg.appendChild(base);
  runs.forEach((run, i) => {
    const tall = Math.max(1, (run.rows / top) * (height - 2));
    const rect = document.createElementNS(SVG, "rect");
    rect.setAttribute("class", "bar " + (run.failed ? "failed" : "ok"));
    rect.setAttribute("x", (i * step).toFixed(1));
    rect.setAttribute("y", (height - tall).toFixed(1));
    rect.setAttribute("width", Math.max(1, step - gap).toFixed(1));
    rect.setAttribute("height", tall.toFixed(1));
    const title = document.createElementNS(SVG, "title");
    title.textContent = run.title;
    rect.appendChild(title);
    svg.appendChild(rect);
  });
  return svg;
}

export function facts(dl, pairs) {
  dl.replaceChildren();
  for (const [name, value, className] of pairs) {
    dl.appendChild(el("dt", name));
    dl.appendChild(el("dd", value === null || value === undefined ? "–" : value, className));
  }
}

// Each cell names its column (data-label), for the stacked layout of narrow screens.
export function labelCells(table) {
  const names = Array.from(table.tHead.rows[0].cells, (th) => th.textContent);
  for (const tr of table.tBodies[0].rows) {
    Array.from(tr.cells).forEach((cell, i) => {
      if (cell.dataset.label !== names[i]) cell.dataset.label = names[i];
    });
  }
}
